"""The identifiability score: slot-wise readouts fitted on ID latents, applied unchanged OOD.

For inferred slots ẑ [N, K, m̂] and the true slots' continuous factors z [N, K, m] (and
categorical factors c [N, K, n_c], optional):

1. Match inferred to true slots, either `"global"`ly — one permutation for the whole data,
   the Hungarian assignment maximising the validation score of a readout per (inferred,
   true) slot pair — or `"per_example"` — one readout shared by all slots, fitted with the
   best slot order per example (a permutation-invariant loss), then each example's slots
   matched by the lowest readout error to the (standardised) true slots; for models whose
   slots are exchangeable. Choosing each example's order with the truth lifts uninformative
   latents a little above chance (random latents, K = 2: mean R² 0.04–0.09 instead of ≈ 0).
2. Readouts (Flax, trained with optax full-batch Adam under one `jit`, vmapped over slots):
   `"linear"` or `"mlp"` from one inferred slot to that true slot's factors — a regression
   head (standardised targets) and a softmax head per categorical factor.
3. Score each evaluation split with the ID-fitted readouts: R² per continuous factor (with
   the fit set's variance), accuracy per categorical factor, and the identifiability score =
   their mean over all slots and factors (each factor dimension weighs one).
"""
from __future__ import annotations

import functools
import itertools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import optimize

from compgen import errors
from compgen.models import layers

READOUTS = {"linear": (), "mlp": (64, 64)}
MATCHINGS = ("global", "per_example")


class Readout(nn.Module):
  """ẑ_k [N, m̂] -> (continuous factors [N, m], logits per categorical factor [N, n_c, C])."""
  hidden: Sequence[int]
  num_continuous: int
  num_categories: tuple[int, ...]

  @nn.compact
  def __call__(self, x):
    h = layers.MLP(tuple(self.hidden))(x) if self.hidden else x
    h = nn.gelu(h) if self.hidden else h
    cont = nn.Dense(self.num_continuous, name="regression")(h)
    width = max(self.num_categories, default=1)
    if not self.num_categories:
      return cont, jnp.zeros(x.shape[:-1] + (0, width), x.dtype)
    logits = nn.Dense(len(self.num_categories) * width, name="classification")(h)
    logits = logits.reshape(x.shape[:-1] + (len(self.num_categories), width))
    # Classes a factor does not have get -inf logits.
    valid = jnp.arange(width)[None, :] < jnp.asarray(self.num_categories)[:, None]
    return cont, jnp.where(valid, logits, -1e9)


def _fit(module, rng, x, cont, cat, steps: int, learning_rate: float):
  """Full-batch AdamW on one readout, early-stopped on a held-out fifth of the examples.

  x [N, S, d], cont [N, S, m] (standardised), cat [N, S, n_c]: S slots per example read out
  by the same readout; the loss takes, per example, the best of the S! slot orders (S = 1:
  a plain regression/classification). Returns (the params with the lowest validation loss,
  whether the validation loss stayed finite: False when the fit diverged).
  """
  perms = jnp.asarray(list(itertools.permutations(range(x.shape[1]))))  # [P, S]
  n_val = max(x.shape[0] // 5, 1)

  def loss(p, xs, ys, cs):
    pred, logits = module.apply(p, xs)  # [N, S, m], [N, S, n_c, C]
    err = ((pred[:, perms] - ys[:, None]) ** 2).sum(-1)  # [N, P, S]
    if cs.shape[-1]:
      logp = jax.nn.log_softmax(logits, -1)[:, perms]  # [N, P, S, n_c, C]
      err = err - jnp.take_along_axis(
          logp, jnp.broadcast_to(cs[:, None, :, :, None], logp.shape[:-1] + (1,)),
          -1)[..., 0].sum(-1)
    return err.sum(-1).min(-1).mean()

  train = (x[n_val:], cont[n_val:], cat[n_val:])
  val = (x[:n_val], cont[:n_val], cat[:n_val])
  params = module.init(rng, x[:1])
  opt = optax.adamw(learning_rate, weight_decay=1e-4)

  def step(carry, _):
    p, s, best, best_loss, finite = carry
    grads = jax.grad(loss)(p, *train)
    updates, s = opt.update(grads, s, p)
    p = optax.apply_updates(p, updates)
    val_loss = loss(p, *val)
    better = val_loss < best_loss
    best = jax.tree.map(lambda new, old: jnp.where(better, new, old), p, best)
    return (p, s, best, jnp.minimum(val_loss, best_loss), finite & jnp.isfinite(val_loss)), None

  init_loss = loss(params, *val)
  init = (params, opt.init(params), params, init_loss, jnp.isfinite(init_loss))
  (_, _, best, _, finite), _ = jax.lax.scan(step, init, None, length=steps)
  return best, finite


@functools.partial(jax.jit, static_argnames=("module", "steps", "learning_rate"))
def _fit_many(module, rngs, x, cont, cat, steps: int, learning_rate: float):
  """`_fit` vmapped over a leading readout axis, compiled once per module and shapes."""
  return jax.vmap(lambda r, a, b, c: _fit(module, r, a, b, c, steps, learning_rate))(
      rngs, x, cont, cat)


@functools.partial(jax.jit, static_argnames="module")
def _predict_many(module, params, x):
  return jax.vmap(module.apply)(params, x)


class _Readouts:
  """P readouts fitted at once (vmapped): inputs [P, N, S, d], targets [P, N, S, m] and
  [P, N, S, n_c]; `predict` takes [P, N', d]."""

  def __init__(self, kind: str, num_continuous: int, num_categories: tuple[int, ...],
               steps: int, seed: int):
    self.module = Readout(READOUTS[kind], num_continuous, tuple(num_categories))
    self.steps, self.seed = steps, seed
    self.learning_rate = 1e-2 if kind == "linear" else 3e-3

  def fit(self, x, cont, cat):
    rngs = jax.random.split(jax.random.PRNGKey(self.seed), len(x))
    self.params, finite = _fit_many(self.module, rngs, jnp.asarray(x, jnp.float32),
                                    jnp.asarray(cont, jnp.float32), jnp.asarray(cat, jnp.int32),
                                    steps=self.steps, learning_rate=self.learning_rate)
    if not np.asarray(finite).all():
      raise FloatingPointError(
          f"{int((~np.asarray(finite)).sum())} of {len(x)} readout fits diverged (validation "
          "loss NaN/Inf); their weights would be untrained. The latents are likely huge or "
          "badly scaled: check them, or use readout='linear'.")
    return self

  def predict(self, x):
    cont, logits = _predict_many(self.module, self.params, jnp.asarray(x, jnp.float32))
    return np.asarray(cont), np.asarray(logits)


def _standardise(x, mean, std):
  return (x - mean) / std


def _scores(cont_pred, cont_true, logits, cat_true):
  """Standardised predictions -> (R² [.., m], accuracy [.., n_c]) over the example axis -2."""
  r2 = 1.0 - ((cont_pred - cont_true) ** 2).mean(-2)  # targets have unit fit-set variance
  acc = (logits.argmax(-1) == cat_true).mean(-2)
  return r2, acc


def _check(name, z_hat, latents, factors):
  if z_hat.ndim != 3 or latents.ndim != 3 or len(z_hat) != len(latents):
    raise ValueError(f"{name}: inferred latents {z_hat.shape} and true latents "
                     f"{latents.shape} must be [N, K̂, m̂] and [N, K, m] with the same N.")
  if z_hat.shape[1] != latents.shape[1]:
    raise ValueError(f"{name}: {z_hat.shape[1]} inferred slots vs {latents.shape[1]} true "
                     "slots: slot counts must agree to match slots.")
  if factors is not None and factors.shape[:2] != latents.shape[:2]:
    raise ValueError(f"{name}: factors {factors.shape} do not match latents {latents.shape}.")
  for what, a in (("inferred latents", z_hat), ("true latents", latents)):
    bad = ~np.isfinite(a).reshape(len(a), -1).all(1)
    if bad.any():
      raise ValueError(f"{name}: {what} of examples {np.flatnonzero(bad)[:10].tolist()} (of "
                       f"{len(a)}) hold NaN/Inf (a diverged search or encoder?): drop those "
                       "examples or fix what made them; a readout cannot be fitted or scored "
                       "on them.")


def _permute(z, assignment):
  """[N, K, d] with per-example assignment [N, K] (true slot j <- inferred slot a[n, j])."""
  return np.take_along_axis(z, assignment[:, :, None], axis=1)


class FittedReadouts:
  """Readouts fitted on ID latents (`fit_readouts`): `assignment` ([K], true slot j <-
  inferred slot assignment[j], for "global" matching; None per example) and `score(splits)`,
  which applies them unchanged to any number of splits."""

  def __init__(self, readouts, matching, assign, std_in, std_lat, k, names, assignment):
    self._readouts, self.matching, self._assign = readouts, matching, assign
    self._std_in, self._std_lat, self._k, self._names = std_in, std_lat, k, names
    self.assignment = assignment

  def score(self, splits: dict[str, tuple]) -> dict:
    """{name: (ẑ [N, K, m̂], latents [N, K, m], factors [N, K, n_c] or None)} -> {name:
    {"score", "r2" [K, m], "accuracy" [K, n_c], "per_factor" {name: mean over slots},
    "assignment" ([K] global, or the first examples' [n, K] per example)}}."""
    k, readouts = self._k, self._readouts
    results = {}
    for split, (a, b, c) in splits.items():
      _check(split, a, b, c)
      c = _no_factors(b) if c is None else c
      x, y = self._std_in(a), self._std_lat(b)
      perm = self._assign(x, y, c)
      xp = _permute(x, perm)
      if self.matching == "global":  # one readout per true slot
        cont, logits = readouts.predict(np.swapaxes(xp, 0, 1))  # [K, N, ...]
      else:  # the shared readout on all slots at once, back to [K, N, ...]
        cont, logits = readouts.predict(xp.reshape(1, -1, xp.shape[-1]))
        cont = np.swapaxes(cont.reshape(len(x), k, -1), 0, 1)
        logits = np.swapaxes(logits.reshape((len(x), k) + logits.shape[2:]), 0, 1)
      r2, acc = _scores(cont, np.swapaxes(y, 0, 1), logits, np.swapaxes(c, 0, 1))
      per_factor = np.concatenate([r2, acc], -1)  # [K, m + n_c]
      results[split] = {
          "score": float(per_factor.mean()), "r2": r2.tolist(), "accuracy": acc.tolist(),
          "per_factor": dict(zip(self._names, per_factor.mean(0).tolist())),
          "assignment": (perm[0] if self.matching == "global" else perm[:8]).tolist()}
    return results


def _no_factors(z):
  return np.zeros(z.shape[:2] + (0,), np.int32)


def fit_readouts(fit: tuple, *, readout: str = "mlp", matching: str = "global",
                 num_categories: Sequence[int] | None = None,
                 factor_names: Sequence[str] | None = None, steps: int = 1000,
                 seed: int = 0) -> FittedReadouts:
  """Matches inferred to true slots and fits the readouts on `fit` = (ẑ [N, K, m̂], true
  latents [N, K, m], factors int [N, K, n_c] or None), the ID data; arguments as in
  `identifiability` (num_categories default: max label + 1 of the fit set)."""
  if readout not in READOUTS:
    raise errors.ConfigError(f"Unknown readout {readout!r}: choose one of {sorted(READOUTS)}.")
  if matching not in MATCHINGS:
    raise errors.ConfigError(f"Unknown matching {matching!r}: choose one of {MATCHINGS}.")
  z_hat, lat, fac = fit
  _check("fit", z_hat, lat, fac)
  k, m = lat.shape[1], lat.shape[2]
  fac = _no_factors(lat) if fac is None else fac
  n_c = fac.shape[2]
  if num_categories is None:
    num_categories = tuple(int(fac[..., i].max()) + 1 for i in range(n_c))
  names = list(factor_names or [f"z{i}" for i in range(m)] + [f"c{i}" for i in range(n_c)])
  if len(names) != m + n_c:
    raise ValueError(f"{len(names)} factor names for {m} continuous + {n_c} categorical.")

  # Standardise inputs and continuous targets with the fit set's statistics.
  zm, zs = z_hat.mean((0, 1)), z_hat.std((0, 1)) + 1e-6
  lm, ls = lat.mean(0), lat.std(0) + 1e-6  # per true slot and factor
  std_in = lambda z: _standardise(z, zm, zs).astype(np.float32)
  std_lat = lambda z: _standardise(z, lm, ls).astype(np.float32)
  x_fit, y_fit = std_in(z_hat), std_lat(lat)
  readouts = _Readouts(readout, m, tuple(num_categories), steps, seed)

  if matching == "global":
    # Match on the validation fifth that early stopping holds out of training.
    va = slice(None, max(len(x_fit) // 5, 1))
    pairs = list(itertools.product(range(k), range(k)))  # (inferred i, true j)
    readouts.fit(np.stack([x_fit[:, i:i + 1] for i, _ in pairs]),
                 np.stack([y_fit[:, j:j + 1] for _, j in pairs]),
                 np.stack([fac[:, j:j + 1] for _, j in pairs]))
    cont, logits = readouts.predict(np.stack([x_fit[va, i] for i, _ in pairs]))
    r2, acc = _scores(cont, np.stack([y_fit[va, j] for _, j in pairs]), logits,
                      np.stack([fac[va, j] for _, j in pairs]))
    value = np.concatenate([r2, acc], -1).mean(-1).reshape(k, k)
    rows, cols = optimize.linear_sum_assignment(-value)
    inferred_for_true = rows[np.argsort(cols)]  # true slot j <- inferred slot
    # Refit the matched readouts on all the fit data.
    readouts.fit(np.stack([x_fit[:, i:i + 1] for i in inferred_for_true]),
                 np.stack([y_fit[:, j:j + 1] for j in range(k)]),
                 np.stack([fac[:, j:j + 1] for j in range(k)]))
    assign = lambda x, y, c: np.broadcast_to(inferred_for_true, (len(x), k))
    assignment = inferred_for_true.tolist()
  else:
    perms = np.asarray(list(itertools.permutations(range(k))))  # [P, K]
    # One readout shared by all slots, fitted with the best slot order per example.
    readouts.fit(x_fit[None], y_fit[None], fac[None])
    assignment = None

    def assign(x, y, c):
      """Per example, the slot permutation with the lowest readout error to the truth."""
      cont, logits = readouts.predict(x.reshape(1, -1, x.shape[-1]))
      cont = cont.reshape(len(x), k, 1, -1)  # inferred i, candidate true j
      err = ((cont - y[:, None]) ** 2).sum(-1)  # [N, i, j]
      if c.shape[-1]:
        logp = np.asarray(jax.nn.log_softmax(logits, -1)).reshape(
            (len(x), k, 1) + logits.shape[2:])  # [N, i, 1, n_c, C]
        labels = np.broadcast_to(c[:, None, :, :, None], (len(x), k, k, c.shape[-1], 1))
        logp = np.broadcast_to(logp, (len(x), k, k) + logp.shape[3:])
        err = err - np.take_along_axis(logp, labels, -1)[..., 0].sum(-1)
      cost = err[:, perms, np.arange(k)].sum(-1)  # [N, P]: true j <- inferred perms[p, j]
      return perms[cost.argmin(1)]

  return FittedReadouts(readouts, matching, assign, std_in, std_lat, k, names, assignment)


def identifiability(fit: tuple, splits: dict[str, tuple], *, readout: str = "mlp",
                    matching: str = "global", num_categories: Sequence[int] | None = None,
                    factor_names: Sequence[str] | None = None, steps: int = 1000,
                    seed: int = 0) -> dict:
  """Identifiability of inferred slots, readouts fitted on `fit` and scored on `splits`.

  Args:
    fit: (ẑ [N, K, m̂], true latents [N, K, m], factors int [N, K, n_c] or None) — ID data.
    splits: {name: (ẑ, latents, factors)} to score, e.g. {"id": ..., "ood": ...}.
    readout: "linear" | "mlp".  matching: "global" | "per_example".
    num_categories: classes per categorical factor (default: max label + 1 over all data).
    factor_names: names of the m continuous then n_c categorical factors.
  Returns `FittedReadouts.score(splits)`: {split: {"score", "r2" [K, m], "accuracy" [K, n_c],
  "per_factor" {name: mean over slots}, "assignment"}}.
  """
  for name, (a, b, c) in splits.items():
    _check(name, a, b, c)
  if num_categories is None and fit[2] is not None:
    labels = [fit[2]] + [c for _, _, c in splits.values() if c is not None]
    num_categories = tuple(int(max(a[..., i].max() for a in labels)) + 1
                           for i in range(fit[2].shape[2]))
  return fit_readouts(fit, readout=readout, matching=matching, num_categories=num_categories,
                      factor_names=factor_names, steps=steps, seed=seed).score(splits)


def region_mse(x: np.ndarray, x_hat: np.ndarray, region: np.ndarray) -> np.ndarray:
  """Per image, the squared error averaged over the pixels of a region (and channels):
  x, x_hat [N, H, W, C], region [N, H, W] bool -> [N], NaN where the region is empty."""
  error = ((np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)) ** 2).mean(-1)
  count = region.sum((1, 2))
  total = np.where(region, error, 0.0).sum((1, 2))
  return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def reconstruction_metrics(x: np.ndarray, mse: np.ndarray) -> dict:
  """Inputs x [N, ...] and each one's reconstruction MSE [N] -> {"recon_mse": mean squared
  error, "recon_r2": 1 − SSE / SST} with SST the squared deviation from the mean input."""
  x = np.asarray(x, np.float64)
  sse = np.asarray(mse, np.float64).sum() * np.prod(x.shape[1:])
  sst = ((x - x.mean(0, keepdims=True)) ** 2).sum()
  return {"recon_mse": float(np.mean(mse)), "recon_r2": float(1 - sse / sst)}
