"""In-domain (ID) and out-of-domain (OOD) regions of the latent space (PAPER.md sections 1, 4).

Latents are split into continuous z: [n, K, m] in the normalised cube [0, 1] and categorical
factors c: [n, K, c] (values 0 .. num_categories - 1). A `SplitSpec` says which slot
combinations are ID; `sample(spec, domain, n, rng, ...)` draws from one of the two regions.

Schemes:
  diagonal: ID = slots near-equal. With the slot-wise mean z̄ = mean_k z_k, the distance to the
    diagonal {z_1 = ... = z_K} is d(z) = ‖z − z̄‖ (Frobenius over K × m, band "joint"), or
    d(z) = max_l ‖z_{:,l} − z̄_l‖ (over the K slots, latent by latent: band "per_latent", the
    sampler of Wiedemer et al.'s released code, a wider band in which every latent of the
    slots may differ by up to √2 δ at once); ID is d ≤ δ, OOD is d > δ. Categorical factors
    are drawn uniformly in both.
  l_shaped: ID = some slot lies in the corner box [0, δ]^m, every other slot anywhere:
    {z : min_k max_l z_{k,l} <= δ}, a union of K product sets (for K = 2, m = 1 the L-shaped
    support of Lachapelle et al., NeurIPS 2023). Every slot takes every value ID, the support is
    path-connected and full-dimensional, and OOD (no slot in the box) recombines values that
    were only seen next to an anchored slot: Cartesian-product extrapolation. ID holds a
    fraction 1 − (1 − δ^m)^K of the cube.
  held_out_combinations: the combination (c_1, ..., c_K) of one categorical factor over the
    slots decides: `held_out` combinations are OOD, the rest ID. Continuous latents uniform.
  iid: no split (ID and OOD are the same distribution), for sanity checks.
Samplers are deterministic given the numpy Generator they are passed.
"""
from __future__ import annotations

import dataclasses
import itertools
import numpy as np

from compgen import errors

SCHEMES = ("diagonal", "l_shaped", "held_out_combinations", "iid")
BANDS = ("joint", "per_latent")
DOMAINS = ("id", "ood")


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  """Which slot combinations are in-domain.

  Attributes:
    scheme: one of `SCHEMES`.
    delta: radius δ of the diagonal band (scheme "diagonal") or side of the corner box
      (scheme "l_shaped"), in (0, 1).
    held_out: combinations (c_1, ..., c_K) of factor `factor` that are OOD only (scheme
      "held_out_combinations"). Empty means the default: combinations with
      Σ_k c_k ≡ 1 (mod num_categories), which keeps every value of every slot ID.
    factor: index of the categorical factor whose combinations are held out.
    band: how the diagonal band measures distance, one of `BANDS` (scheme "diagonal").
  """
  scheme: str = "diagonal"
  delta: float = 0.125
  held_out: tuple[tuple[int, ...], ...] = ()
  factor: int = 0
  band: str = "joint"

  def __post_init__(self):
    if self.scheme not in SCHEMES:
      raise errors.ConfigError(f"Unknown split scheme {self.scheme!r}: choose one of {SCHEMES}.")
    if self.band not in BANDS:
      raise errors.ConfigError(f"Unknown diagonal band {self.band!r}: choose one of {BANDS}.")
    if not 0.0 < self.delta < 1.0:
      raise ValueError(f"delta={self.delta!r}: the diagonal band radius (or the L-shaped "
                       "split's box side) must be in (0, 1).")


# Each dataset's benchmark split: sprites use the per-latent band of the released sprites
# sampler (it gives object slots); synthetic vectors the L-shaped support, where additive
# decoders identify the slots (docs/findings.md, "The experiment on synthetic vectors").
_DATASET_SPLITS = {"sprites": SplitSpec("diagonal", 0.125, band="per_latent"),
                   "synthetic": SplitSpec("l_shaped", 0.3)}


def default_split(dataset: str) -> SplitSpec:
  """The split of `dataset`'s benchmark (the diagonal joint band, δ = 0.125, for others)."""
  return _DATASET_SPLITS.get(dataset, SplitSpec())


def distance_to_diagonal(z: np.ndarray, band: str = "joint") -> np.ndarray:
  """d(z): [n, K, m] -> [n]; ‖z − mean_k z_k‖ over slots and dims ("joint") or the largest
  over latents l of ‖z_{:,l} − mean_k z_{k,l}‖ over slots ("per_latent")."""
  offsets = z - z.mean(axis=1, keepdims=True)
  if band == "per_latent":
    return np.linalg.norm(offsets, axis=1).max(axis=-1)
  return np.linalg.norm(offsets, axis=(1, 2))


def held_out_combinations(spec: SplitSpec, num_slots: int,
                          num_categories: tuple[int, ...]) -> set[tuple[int, ...]]:
  """The OOD combinations of `spec.factor`, validated so that OOD only recombines ID values."""
  if not num_categories:
    raise ValueError("Scheme 'held_out_combinations' needs a categorical factor; this "
                     "dataset has none. Use scheme 'diagonal' or 'iid'.")
  if not 0 <= spec.factor < len(num_categories):
    raise ValueError(f"factor={spec.factor}: this dataset has {len(num_categories)} "
                     "categorical factor(s).")
  if num_slots < 2:
    raise ValueError("Scheme 'held_out_combinations' needs num_slots >= 2: with one slot "
                     "there are no combinations to hold out.")
  s = num_categories[spec.factor]
  every = set(itertools.product(range(s), repeat=num_slots))
  if spec.held_out:
    held = {tuple(int(v) for v in c) for c in spec.held_out}
    bad = [c for c in held if c not in every]
    if bad:
      raise ValueError(f"held_out combinations {bad} are not {num_slots}-tuples of values "
                       f"in [0, {s}).")
  else:
    held = {c for c in every if sum(c) % s == 1 % s}
  seen_id = every - held
  if not seen_id:
    raise ValueError("held_out holds out every combination: nothing would be in-domain.")
  for k in range(num_slots):
    missing = {c[k] for c in held} - {c[k] for c in seen_id}
    if missing:
      raise ValueError(f"held_out leaves value(s) {sorted(missing)} of slot {k} only OOD: OOD "
                       "must recombine values seen in-domain. Hold out fewer combinations.")
  return held


def _sample_diagonal_band(rng, n, num_slots, dim, delta, band):
  """Uniform samples of {z in [0,1]^{K×m}: d(z) <= δ}: centre on the diagonal + orthogonal
  noise, uniform in a ball of radius δ of dimension (K−1)m ("joint") or in one of dimension
  K−1 per latent ("per_latent")."""
  out = np.empty((0, num_slots, dim))
  axes, ball_dim = ((1, 2), (num_slots - 1) * dim) if band == "joint" else ((1,), num_slots - 1)
  while len(out) < n:
    m = 2 * (n - len(out)) + 16
    centre = rng.uniform(size=(m, 1, dim))
    noise = rng.standard_normal((m, num_slots, dim))
    noise -= noise.mean(axis=1, keepdims=True)  # orthogonal to the diagonal
    shape = (m, 1, 1) if band == "joint" else (m, 1, dim)
    radius = delta * rng.uniform(size=shape) ** (1.0 / ball_dim)
    noise *= radius / np.maximum(np.linalg.norm(noise, axis=axes, keepdims=True), 1e-12)
    z = centre + noise
    out = np.concatenate([out, z[np.all((z >= 0) & (z <= 1), axis=(1, 2))]])
  return out[:n]


def anchored_slots(z: np.ndarray, delta: float) -> np.ndarray:
  """Slots in the corner box [0, δ]^m of scheme "l_shaped": z [n, K, m] -> bool [n, K]."""
  return z.max(axis=-1) <= delta


def _sample_l_shaped(rng, n, num_slots, dim, delta):
  """Uniform samples of {z : some slot in [0, δ]^m}: one slot drawn in the box, the others
  uniform, kept with probability 1 / (number of slots in the box) so that the overlaps of
  the K product sets are not counted twice."""
  out = np.empty((0, num_slots, dim))
  while len(out) < n:
    m = 2 * (n - len(out)) + 16
    z = rng.uniform(size=(m, num_slots, dim))
    z[np.arange(m), rng.integers(0, num_slots, m)] *= delta
    keep = rng.uniform(size=m) * anchored_slots(z, delta).sum(-1) <= 1.0
    out = np.concatenate([out, z[keep]])
  return out[:n]


def _sample_continuous(spec, domain, rng, n, num_slots, dim):
  if spec.scheme not in ("diagonal", "l_shaped"):
    return rng.uniform(size=(n, num_slots, dim))
  if num_slots == 1:
    raise ValueError(f"Scheme {spec.scheme!r} needs num_slots >= 2: with one slot there are "
                     "no combinations to recombine OOD.")
  if domain == "id":
    if spec.scheme == "l_shaped":
      return _sample_l_shaped(rng, n, num_slots, dim, spec.delta)
    return _sample_diagonal_band(rng, n, num_slots, dim, spec.delta, spec.band)
  out = np.empty((0, num_slots, dim))
  while len(out) < n:
    z = rng.uniform(size=(2 * (n - len(out)) + 16, num_slots, dim))
    ood = (~anchored_slots(z, spec.delta).any(-1) if spec.scheme == "l_shaped"
           else distance_to_diagonal(z, spec.band) > spec.delta)
    out = np.concatenate([out, z[ood]])
  return out[:n]


def _sample_factors(spec, domain, rng, n, num_slots, num_categories):
  factors = np.stack([rng.integers(0, s, size=(n, num_slots)) for s in num_categories],
                     axis=-1) if num_categories else np.zeros((n, num_slots, 0), np.int64)
  if spec.scheme == "held_out_combinations":
    held = held_out_combinations(spec, num_slots, num_categories)
    s = num_categories[spec.factor]
    pool = sorted(held if domain == "ood" else
                  set(itertools.product(range(s), repeat=num_slots)) - held)
    factors[:, :, spec.factor] = np.asarray(pool)[rng.integers(0, len(pool), size=n)]
  return factors


def sample(spec: SplitSpec, domain: str, n: int, rng: np.random.Generator, *, num_slots: int,
           latent_dim: int, num_categories: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
  """Draws n latents from the ID or OOD region.

  Returns:
    z: [n, K, m] float32 in [0, 1]; factors: [n, K, len(num_categories)] int32.
  """
  if domain not in DOMAINS:
    raise ValueError(f"Unknown domain {domain!r}: choose one of {DOMAINS}.")
  if n < 0:
    raise ValueError(f"n={n}: cannot draw a negative number of samples.")
  z = _sample_continuous(spec, domain, rng, n, num_slots, latent_dim)
  factors = _sample_factors(spec, domain, rng, n, num_slots, num_categories)
  return z.astype(np.float32), factors.astype(np.int32)


def in_domain(spec: SplitSpec, z: np.ndarray, factors: np.ndarray,
              num_categories: tuple[int, ...] = ()) -> np.ndarray:
  """Membership of the ID region: z: [n, K, m], factors: [n, K, c] -> bool [n]."""
  if spec.scheme == "diagonal":
    return distance_to_diagonal(z, spec.band) <= spec.delta
  if spec.scheme == "l_shaped":
    return anchored_slots(z, spec.delta).any(-1)
  if spec.scheme == "held_out_combinations":
    held = held_out_combinations(spec, z.shape[1], num_categories)
    return np.array([tuple(c) not in held for c in factors[:, :, spec.factor].tolist()], bool)
  return np.ones(len(z), bool)
