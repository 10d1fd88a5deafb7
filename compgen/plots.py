"""Figures (matplotlib): sample grids, the ID/OOD latent split, reconstructions per method,
per-slot decompositions, search trajectories, results bars, loss curves and metrics along
training.

Every function takes `path`: with a path (local or gs://) it saves a PNG there and returns the
path; with `path=None` it returns the `matplotlib.figure.Figure`, which a notebook shows inline.
Figures are built without pyplot, so nothing here touches the global backend or state.
"""
from __future__ import annotations

import io
import math

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from compgen import files


def _as_float_images(images) -> np.ndarray:
  images = np.asarray(images)
  return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images


def _show(ax, image) -> None:
  image = np.clip(image, 0, 1)
  gray = image.ndim == 2 or image.shape[-1] == 1
  ax.imshow(image.reshape(image.shape[:2]) if gray else image, interpolation="nearest",
            cmap="gray" if gray else None, vmin=0, vmax=1)
  ax.set_xticks([])
  ax.set_yticks([])


def image_grid(images: np.ndarray, path=None, title: str = "", columns: int = 8):
  """Images [N, H, W, C] (uint8 or float in [0, 1]) as one grid."""
  images = _as_float_images(images)
  if images.ndim != 4 or len(images) == 0:
    raise ValueError(f"image_grid needs images [N, H, W, C] with N >= 1, got {images.shape}.")
  n, h, w, c = images.shape
  cols = min(columns, n)
  rows = math.ceil(n / cols)
  pad = 1
  canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i, im in enumerate(images):
    r, q = divmod(i, cols)
    canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = im
  scale = max(1.0, 640 / canvas.shape[1])  # small images are shown enlarged
  fig = Figure(figsize=(canvas.shape[1] * scale / 100, canvas.shape[0] * scale / 100 + 0.4),
               dpi=100)
  ax = fig.add_axes((0, 0, 1, canvas.shape[0] * scale / 100 / fig.get_figheight()))
  ax.imshow(np.clip(canvas.squeeze(-1) if c == 1 else canvas, 0, 1), interpolation="nearest",
            cmap="gray" if c == 1 else None)
  ax.set_axis_off()
  if title:
    fig.suptitle(title, fontsize=9, y=0.995)
  return _finish(fig, path)


def latent_split(id_latents: np.ndarray, ood_latents: np.ndarray, path=None,
                 names: tuple[str, ...] = (), max_points: int = 2000):
  """Scatter of slot 0 vs slot 1 for each latent dimension, ID vs OOD: [N, K, m] each."""
  if id_latents.shape[1] < 2:
    raise ValueError("latent_split needs at least 2 slots to plot slot 0 against slot 1.")
  m = id_latents.shape[2]
  names = names or tuple(f"z[{d}]" for d in range(m))
  fig = Figure(figsize=(2.6 * m, 2.8))
  axes = fig.subplots(1, m, squeeze=False)
  for d, ax in enumerate(axes[0]):
    for lat, label, colour in ((ood_latents, "OOD", "tab:orange"), (id_latents, "ID", "tab:blue")):
      ax.scatter(lat[:max_points, 0, d], lat[:max_points, 1, d], s=2, alpha=0.5, c=colour,
                 label=label, rasterized=True)
    ax.set_xlabel(f"slot 0 {names[d]}")
    ax.set_ylabel(f"slot 1 {names[d]}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
  axes[0][0].legend(loc="upper left", fontsize=7, markerscale=4)
  fig.tight_layout()
  return _finish(fig, path)


def results_bars(scores: dict[str, dict[str, tuple[float, float]]], path=None,
                 ylabel: str = "identifiability"):
  """Grouped bars: {method: {"id": (mean, std), "ood": (mean, std)}} -> PNG."""
  if not scores:
    raise ValueError("results_bars needs at least one method.")
  methods = list(scores)
  splits = sorted({s for v in scores.values() for s in v})
  width = 0.8 / len(splits)
  fig = Figure(figsize=(max(4.0, 1.1 * len(methods) + 1), 3.4))
  ax = fig.subplots()
  for i, split in enumerate(splits):
    means = [scores[m].get(split, (np.nan, 0))[0] for m in methods]
    stds = [scores[m].get(split, (np.nan, 0))[1] for m in methods]
    ax.bar(np.arange(len(methods)) + (i - (len(splits) - 1) / 2) * width, means, width,
           yerr=stds, capsize=2, label=split.upper())
  ax.set_xticks(np.arange(len(methods)))
  ax.set_xticklabels(methods, rotation=30, ha="right", fontsize=8)
  ax.set_ylabel(ylabel)
  ax.axhline(0, color="k", lw=0.5)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return _finish(fig, path)


def labelled_rows(rows: dict[str, np.ndarray], path=None):
  """One row of images [n, H, W, C] per label (e.g. inputs, then each method's
  reconstructions), the label written to the left -> PNG."""
  if not rows:
    raise ValueError("labelled_rows needs at least one row of images.")
  n = max(len(v) for v in rows.values())
  fig = Figure(figsize=(1.1 * n + 1.6, 1.1 * len(rows)))
  axes = fig.subplots(len(rows), n, squeeze=False)
  for r, (label, images) in enumerate(rows.items()):
    images = _as_float_images(images)
    for c in range(n):
      ax = axes[r][c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c < len(images):
        _show(ax, images[c])
    axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
  fig.tight_layout()
  return _finish(fig, path)


def loss_curves(curves: dict[str, np.ndarray], path=None, ylabel: str = "search loss",
                every: int = 1):
  """Curves {label: values [T]}, one value each `every` steps, against step on a log scale
  -> PNG."""
  if not curves:
    raise ValueError("loss_curves needs at least one curve.")
  fig = Figure(figsize=(5.5, 3.4))
  ax = fig.subplots()
  for label, values in curves.items():
    ax.plot(every * np.arange(1, len(values) + 1) if every > 1 else np.arange(len(values)),
            values, label=label)
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=6)
  fig.tight_layout()
  return _finish(fig, path)


def metrics_along_training(rows: list[dict], unit: tuple[str, ...], log: tuple[str, ...] = (),
                           path=None):
  """Metrics logged along training (`metrics.jsonl` rows: {"step", key: value, ...}) against
  step: the keys `unit` (scores in [0, 1]) on the left panel, the keys `log` (errors, losses)
  on a log scale on the right; rows without a key are skipped for that key -> PNG."""
  if not any(k in row for row in rows for k in unit + log):
    raise ValueError(f"No row has any of the keys {unit + log}.")
  fig = Figure(figsize=(9.0 if log else 5.5, 3.4))
  axes = fig.subplots(1, 2 if log else 1, squeeze=False)[0]
  for ax, keys in zip(axes, (unit, log)):
    for key in keys:
      points = [(row["step"], row[key]) for row in rows if key in row]
      if points:
        ax.plot(*zip(*points), marker="o", ms=3, label=key)
    ax.set_xlabel("step")
    ax.legend(fontsize=6)
  axes[0].set_ylim(-0.02, 1.02)
  if log:
    axes[1].set_yscale("log")
  fig.tight_layout()
  return _finish(fig, path)


def samples(id_images: np.ndarray, ood_images: np.ndarray, path=None, n: int = 8):
  """A row of ID and a row of OOD images ([N, H, W, C] each)."""
  return labelled_rows({"ID": id_images[:n], "OOD": ood_images[:n]}, path)


def slot_decomposition(images: np.ndarray, decoded: dict[str, np.ndarray], path=None,
                       n: int = 6, num_slots: int | None = None):
  """Per example (columns): the input, the reconstruction, then each slot's share of it.

  decoded: a decoder's output dict for these images (`Model.decode`). A slot's share is its
  mask (alpha: the softmax masks, the background last; transformer: attention averaged over
  layers and heads, keys past `num_slots` — a background token — labelled background) times
  the reconstruction, or its additive term (additive decoders).
  """
  images = _as_float_images(images)[:n]
  recon = np.asarray(decoded["output"])[:n]
  if images.ndim != 4:
    raise ValueError(f"slot_decomposition shows images [N, H, W, C], got {images.shape}.")
  h, w = images.shape[1:3]
  if "masks" in decoded:
    parts = np.asarray(decoded["masks"])[:n, ..., None] * recon[:, None]
    labels = [f"slot {k}" for k in range(parts.shape[1] - 1)] + ["background"]
  elif "attention" in decoded:
    attention = np.asarray(decoded["attention"])[:n].mean(axis=(1, 2))  # [n, P, K]
    masks = np.moveaxis(attention, -1, 1).reshape(len(recon), -1, h, w)
    parts = masks[..., None] * recon[:, None]
    labels = [f"slot {k}" if num_slots is None or k < num_slots else "background"
              for k in range(parts.shape[1])]
  elif "slots" in decoded:
    parts = np.asarray(decoded["slots"])[:n]
    parts = parts - parts.min(axis=(2, 3, 4), keepdims=True)  # additive terms, shifted to >= 0
    labels = [f"slot {k}" for k in range(parts.shape[1])]
  else:
    raise ValueError("This decoder output has no per-slot parts (masks, attention or slot "
                     "terms): the unconstrained decoder mixes all slots in every pixel.")
  rows = {"input": images, "reconstruction": recon}
  rows.update({label: parts[:, k] for k, label in enumerate(labels)})
  return labelled_rows(rows, path)


def search_trajectory(inputs: np.ndarray, iterates: dict[int, np.ndarray], traces: np.ndarray,
                      path=None, n: int = 4):
  """Search as it goes: per image the input and the decoded iterate at chosen steps
  ({step: images [B, H, W, C]}), and each image's objective [B, T] against the step."""
  inputs = _as_float_images(inputs)[:n]
  steps = sorted(iterates)
  fig = Figure(figsize=(1.2 * (len(steps) + 1) + 4.0, 1.2 * len(inputs) + 0.4))
  grid = fig.add_gridspec(len(inputs), len(steps) + 3)
  for i, image in enumerate(inputs):
    _show(fig.add_subplot(grid[i, 0]), image)
    for j, step in enumerate(steps):
      ax = fig.add_subplot(grid[i, j + 1])
      _show(ax, np.asarray(iterates[step])[i])
      if i == 0:
        ax.set_title(f"step {step}", fontsize=7)
  fig.axes[0].set_title("input", fontsize=7)
  ax = fig.add_subplot(grid[:, len(steps) + 1:])
  for i, trace in enumerate(np.asarray(traces)[:n]):
    ax.plot(np.arange(len(trace)), trace, label=f"image {i}")
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("objective", fontsize=8)
  ax.legend(fontsize=6)
  fig.tight_layout()
  return _finish(fig, path)


SWEEP_METHODS = {"encoder": ("encoder", "C0"), "search": ("search", "C1"),
                 "replay_encoder": ("replay", "C2"), "replay_search": ("replay + search", "C3")}


def candidate_fits(runs: dict[str, dict], path=None):
  """Per candidate of population runs: OOD identifiability against its ID training
  reconstruction MSE (log scale) -> PNG. runs: {"seed{s}/{model}": {"train_recon_mse": [C],
  "selected": i, "scores": {"encoder/ood": [C], "search/ood": [C], ...}}}; one colour per
  model, o = search, x = encoder; kept candidates are ringed."""
  if not runs:
    raise ValueError("candidate_fits needs at least one run with scored candidates.")
  fig = Figure(figsize=(5.5, 3.6))
  ax = fig.subplots()
  models = sorted({label.split("/")[-1] for label in runs})
  colours = {m: f"C{i}" for i, m in enumerate(models)}
  floor = -1.5  # scores below are drawn on the floor (an encoder can score −10 OOD)
  labelled = set()
  for label, run in runs.items():
    model = label.split("/")[-1]
    mse = np.asarray(run["train_recon_mse"])
    for method, marker in (("search/ood", "o"), ("encoder/ood", "x")):
      name = f"{model}: {method.split('/')[0]}"
      score = np.maximum(np.asarray(run["scores"][method]), floor)
      ax.scatter(mse, score, marker=marker, color=colours[model], s=18,
                 label=None if name in labelled else name)
      labelled.add(name)
    i = run["selected"]
    ax.scatter(mse[i], max(run["scores"]["search/ood"][i], floor), s=90, facecolors="none",
               edgecolors="black", label=None if "kept" in labelled else "kept (lowest ID error)")
    labelled.add("kept")
  ax.set_xscale("log")
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_ylim(floor - 0.05, 1.05)
  ax.set_xlabel("ID training reconstruction MSE of the candidate")
  ax.set_ylabel(f"OOD identifiability (< {floor}: at {floor})")
  ax.axhline(0.0, color="grey", lw=0.5)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return _finish(fig, path)


def sweep_map(sweep: dict, path=None, split: str = "ood"):
  """A sweep's `split` identifiability (mean ± std over seeds) of each method against its
  first axis, one panel per value of the second axis (columns) and of the third (rows);
  `sweep` as written by `compgen.study.sweep.run_sweep` -> PNG."""
  axes = sweep["axes"]
  if not 1 <= len(axes) <= 3:
    raise ValueError(f"sweep_map draws 1 to 3 grid axes (x, columns, rows); this sweep has "
                     f"{len(axes)}: {[a['key'] for a in axes]}.")
  x_key = axes[0]["key"]
  col = axes[1] if len(axes) > 1 else {"key": None, "values": [None]}
  row = axes[2] if len(axes) > 2 else {"key": None, "values": [None]}
  fig = Figure(figsize=(2.6 * len(col["values"]) + 0.6, 2.2 * len(row["values"]) + 0.6))
  grid = fig.subplots(len(row["values"]), len(col["values"]), squeeze=False, sharex=True,
                      sharey=True)
  short = lambda key: key.rsplit(".", 1)[-1]
  for r, row_value in enumerate(row["values"]):
    for c, col_value in enumerate(col["values"]):
      ax = grid[r][c]
      cells = [cell for cell in sweep["cells"]
               if (col["key"] is None or cell["values"][col["key"]] == col_value)
               and (row["key"] is None or cell["values"][row["key"]] == row_value)]
      xs = [cell["values"][x_key] for cell in cells]
      for method, (label, colour) in SWEEP_METHODS.items():
        stats = [cell["methods"].get(method, {}).get(split, {}).get("identifiability")
                 for cell in cells]
        if not any(stats):
          continue
        means = np.array([s["mean"] if s else np.nan for s in stats])
        stds = np.array([s["std"] if s else np.nan for s in stats])
        ax.errorbar(xs, means, yerr=stds, color=colour, label=label, marker="o", ms=3,
                    capsize=2, lw=1)
      ax.axhline(0, color="k", lw=0.4)
      lowest = min([s["mean"] for cell in sweep["cells"] for m in cell["methods"].values()
                    if (s := m.get(split, {}).get("identifiability"))], default=0.0)
      ax.set_ylim(max(min(-0.1, lowest - 0.05), -1.0), 1.05)  # scores below -1: off the panel
      title = " ".join(f"{short(a['key'])}={v}" for a, v in ((col, col_value), (row, row_value))
                       if a["key"] is not None)
      ax.set_title(title, fontsize=8)
      if r == len(row["values"]) - 1:
        ax.set_xlabel(short(x_key), fontsize=8)
      if c == 0:
        ax.set_ylabel(f"{split.upper()} identifiability", fontsize=8)
      ax.tick_params(labelsize=7)
  grid[0][0].legend(fontsize=6, loc="lower right")
  fig.tight_layout()
  return _finish(fig, path)


def _finish(fig: Figure, path):
  """Saves `fig` as PNG to `path` (local or a bucket) and returns the path; returns the
  figure itself when path is None."""
  if path is None:
    return fig
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  files.write_bytes(files.path(path), buffer.getvalue())
  return path
