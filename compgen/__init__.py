"""compgen: perceive new combinations of known things by inverting a compositional decoder."""
from compgen import data

__version__ = "0.1.0"
