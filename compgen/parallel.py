"""Device meshes and placing batches on them (one code path from 1 CPU to many devices).

Batches are split over the mesh's "data" axis; parameters and optimizer state are replicated.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(mesh_config: ml_collections.ConfigDict | None = None) -> Mesh:
  """A 1-D mesh over `mesh_config.data` devices (-1 or None: every device)."""
  devices = jax.devices()
  count = len(devices) if mesh_config is None or mesh_config.data in (-1, None) else mesh_config.data
  if not 1 <= count <= len(devices):
    raise ValueError(f"mesh.data={count}: this host sees {len(devices)} device(s); use -1 for "
                     "all of them or a number in [1, device count].")
  return Mesh(np.asarray(devices[:count]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


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


def pad_to_multiple(batch: dict[str, np.ndarray], multiple: int) -> tuple[dict, int]:
  """Pads the leading axis (repeating the last example) to a multiple; returns (batch, n)."""
  n = len(next(iter(batch.values())))
  pad = (-n) % multiple
  if pad:
    batch = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]) for k, v in batch.items()}
  return batch, n


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

