"""Factorised slot priors p(z) = Π_k p_k(z_k) fitted on in-domain latents (Eq. 4.4).

Each prior is a pytree (jit-able) with a pure `sample(rng, n) -> [n, K, m]`; the ones with a
density also have `log_prob(z: [K, m]) -> scalar` (usable as a search regulariser). Slots are sampled independently, so most samples are slot
combinations never seen in-domain.

  empirical  slot k of each sample is slot k of an independently drawn ID example
  gaussian   per-slot Gaussian with full covariance
  kde        per-slot Gaussian kernel density (Scott's bandwidth on each slot's covariance)
"""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np

from compgen import errors

PRIORS = ("empirical", "gaussian", "kde")


def _check(latents: np.ndarray) -> np.ndarray:
  latents = np.asarray(latents, np.float32)
  if latents.ndim != 3 or len(latents) < 2:
    raise ValueError(f"Priors are fitted on ID latents [N >= 2, K, m], got {latents.shape}.")
  if not np.all(np.isfinite(latents)):
    raise ValueError("The ID latents hold NaN/Inf values; cannot fit a prior to them.")
  return latents


def _cholesky(latents: np.ndarray, scale: float = 1.0) -> np.ndarray:
  """Per-slot Cholesky factors of scale² · (covariance + jitter): [K, m, m]."""
  m = latents.shape[2]
  covs = [np.cov(latents[:, k].T).reshape(m, m) + 1e-6 * np.eye(m) for k in range(latents.shape[1])]
  return np.stack([scale * np.linalg.cholesky(c) for c in covs]).astype(np.float32)


@flax.struct.dataclass
class EmpiricalPrior:
  latents: jax.Array  # [N, K, m]

  def sample(self, rng, n: int) -> jax.Array:
    num, k = self.latents.shape[:2]
    idx = jax.random.randint(rng, (n, k), 0, num)
    return self.latents[idx, jnp.arange(k)]


@flax.struct.dataclass
class GaussianPrior:
  mean: jax.Array  # [K, m]
  chol: jax.Array  # [K, m, m]

  def sample(self, rng, n: int) -> jax.Array:
    eps = jax.random.normal(rng, (n,) + self.mean.shape)
    return self.mean + jnp.einsum("kij,nkj->nki", self.chol, eps)

  def log_prob(self, z):
    return _per_slot_log_prob(z, self.mean, self.chol).sum()


@flax.struct.dataclass
class KDEPrior:
  latents: jax.Array  # [N, K, m] kernel centres
  chol: jax.Array     # [K, m, m] kernel covariance factor (bandwidth · slot covariance)

  def sample(self, rng, n: int) -> jax.Array:
    centres = EmpiricalPrior(self.latents).sample(rng, n)
    eps = jax.random.normal(jax.random.fold_in(rng, 1), centres.shape)
    return centres + jnp.einsum("kij,nkj->nki", self.chol, eps)

  def log_prob(self, z):
    per_centre = jax.vmap(lambda c: _per_slot_log_prob(z, c, self.chol))(self.latents)  # [N, K]
    return jnp.sum(jax.nn.logsumexp(per_centre, axis=0) - jnp.log(self.latents.shape[0]))


def _per_slot_log_prob(z, mean, chol):
  """log N(z_k; mean_k, L_k L_kᵀ) per slot: z, mean [K, m], chol [K, m, m] -> [K]."""
  diff = z - mean
  sol = jax.vmap(lambda l, d: jax.scipy.linalg.solve_triangular(l, d, lower=True))(chol, diff)
  logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
  return -0.5 * jnp.sum(sol**2, -1) - logdet - 0.5 * z.shape[-1] * jnp.log(2 * jnp.pi)


def fit_prior(name: str, latents: np.ndarray, max_centres: int = 4096, seed: int = 0):
  """Fits the factorised prior `name` (one of PRIORS) to ID latents [N, K, m]."""
  latents = _check(latents)
  if name == "empirical":
    return EmpiricalPrior(jnp.asarray(latents))
  if name == "gaussian":
    return GaussianPrior(jnp.asarray(latents.mean(0)), jnp.asarray(_cholesky(latents)))
  if name == "kde":
    if len(latents) > max_centres:
      latents = latents[np.random.default_rng(seed).choice(len(latents), max_centres, False)]
    n, _, m = latents.shape
    bandwidth = n ** (-1.0 / (m + 4))  # Scott's rule
    return KDEPrior(jnp.asarray(latents), jnp.asarray(_cholesky(latents, bandwidth)))
  raise errors.ConfigError(f"Unknown prior {name!r}: choose one of {PRIORS}.")


def negative_log_prob(prior):
  """R(z) = −log p(z) / (K m) for `Searcher(regularizer=...)`; needs a prior with a density."""
  if not hasattr(prior, "log_prob"):
    raise ValueError(f"{type(prior).__name__} has no density; use the 'gaussian' or 'kde' "
                     "prior as a search regulariser.")
  return lambda z: -prior.log_prob(z) / z.size
