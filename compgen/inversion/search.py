"""Search (Eq. 4.3): z* = argmin_z ‖x − f̂(z)‖² + λ R(z), by gradient descent through f̂.

Pure functional and compiled once per shape: the per-image objective is vmapped over the
batch (restarts are extra batch entries), the optimiser is an optax transformation applied per
image, and the step loop is a `lax.scan`, all under one `jit`. Each image keeps its best iterate
(lowest objective seen), so an iterate that turns non-finite is never returned: the image is
flagged (`finite=False`) and the rest of the batch is unaffected. Inputs are checked first
(`check_inputs`): NaN/Inf in x or z0 is an error naming the images, unless turned off, in
which case those images come back flagged the same way.

    searcher = Searcher(decode_fn, optimizer=optax.adam(0.03), num_steps=200, tol=1e-4)
    result = searcher(params, x, z0)      # x: [B, ...], z0: [B, K, m] or [B, R, K, m]

`decode_fn(params, z: [N, K, m]) -> [N, ...]` is any batched decoder (e.g. a trained model's
or a true generator). `stream_search` runs a large dataset with continuous batching: chunks
of steps, converged images retired and their places refilled with new ones.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from compgen import parallel
from compgen.data import checks


@flax.struct.dataclass
class SearchState:
  """Per-image search state; every leaf has a leading batch axis [N]."""
  z: jax.Array            # [N, K, m] current iterate
  opt_state: object       # optax state of each image
  best_z: jax.Array       # [N, K, m] lowest-objective iterate so far
  best_loss: jax.Array    # [N] its objective
  best_mse: jax.Array     # [N] its reconstruction MSE
  steps: jax.Array        # [N] steps taken
  converged_step: jax.Array  # [N] first step with MSE <= tol, or -1
  finite: jax.Array       # [N] False once the objective was non-finite


@flax.struct.dataclass
class SearchResult:
  """Outcome per image: z [B, K, m], loss (objective) and mse [B], trace [B, T] (objective of
  the current iterate per step, of the restart that won), converged_step [B] (-1: never),
  converged [B], finite [B], restart [B] (index of the restart that won)."""
  z: jax.Array
  loss: jax.Array
  mse: jax.Array
  trace: jax.Array
  converged_step: jax.Array
  converged: jax.Array
  finite: jax.Array
  restart: jax.Array


def latent_l2(z: jax.Array) -> jax.Array:
  """A latent-norm regulariser R(z) = mean(z²) for one image's z: [K, m] -> scalar."""
  return jnp.mean(z**2)


@dataclasses.dataclass(eq=False)
class Searcher:
  """A compiled batched search through `decode_fn` (see the module doc).

  Attributes:
    decode_fn: (params, z [N, K, m]) -> reconstructions [N, ...].
    optimizer: optax transformation, applied to each image separately.
    num_steps: gradient steps per call.
    tol: an image has converged once its reconstruction MSE is <= tol.
    regularizer: optional R(z: [K, m]) -> scalar added with weight `reg_weight`
      (e.g. `latent_l2`, or a prior's negative log-density).
    mesh: optional device mesh; the batch axis is sharded over its data axis.
    micro_batch: images searched together inside the compiled call; a larger batch runs as
      a `lax.map` over micro-batches of this size (padded), which keeps the working set in
      cache on CPUs. None: the whole batch at once (best on GPUs and TPUs). The results do
      not depend on it.
    check_inputs: refuse x or z0 that are not floating point or hold NaN/Inf, naming the
      images (`compgen.data.checks.check_batch`; one host check per call, not per step).
      False: search them anyway; such images come back with finite=False.
  """
  decode_fn: Callable
  optimizer: optax.GradientTransformation = dataclasses.field(
      default_factory=lambda: optax.adam(0.03))
  num_steps: int = 200
  tol: float = 1e-4
  regularizer: Callable | None = None
  reg_weight: float = 0.0
  mesh: jax.sharding.Mesh | None = None
  micro_batch: int | None = None
  check_inputs: bool = True

  def __post_init__(self):
    if self.num_steps < 1:
      raise ValueError(f"num_steps={self.num_steps}: must be >= 1.")
    self.num_traces = 0  # how often the search was traced (compiled); tests pin it
    self._search = jax.jit(self._search_impl)
    self._run = jax.jit(self._run_impl, static_argnums=3)
    self._init = jax.jit(self._init_impl)

  # --- the per-image objective -------------------------------------------------------------
  def _objective(self, params, z, x):
    """One image: z [K, m], x [...] -> (objective, reconstruction MSE)."""
    recon = self.decode_fn(params, z[None])[0]
    mse = jnp.mean((recon - x) ** 2)
    loss = mse
    if self.regularizer is not None and self.reg_weight:
      loss = loss + self.reg_weight * self.regularizer(z)
    return loss, mse

  def _init_impl(self, z0):
    n = z0.shape[0]
    return SearchState(
        z=z0, opt_state=jax.vmap(self.optimizer.init)(z0), best_z=z0,
        best_loss=jnp.full((n,), jnp.inf, z0.dtype), best_mse=jnp.full((n,), jnp.inf, z0.dtype),
        steps=jnp.zeros((n,), jnp.int32), converged_step=jnp.full((n,), -1, jnp.int32),
        finite=jnp.ones((n,), bool))

  def _record(self, state: SearchState, loss, mse, ok):
    """Bookkeeping for the current iterate's objective: best iterate, convergence, finiteness.

    Returns (state, ok) where ok [N] says the image is still finite after this iterate.
    """
    ok = ok & jnp.isfinite(loss) & state.finite
    better = ok & (loss < state.best_loss)
    done_now = ok & (mse <= self.tol) & (state.converged_step < 0)
    return state.replace(
        best_z=jnp.where(better[:, None, None], state.z, state.best_z),
        best_loss=jnp.where(better, loss, state.best_loss),
        best_mse=jnp.where(better, mse, state.best_mse),
        converged_step=jnp.where(done_now, state.steps, state.converged_step),
        finite=ok), ok

  def _step(self, params, x, state: SearchState):
    grad_fn = jax.vmap(jax.value_and_grad(self._objective, argnums=1, has_aux=True),
                       in_axes=(None, 0, 0))
    (loss, mse), grads = grad_fn(params, state.z, x)
    state, ok = self._record(state, loss, mse, jnp.all(jnp.isfinite(grads), axis=(1, 2)))
    updates, opt_state = jax.vmap(self.optimizer.update)(grads, state.opt_state, state.z)
    z = optax.apply_updates(state.z, updates)
    keep = lambda new, old: jnp.where(ok.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return state.replace(z=keep(z, state.z),
                         opt_state=jax.tree.map(keep, opt_state, state.opt_state),
                         steps=state.steps + 1), loss

  def _run_impl(self, params, x, state, num_steps):
    """num_steps scan steps, then the objective of the last iterate, so that it can win too."""
    state, trace = jax.lax.scan(lambda s, _: self._step(params, x, s), state, None,
                                length=num_steps)
    loss, mse = jax.vmap(self._objective, in_axes=(None, 0, 0))(params, state.z, x)
    state, _ = self._record(state, loss, mse, jnp.ones_like(state.finite))
    return state, trace.T  # [N, T]

  def _search_impl(self, params, x, z0):
    self.num_traces += 1
    b, r = z0.shape[:2]
    flat_z0 = z0.reshape((b * r,) + z0.shape[2:])
    flat_x = jnp.repeat(x, r, axis=0)
    run = lambda xs, zs: self._run_impl(params, xs, self._init_impl(zs), self.num_steps)
    state, trace = parallel.map_in_chunks(run, self.micro_batch, flat_x, flat_z0)
    loss = state.best_loss.reshape(b, r)
    best = jnp.argmin(jnp.where(jnp.isfinite(loss), loss, jnp.inf), axis=1)  # [B]
    pick = lambda a: a.reshape((b, r) + a.shape[1:])[jnp.arange(b), best]
    converged_step = pick(state.converged_step)
    return SearchResult(z=pick(state.best_z), loss=pick(state.best_loss),
                        mse=pick(state.best_mse), trace=pick(trace),
                        converged_step=converged_step, converged=converged_step >= 0,
                        finite=jnp.isfinite(pick(state.best_loss)), restart=best)

  # --- public ------------------------------------------------------------------------------
  def lower(self, params, x, z0):
    """The search of `__call__` lowered for these shapes (x [B, ...], z0 [B, R, K, m]), e.g.
    for `.compile().cost_analysis()` (FLOPs) and `.memory_analysis()`."""
    z0 = jnp.asarray(z0)
    return self._search.lower(params, jnp.asarray(x), z0[:, None] if z0.ndim == 3 else z0)

  def iterates(self, params, x, z0, steps) -> dict[int, jax.Array]:
    """The current iterate z [B, K, m] after each of `steps` (0 = the start z0 [B, K, m]),
    for pictures of a search under way; the same iterates as `__call__` takes."""
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 0 or steps[-1] > self.num_steps:
      raise ValueError(f"Iterates at steps {steps}: each must be in [0, num_steps="
                       f"{self.num_steps}].")
    x, state = jnp.asarray(x), self._init(jnp.asarray(z0))
    out, done = {}, 0
    for step in steps:
      if step > done:
        state, _ = self._run(params, x, state, step - done)
        done = step
      out[step] = state.z
    return out

  def __call__(self, params, x, z0) -> SearchResult:
    """x: [B, ...]; z0: [B, K, m] or [B, R, K, m] (R restarts per image) -> SearchResult."""
    if not isinstance(x, jax.Array):
      x = np.asarray(x)  # checked on the host, then placed
    if not isinstance(z0, jax.Array):
      z0 = np.asarray(z0)
    if z0.ndim not in (3, 4) or z0.shape[0] != x.shape[0]:
      raise ValueError(f"z0 must be [B, K, m] or [B, R, K, m] with B = {x.shape[0]} images, "
                       f"got {z0.shape}.")
    if x.shape[0] == 0:
      raise ValueError("Empty batch: search needs at least one image.")
    self._check(x, z0)
    x, z0 = jnp.asarray(x), jnp.asarray(z0)
    if z0.ndim == 3:
      z0 = z0[:, None]
    if self.mesh is not None:
      n_dev = self.mesh.shape[parallel.DATA_AXIS]
      if x.shape[0] % n_dev:
        raise ValueError(f"Batch of {x.shape[0]} images is not divisible by the {n_dev} "
                         "devices of the mesh; pad the batch or use a smaller mesh.")
      sharding = parallel.data_sharded(self.mesh)
      x, z0 = jax.device_put(x, sharding), jax.device_put(z0, sharding)
      params = jax.device_put(params, parallel.replicated(self.mesh))
    return self._search(params, x, z0)

  def _check(self, x, z0) -> None:
    if self.check_inputs:
      fix = "drop or fix them, or pass Searcher(check_inputs=False) to search them anyway"
      checks.check_batch(x, "Searcher: x", unit_range=False, fix=fix)
      checks.check_batch(z0, "Searcher: z0", name="start latents", unit_range=False, fix=fix)


def stream_search(searcher: Searcher, params, x: np.ndarray, z0: np.ndarray, *,
                  batch_size: int, chunk_steps: int, max_steps: int) -> dict[str, np.ndarray]:
  """Continuous batching over a dataset x: [N, ...], z0: [N, K, m].

  A device batch of `batch_size` slots runs `chunk_steps` steps at a time; afterwards images
  that converged (MSE <= tol), went non-finite or used `max_steps` retire and new images take
  their slots. Returns per image: z [N, K, m], mse [N], loss [N], steps [N] (steps used),
  converged [N], converged_step [N] and finite [N] (False: the objective went NaN/Inf, and z
  is the best finite iterate seen).
  """
  n = len(x)
  if n == 0:
    raise ValueError("Empty dataset: nothing to search.")
  searcher._check(x, z0)  # pylint: disable=protected-access
  batch_size = min(batch_size, n)
  out = {"z": np.zeros(z0.shape, np.float32), "mse": np.zeros(n, np.float32),
         "loss": np.zeros(n, np.float32), "steps": np.zeros(n, np.int32),
         "converged_step": np.full(n, -1, np.int32), "finite": np.ones(n, bool)}
  next_image = batch_size
  owner = np.arange(batch_size)  # image index held by each slot, -1 = idle
  state = searcher._init(jnp.asarray(z0[:batch_size]))  # pylint: disable=protected-access
  xb = jnp.asarray(x[:batch_size])
  while (owner >= 0).any():
    state, _ = searcher._run(params, xb, state, chunk_steps)  # pylint: disable=protected-access
    host = jax.device_get((state.best_z, state.best_mse, state.best_loss, state.steps,
                           state.converged_step, state.finite))
    best_z, best_mse, best_loss, steps, conv_step, finite = host
    retire = (owner >= 0) & ((conv_step >= 0) | ~finite | (steps >= max_steps))
    for slot in np.flatnonzero(retire):
      i = owner[slot]
      out["z"][i], out["mse"][i], out["loss"][i] = best_z[slot], best_mse[slot], best_loss[slot]
      out["steps"][i], out["converged_step"][i] = steps[slot], conv_step[slot]
      out["finite"][i] = finite[slot]
      owner[slot] = -1
    free = np.flatnonzero(owner < 0)
    take = min(len(free), n - next_image)
    if take:
      slots = free[:take]
      images = np.arange(next_image, next_image + take)
      next_image += take
      owner[slots] = images
      fresh_z = np.asarray(jax.device_get(state.z)).copy()
      fresh_z[slots] = z0[images]
      fresh = searcher._init(jnp.asarray(fresh_z))  # pylint: disable=protected-access
      mask = np.zeros(batch_size, bool)
      mask[slots] = True
      state = _select(jnp.asarray(mask), fresh, state)
      xb = np.asarray(xb).copy()
      xb[slots] = x[images]
      xb = jnp.asarray(xb)
  out["converged"] = out["converged_step"] >= 0
  return out


@jax.jit
def _select(mask, new, old):
  """Per slot: `new` where mask else `old` (pytrees with a leading [N] axis)."""
  return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                      new, old)

