"""Inverting a decoder out of domain: search (Eq. 4.3) and generative replay (Eq. 4.4)."""
from compgen.inversion.priors import PRIORS, fit_prior
from compgen.inversion.search import Searcher, SearchResult, latent_l2, stream_search
