"""Figures (matplotlib, headless): sample grids, the ID/OOD latent split, experiment results
(bar chart of identifiability, reconstructions per method, search loss curves)."""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from compgen import files


def image_grid(images: np.ndarray, path: str, title: str = "", columns: int = 8) -> str:
  """Saves images [N, H, W, C] (uint8 or float in [0, 1]) as a grid PNG; returns the path."""
  images = np.asarray(images)
  if images.ndim != 4 or len(images) == 0:
    raise ValueError(f"image_grid needs images [N, H, W, C] with N >= 1, got {images.shape}.")
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255.0
  n, h, w, c = images.shape
  cols = min(columns, n)
  rows = math.ceil(n / cols)
  pad = 1
  canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i, im in enumerate(images):
    r, q = divmod(i, cols)
    canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = im
  scale = max(1.0, 640 / canvas.shape[1])  # small images are shown enlarged
  fig = plt.figure(figsize=(canvas.shape[1] * scale / 100, canvas.shape[0] * scale / 100 + 0.4),
                   dpi=100)
  ax = fig.add_axes((0, 0, 1, canvas.shape[0] * scale / 100 / fig.get_figheight()))
  ax.imshow(np.clip(canvas.squeeze(-1) if c == 1 else canvas, 0, 1), interpolation="nearest",
            cmap="gray" if c == 1 else None)
  ax.set_axis_off()
  if title:
    fig.suptitle(title, fontsize=9, y=0.995)
  _save(fig, path)
  return path


def latent_split(id_latents: np.ndarray, ood_latents: np.ndarray, path: str,
                 names: tuple[str, ...] = (), max_points: int = 2000) -> str:
  """Scatter of slot 0 vs slot 1 for each latent dimension, ID vs OOD: [N, K, m] each."""
  if id_latents.shape[1] < 2:
    raise ValueError("latent_split needs at least 2 slots to plot slot 0 against slot 1.")
  m = id_latents.shape[2]
  names = names or tuple(f"z[{d}]" for d in range(m))
  fig, axes = plt.subplots(1, m, figsize=(2.6 * m, 2.8), squeeze=False)
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
  _save(fig, path)
  return path


def results_bars(scores: dict[str, dict[str, tuple[float, float]]], path: str,
                 ylabel: str = "identifiability") -> str:
  """Grouped bars: {method: {"id": (mean, std), "ood": (mean, std)}} -> PNG."""
  if not scores:
    raise ValueError("results_bars needs at least one method.")
  methods = list(scores)
  splits = sorted({s for v in scores.values() for s in v})
  width = 0.8 / len(splits)
  fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(methods) + 1), 3.4))
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
  _save(fig, path)
  return path


def labelled_rows(rows: dict[str, np.ndarray], path: str) -> str:
  """One row of images [n, H, W, C] per label (e.g. inputs, then each method's
  reconstructions), the label written to the left -> PNG."""
  if not rows:
    raise ValueError("labelled_rows needs at least one row of images.")
  n = max(len(v) for v in rows.values())
  fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.6, 1.1 * len(rows)),
                           squeeze=False)
  for r, (label, images) in enumerate(rows.items()):
    images = np.asarray(images)
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    for c in range(n):
      ax = axes[r][c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c < len(images):
        im = np.clip(images[c], 0, 1)
        ax.imshow(im.squeeze(-1) if im.shape[-1] == 1 else im, interpolation="nearest",
                  cmap="gray" if im.shape[-1] == 1 else None)
    axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
  fig.tight_layout()
  _save(fig, path)
  return path


def loss_curves(curves: dict[str, np.ndarray], path: str, ylabel: str = "search loss") -> str:
  """Curves {label: values [T]} against step on a log scale -> PNG."""
  if not curves:
    raise ValueError("loss_curves needs at least one curve.")
  fig, ax = plt.subplots(figsize=(5.5, 3.4))
  for label, values in curves.items():
    ax.plot(np.arange(len(values)), values, label=label)
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=6)
  fig.tight_layout()
  _save(fig, path)
  return path


def _save(fig, path) -> None:
  """Saves to a local path or a bucket (`compgen.files`)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format=str(path).rsplit(".", 1)[-1])
  plt.close(fig)
  target = files.path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_bytes(buffer.getvalue())
