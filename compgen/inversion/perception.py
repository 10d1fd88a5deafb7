"""The perception path (Eq. 4.3 from a start): a trained model, images and `config.search` ->
perceived latents. One `Perception` per model serves the search job, the experiment, its
candidates' scores, the composition diagnostic and `compgen.invert`, so their numbers agree.

- The slot prior (restarts, `search.init="prior"`, `search.regularizer="prior"`) is fitted once
  per model, of kind `search.prior`, on the encoder's latents of the first
  `replay.prior_examples` ID training images — the sample the replay job fits its prior on.
- Restarts: image i of a perceived array is searched from its start and R − 1 prior samples
  drawn with `fold_in(fold_in(PRNGKey(seed), RESTART_STREAM), i)` (R = `search.restarts`; the
  best of the R is kept); a prior start (`search.init="prior"`) is drawn with
  `fold_in(fold_in(PRNGKey(seed), PRIOR_START_STREAM), i)`. i counts from `first_index`, so a
  split perceived in batches gets the same draws as perceived at once.
- Search runs in batches of `search.batch_size`, padded to the mesh's device count.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from compgen import config_checks
from compgen import parallel
from compgen.data import pipeline
from compgen.inversion import priors
from compgen.inversion import search as search_lib
from compgen.training import trained

PRIOR_START_STREAM, RESTART_STREAM = 3, 4


def needs_prior(config, restarts: bool = True) -> bool:
  sc = config.search
  return (restarts and sc.restarts > 1) or sc.regularizer == "prior" or sc.init == "prior"


def prior_latents(config, infer, params, mesh, num_examples: int | None = None) -> np.ndarray:
  """The encoder's latents [N, K, m] of the prior's sample: the first `num_examples` (default
  `replay.prior_examples`) ID training images, encoded in `search.batch_size` batches."""
  n = num_examples or config.replay.prior_examples
  sample = trained.first_examples(pipeline.load_split(config.data, "train"), n)
  return trained.evaluate(infer, params, {"train": sample}, mesh,
                          config.search.batch_size)["train"][0]


def make_searcher(config, model, prior, mesh) -> search_lib.Searcher:
  """The compiled search of `config.search` through `model`'s decoder (`prior` for the
  "prior" regularizer, else unused)."""
  sc = config.search
  config_checks.check_choice("search.regularizer", sc.regularizer)
  regularizer = {"none": None, "latent_l2": search_lib.latent_l2,
                 "prior": priors.negative_log_prob(prior) if sc.regularizer == "prior"
                 else None}[sc.regularizer]
  decode = lambda p, z: model.decode(p, z)["output"]
  return search_lib.Searcher(decode, optimizer=optax.adam(sc.learning_rate),
                             num_steps=sc.num_steps, tol=sc.tol, regularizer=regularizer,
                             reg_weight=sc.reg_weight, mesh=mesh,
                             micro_batch=parallel.resolve_micro_batch(sc.micro_batch))


def per_image_samples(prior, stream: jax.Array, first_index: int, num_images: int,
                      per_image: int) -> np.ndarray:
  """[num_images, per_image, K, m] prior samples, image i's drawn with fold_in(stream, i)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(stream, i))(
      jnp.arange(first_index, first_index + num_images))
  return np.asarray(jax.vmap(lambda key: prior.sample(key, per_image))(keys))


def search_batch(searcher: search_lib.Searcher, params, x: np.ndarray, z0, mesh) -> dict:
  """One batch of any size through `searcher`, padded to the mesh's device count: returns
  {z, mse, trace, converged, converged_step, finite} as numpy arrays for the B real images
  (finite False: the objective went NaN/Inf; z is then the best finite iterate)."""
  def run(x, z0):
    res = searcher(params, x, z0)
    return {k: getattr(res, k) for k in ("z", "mse", "trace", "converged", "converged_step",
                                         "finite")}
  return parallel.call_padded(run, {"x": np.asarray(x), "z0": np.asarray(z0)}, mesh)


def search_all(searcher: search_lib.Searcher, params, x: np.ndarray, z0, mesh,
               batch_size: int, desc: str = "search") -> dict:
  """`search_batch` over x [N, ...] and starts z0 [N, (R,) K, m] in batches of `batch_size`,
  with a progress bar: the same fields for all N images."""
  parts = [search_batch(searcher, params, x[lo:lo + batch_size], z0[lo:lo + batch_size], mesh)
           for lo in tqdm.trange(0, len(x), batch_size, desc=desc, leave=False,
                                 disable=jax.process_index() != 0 or len(x) <= batch_size)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def report_diverged(finite: np.ndarray, where: str) -> None:
  """Prints which images' search objective went NaN/Inf (their latents are the best finite
  iterate, often the start), so that a diverged search is never silent."""
  bad = np.flatnonzero(~np.asarray(finite))
  if len(bad):
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    print(f"WARNING: {where}: the objective went NaN/Inf for {len(bad)} of {len(finite)} images "
          f"(index {bad[:10].tolist()}{more}); their latents are the best finite iterate. Lower "
          "search.learning_rate or check those images.")


@dataclasses.dataclass
class Perception:
  """One trained model's perception (module doc): its prior (None when `config.search` needs
  none), its compiled searcher and the random streams of its starts."""
  config: object
  searcher: search_lib.Searcher
  prior: object
  mesh: object

  @classmethod
  def of(cls, config, model, mesh, fit_latents: Callable[[], np.ndarray],
         reuse: "Perception | None" = None, restarts: bool = True) -> "Perception":
    """The perception of `model` (`models.Autoencoder`); `fit_latents()` gives the prior's
    sample (`prior_latents`) and is called only when a prior is needed. `reuse`: a perception
    of the same model settings whose compiled searcher serves (unless it holds its prior).
    `restarts=False`: a perception that never adds restarts (no prior fitted for them)."""
    prior = (priors.fit_prior(config.search.prior, fit_latents(), seed=config.seed)
             if needs_prior(config, restarts) else None)
    if reuse is not None and config.search.regularizer != "prior":
      searcher = reuse.searcher
    else:
      searcher = make_searcher(config, model, prior, mesh)
    return cls(config, searcher, prior, mesh)

  def _stream(self, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(self.config.seed), stream)

  def prior_starts(self, num_images: int, first_index: int = 0) -> np.ndarray:
    """[N, K, m]: one prior sample per image (the "prior" start)."""
    return per_image_samples(self.prior, self._stream(PRIOR_START_STREAM), first_index,
                             num_images, 1)[:, 0]

  def starts(self, z0: np.ndarray, first_index: int = 0) -> np.ndarray:
    """z0 [N, K, m] -> [N, R, K, m]: each image's start plus its R − 1 prior samples (z0 itself
    when R = 1)."""
    restarts = self.config.search.restarts
    if restarts <= 1:
      return np.asarray(z0)
    extra = per_image_samples(self.prior, self._stream(RESTART_STREAM), first_index, len(z0),
                              restarts - 1)
    return np.concatenate([np.asarray(z0)[:, None], extra.astype(np.asarray(z0).dtype)], 1)

  def __call__(self, params, x: np.ndarray, z0: np.ndarray, first_index: int = 0,
               restarts: bool = True, desc: str = "search", report: bool = True) -> dict:
    """Searches images x [N, ...] from z0 [N, K, m] (plus the restarts, unless `restarts` is
    False, or z0 [N, R, K, m] as given): {z, mse, trace, converged, converged_step, finite}
    for all N; a NaN/Inf objective is printed (naming `desc`) unless `report` is False."""
    starts = self.starts(z0, first_index) if restarts and np.ndim(z0) == 3 else z0
    out = search_all(self.searcher, params, np.asarray(x), starts, self.mesh,
                     self.config.search.batch_size, desc)
    if report:
      report_diverged(out["finite"], desc)
    return out
