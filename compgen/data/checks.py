"""Checks of the data compgen is handed, and the error they raise.

`DataError`: input data compgen cannot use; the message names the problem and the fix.
`validate(arrays, where)` checks a split's arrays when it is loaded (non-empty, shapes agree,
finite, images in range); `consistent(firsts, where)` checks that the splits of one data set
agree with each other (fields, per-example shapes, slots, latents per slot, factors).
`check_batch(x, where)` checks the values of a batch a user hands to a model
or a search (non-empty, floating point, finite, images in [0, 1]) and names the bad examples by
index. The lowest module of `compgen.data`: every layer above may import it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from compgen import errors

DataError = errors.DataError  # also importable from here and from compgen.data


def validate(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
  """Checks a split's arrays (shapes agree, finite, images in range); returns them."""
  def fail(msg):
    raise DataError(f"{where}: {msg}")
  if "latents" not in arrays:
    fail(f"no 'latents' array (found {sorted(arrays)}); add latents float [N, K, m].")
  if ("image" in arrays) == ("x" in arrays):
    fail(f"need exactly one of 'image' [N, H, W, C] or 'x' [N, d_x] (found {sorted(arrays)}).")
  n = len(arrays["latents"])
  if n == 0:
    fail("no examples; every split needs at least one (check the file, or num_train / "
         "num_test_id / num_test_ood).")
  for key, value in arrays.items():
    if len(value) != n:
      fail(f"'{key}' has {len(value)} examples but 'latents' has {n}: they must agree.")
  lat = arrays["latents"]
  if lat.ndim != 3 or not np.issubdtype(lat.dtype, np.floating):
    fail(f"'latents' must be float [N, K, m], got {lat.dtype} {lat.shape}.")
  if not np.all(np.isfinite(lat)):
    fail(f"'latents' holds {int((~np.isfinite(lat)).sum())} NaN/Inf values; remove or fix "
         "those examples.")
  if "factors" in arrays:
    fac = arrays["factors"]
    if fac.ndim != 3 or not np.issubdtype(fac.dtype, np.integer) or fac.shape[1] != lat.shape[1]:
      fail(f"'factors' must be int [N, K={lat.shape[1]}, c], got {fac.dtype} {fac.shape}.")
    if fac.size and fac.min() < 0:
      fail("'factors' holds negative values; categorical factors are 0 .. num_values - 1.")
  if "image" in arrays:
    img = arrays["image"]
    if img.ndim != 4 or img.shape[-1] not in (1, 3):
      fail(f"'image' must be [N, H, W, C] with C in (1, 3), got shape {img.shape}.")
    if np.issubdtype(img.dtype, np.floating):
      if not np.all(np.isfinite(img)):
        fail("'image' holds NaN/Inf values.")
      if img.size and (img.min() < 0.0 or img.max() > 1.0):
        fail(f"float 'image' values must be in [0, 1], found [{img.min():.3g}, "
             f"{img.max():.3g}]; divide uint8 pixels by 255 or store them as uint8.")
    elif img.dtype != np.uint8:
      fail(f"'image' dtype {img.dtype} is not supported: use uint8 or float in [0, 1].")
  if "x" in arrays:
    x = arrays["x"]
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
      fail(f"'x' must be float [N, d_x], got {x.dtype} {x.shape}.")
    if not np.all(np.isfinite(x)):
      fail(f"'x' holds {int((~np.isfinite(x)).sum())} NaN/Inf values.")
  return arrays


_LAYOUTS = {"latents": " [N, K slots, m latents per slot]", "image": " [N, H, W, C]",
            "factors": " [N, K slots, c factors]"}


def consistent(firsts: dict[str, dict[str, np.ndarray]], where: str) -> None:
  """Checks that the splits of one data set agree: {split: its arrays [n >= 1, ...]} (a
  split's first example is enough) have the same fields and, per field, the same shape after
  the batch axis and the same kind of dtype (an image's H, W and C; the slots K and latents
  per slot m of 'latents'; the factors). Raises `DataError` naming both splits and the array.
  """
  (ref, ref_arrays), *others = firsts.items()
  for split, arrays in others:
    if set(arrays) != set(ref_arrays):
      raise DataError(
          f"{where}: the splits hold different arrays: {ref} has {sorted(ref_arrays)}, "
          f"{split} has {sorted(arrays)}; give every split the same fields.")
    for key in sorted(arrays):
      a, b = ref_arrays[key], arrays[key]
      if a.shape[1:] != b.shape[1:] or a.dtype.kind != b.dtype.kind:
        shape = lambda arr: f"{arr.dtype} [N, {', '.join(map(str, arr.shape[1:]))}]"
        raise DataError(
            f"{where}: '{key}'{_LAYOUTS.get(key, '')} is {shape(b)} in {split} but {shape(a)} "
            f"in {ref}; every split of a data set must agree (the same image size, slots and "
            f"latents), so make {split} like {ref}.")


def check_batch(x, where: str, *, name: str = "images", unit_range: bool | None = None,
                fix: str = "drop or fix them") -> None:
  """Host-side checks of a batch x [B, ...] (numpy or a fully addressable jax array) before a
  model or a search sees it: at least one example, floating point, finite and, when
  `unit_range` (default: for 4-D x, i.e. images [B, H, W, C]), in [0, 1].

  Raises `DataError` naming the bad examples by index. It reads values, so it runs outside
  jit, once per batch handed in by a user (not per step); a jax array is reduced on its
  device and only [B] flags come back. The shape checks against a model are static, in
  `compgen.models.Autoencoder`.
  """
  shape = tuple(np.shape(x))
  if not shape or shape[0] == 0:
    raise DataError(f"{where}: empty batch of {name} (shape {shape}); give at least one "
                    "example [B >= 1, ...].")
  dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
  if not jnp.issubdtype(dtype, jnp.floating):  # also bfloat16, which numpy does not count
    how = ("convert uint8 pixels to float32 in [0, 1] with "
           "compgen.data.pipeline.to_model_inputs(batch) or x / 255" if dtype == np.uint8
           else "give float32 values")
    raise DataError(f"{where}: {name} have dtype {dtype}, but models and search take floating "
                    f"point {name}: {how}.")
  if isinstance(x, jax.core.Tracer) or not getattr(x, "is_fully_addressable", True):
    return  # values unknown while tracing, or spread over processes (each checks its own)
  finite, lo, hi = _per_example(x, bool(unit_range if unit_range is not None
                                          else len(shape) == 4))
  if not finite.all():
    raise DataError(f"{where}: {name} at index {_indices(~finite)} (of {shape[0]}) hold "
                    f"NaN/Inf values; {fix}.")
  if lo is not None:
    out = (lo < 0.0) | (hi > 1.0)
    if out.any():
      raise DataError(
          f"{where}: {name} at index {_indices(out)} (of {shape[0]}) have values outside "
          f"[0, 1] (found [{lo.min():.3g}, {hi.max():.3g}]), but the model takes {name} in "
          "[0, 1]: divide 0..255 pixels by 255 (compgen.data.pipeline.to_model_inputs).")


def _indices(mask: np.ndarray, limit: int = 10) -> str:
  """[3, 7] or [0, 1, ..., 9] and 5 more: the flagged examples, by batch index."""
  idx = np.flatnonzero(mask)
  more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
  return f"{idx[:limit].tolist()}{more}"


def _per_example(x, with_range: bool):
  """(finite [B], min [B] | None, max [B] | None) of x [B, ...], reduced where x lives; the
  range only when asked for and every example is finite."""
  with_range = with_range and int(np.prod(np.shape(x)[1:])) > 0
  if isinstance(x, jax.Array):
    finite = np.asarray(jax.device_get(_device_finite(x)))
    if with_range and finite.all():
      return finite, *(np.asarray(a) for a in jax.device_get(_device_range(x)))
    return finite, None, None
  flat = np.asarray(x).reshape(len(x), -1)
  finite = np.isfinite(flat).all(1)
  if with_range and finite.all():
    return finite, flat.min(1), flat.max(1)
  return finite, None, None


@jax.jit
def _device_finite(x):
  return jnp.isfinite(x.reshape(x.shape[0], -1)).all(1)


@jax.jit
def _device_range(x):
  flat = x.reshape(x.shape[0], -1)
  return flat.min(1), flat.max(1)
