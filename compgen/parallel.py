"""Devices, processes and shardings: one code path from 1 CPU to a multi-host pod.

Layout: a 1-D mesh whose "data" axis spans every device of every process (`mesh.data = -1`).
Batches are split over that axis. Parameters and optimizer state are replicated, or with
`mesh.fsdp_min_size > 0` every array of at least that many elements is split over the data
axis along its largest divisible dimension (FSDP; XLA gathers it for each use).

Multi-host: `initialize_distributed()` starts JAX's runtime (`jax.distributed.initialize`) only
when asked, by `--distributed` or COMPGEN_DISTRIBUTED=1. Coordinator address, process count
and index come from COMPGEN_COORDINATOR_ADDRESS / COMPGEN_NUM_PROCESSES / COMPGEN_PROCESS_ID
when set, otherwise JAX detects them (Cloud TPU, SLURM, Open MPI, Kubernetes).
Training data: each process loads its slice of every global batch (`put_batch`); evaluation and
search data, which every process holds whole, go through `put_global`; results come back to
every process with `to_host`.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from compgen import errors

DATA_AXIS = "data"
_ENV = {"coordinator_address": "COMPGEN_COORDINATOR_ADDRESS",
        "num_processes": "COMPGEN_NUM_PROCESSES", "process_id": "COMPGEN_PROCESS_ID"}


def distributed_requested() -> bool:
  return os.environ.get("COMPGEN_DISTRIBUTED", "").lower() in ("1", "true", "yes")


def initialize_distributed() -> None:
  """`jax.distributed.initialize` with the COMPGEN_* settings (module doc); call it before
  anything touches a device. A no-op when already initialised."""
  if jax.distributed.is_initialized():
    return
  kwargs = {name: os.environ[var] for name, var in _ENV.items() if os.environ.get(var)}
  for name in ("num_processes", "process_id"):
    if name in kwargs:
      kwargs[name] = int(kwargs[name])
  jax.distributed.initialize(**kwargs)


def make_mesh(mesh_config: ml_collections.ConfigDict | None = None) -> Mesh:
  """A 1-D mesh over `mesh_config.data` devices (-1 or None: every device of every process)."""
  devices = jax.devices()
  count = len(devices) if mesh_config is None or mesh_config.data in (-1, None) else mesh_config.data
  if not 1 <= count <= len(devices):
    raise errors.ConfigError(f"mesh.data={count}: {jax.process_count()} process(es) see "
                             f"{len(devices)} device(s); use -1 for all of them or a number in "
                             "[1, device count].")
  if jax.process_count() > 1 and count != len(devices):
    raise errors.ConfigError(f"mesh.data={count}: a multi-process run must use every device "
                             f"({len(devices)}); set mesh.data=-1.")
  if count == len(devices):
    return jax.make_mesh((count,), (DATA_AXIS,), axis_types=(AxisType.Auto,))
  return Mesh(np.asarray(devices[:count]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def state_sharding(shape_tree, mesh: Mesh, fsdp_min_size: int = 0):
  """Shardings for a params / optimizer-state pytree of ShapeDtypeStructs (module doc):
  replicated, or FSDP for arrays of >= `fsdp_min_size` elements (0: off)."""
  n = mesh.shape[DATA_AXIS]

  def leaf(s):
    if fsdp_min_size > 0 and n > 1 and s.size >= fsdp_min_size:
      for dim in sorted(range(len(s.shape)), key=lambda d: -s.shape[d]):
        if s.shape[dim] % n == 0:
          return NamedSharding(mesh, P(*[DATA_AXIS if d == dim else None
                                         for d in range(len(s.shape))]))
    return replicated(mesh)
  return jax.tree.map(leaf, shape_tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  size = mesh.shape[DATA_AXIS]
  if batch_size % size:
    raise ValueError(f"batch_size={batch_size} is not divisible by the {size} devices of the "
                     f"data axis; use a multiple of {size} or set mesh.data.")


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's slice of a global batch -> global arrays sharded over the data axis."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def put_global(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """A batch that every process holds whole -> global arrays sharded over the data axis."""
  sharding = data_sharded(mesh)
  return {k: jax.device_put(np.asarray(v), sharding) for k, v in batch.items()}


def to_host(tree):
  """Global arrays -> numpy on every process (gathered across processes when needed)."""
  def leaf(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(jax.device_get(a))
  return jax.tree.map(leaf, tree)


def pad_to_multiple(batch: dict[str, np.ndarray], multiple: int) -> tuple[dict, int]:
  """Pads the leading axis (repeating the last example) to a multiple; returns (batch, n)."""
  n = len(next(iter(batch.values())))
  pad = (-n) % multiple
  if pad:
    batch = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in batch.items()}
  return batch, n


def call_padded(fn, batch: dict[str, np.ndarray], mesh: Mesh):
  """fn(**arrays) on a host batch of any size: pads the leading axis to a multiple of the
  data axis (`pad_to_multiple`), places it sharded over it (`put_global`), calls fn, brings
  the result to the host (`to_host`) and cuts every leaf back to the real examples."""
  padded, n = pad_to_multiple(batch, mesh.shape[DATA_AXIS])
  return jax.tree.map(lambda a: a[:n], to_host(fn(**put_global(padded, mesh))))


def call_in_batches(fn, batch: dict[str, np.ndarray], mesh: Mesh, batch_size: int):
  """`call_padded` over consecutive slices of `batch_size` examples, every leaf of the
  results concatenated: fn(**arrays) on host arrays of any length, a slice at a time."""
  n = len(next(iter(batch.values())))
  parts = [call_padded(fn, {k: v[lo:lo + batch_size] for k, v in batch.items()}, mesh)
           for lo in range(0, n, batch_size)]
  return jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts)


def resolve_micro_batch(value: int) -> int | None:
  """Config value -> micro-batch size: -1 = auto (1 on CPU, where small working sets stay in
  cache, measured fastest by `compgen.bench`; the whole batch on GPUs/TPUs), 0 = whole batch."""
  if value == -1:
    return 1 if jax.default_backend() == "cpu" else None
  if value < 0:
    raise ValueError(f"micro_batch={value}: use -1 (auto), 0 (whole batch) or a size >= 1.")
  return value or None


def map_in_chunks(fn, size: int | None, *arrays):
  """fn(*arrays) computed as a `lax.map` over chunks of `size` along the leading axis (padded
  with copies of the first entry, then cut back): same result, a working set of one chunk.
  fn must treat leading-axis entries independently; size None or >= N calls fn once."""
  n = arrays[0].shape[0]
  if not size or n <= size:
    return fn(*arrays)
  pad = (-n) % size
  chunk = lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, 0)]).reshape(
      (-1, size) + a.shape[1:])
  out = jax.lax.map(lambda xs: fn(*xs), tuple(chunk(a) for a in arrays))
  return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:])[:n], out)

