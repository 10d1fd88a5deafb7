"""TFDS builder `compgen_pug`: PUG scenes (Meta AI) from YOUR manual download, ID/OOD splits.

PUG ("Photorealistic Unreal Graphics", Bordes et al. 2023, arXiv:2308.03977) is NOT downloaded
and NOT shipped by compgen. Its licence is CC-BY-NC 4.0 with an addendum that forbids using it
to train generative AI models -- and compgen trains generative decoders (autoencoders whose
decoders render images, replay and search through them). Check that your use is permitted
before you build this dataset.

Put the published parquet shards (the Hugging Face Hub datasets facebook/PUG_SPAR
and facebook/PUG_Animals) under the TFDS manual directory, at any depth:

    <manual_dir>/PUG_SPAR/**/*.parquet      <manual_dir>/PUG_Animals/**/*.parquet

where <manual_dir> is `tfds.download.DownloadConfig(manual_dir=...)` or, by default,
`<data_dir>/downloads/manual/`. Then

    import compgen.data.pug, tensorflow_datasets as tfds  # registers compgen_pug
    source = tfds.data_source("compgen_pug/spar_background", data_dir="~/tensorflow_datasets")

Scene -> compgen layout (every example: `image` uint8 [R, R, 3], `latents` float32 [K, m],
`factors` int32 [K, c], `index` int = row of the scene in the sorted shards):

  PUG: SPAR, K = 2 slots = character 1 (`character_name`) and character 2 (`character2_name`).
    factors  (character, texture, position, background); background is the scene's
             `world_name`, broadcast to both slots.
    latents  (x, y, present): the nominal image-plane position of the slot's position label
             (`SPAR_POSITION_XY`: left (0.25, 0.5), right (0.75, 0.5), top/above (0.5, 0.25),
             bottom/below (0.5, 0.75); a present character without a label (0.5, 0.5)) and
             1.0 if the character is present. SPAR has no numeric factor, so these nominal
             coordinates are the only continuous latents; everything else is in `factors`.
    A missing character (published as "blank"; also null, "" or "none") is the category
    "none" (id 0) of character, texture and position, with latents (0, 0, 0).
  PUG: Animals, K = 1 slot = the animal.
    factors  (character, texture, background).
    latents  (scale, camera_yaw): `character_scale` and `camera_yaw`, min-max scaled to
             [0, 1] over the whole download (0 if a field is constant).

Vocabularies are deterministic: per-slot factors (character, texture, position) are
["none"] + the sorted other names, background is the sorted world names. They, the names of
the factors/latents, the columns read and the held-out pairs are stored in the dataset's
metadata: `tfds.builder("compgen_pug/spar_background", data_dir=...).info.metadata`
(also `source["train"].dataset_info.metadata` of `tfds.data_source`).

ID/OOD: a config holds out a seeded set of PAIRS of factor values. A scene is OOD (split
`test_ood`) if any present character shows a held-out pair, else ID (`train`, and a seeded
`test_id_fraction` of it as `test_id`). Pairs are drawn greedily in a seeded order among the
pairs that occur in the download, and a pair is only held out if every value of every factor
in every slot still occurs in some ID scene: OOD only recombines values seen in-domain
(as `compgen.data.splits.held_out_combinations` requires).

  {spar,animals}_background   held-out (character, background) pairs  (cf. PUG-Background)
  {spar,animals}_texture      held-out (character, texture) pairs     (cf. PUG-Texture)
  spar_object                 held-out unordered (character 1, character 2) pairs of
                              two-animal scenes                       (cf. PUG-Object)
held_out_fraction is 0.1 of the occurring pairs for SPAR (two slots: a pair makes more
scenes OOD) and 0.2 for Animals; test_id_fraction 0.1; seed 0.

Images are centre-cropped to a square and resized with PIL (Lanczos) to 64 x 64 (configs as
named) or 128 x 128 (suffix `_128`); other settings through your own `PugConfig`.
The parquet column names are in ONE mapping per dataset, `SPAR_COLUMNS` / `ANIMALS_COLUMNS`
(taken from the datasets' Hugging Face cards): if your copy names them differently, the build
stops with the columns found vs expected -- add the name to the mapping.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import pathlib
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds

from compgen.data import checks
from compgen.data import scenes as scenes_lib

# ---------------------------------------------------------------------------------------------
# Column mappings: field used by compgen -> accepted parquet column names (first found wins).
# From the Hugging Face dataset cards (facebook/PUG_SPAR, facebook/PUG_Animals). The image
# column holds the encoded image, either as the Hugging Face `Image` struct {bytes, path}
# or as plain binary.
# ---------------------------------------------------------------------------------------------
SPAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "background": ("world_name",),
    # The SPAR card spells character 1's name/texture without the "1" (character_name,
    # character_texture) but its position with it (character1_pos).
    "character1": ("character_name", "character1_name"),
    "character2": ("character2_name",),
    "position1": ("character1_pos", "character_pos"),
    "position2": ("character2_pos",),
    "texture1": ("character_texture", "character1_texture"),
    "texture2": ("character2_texture",),
}
ANIMALS_COLUMNS: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "background": ("world_name",),
    "character": ("character_name",),
    "texture": ("character_texture",),
    "scale": ("character_scale",),
    "camera_yaw": ("camera_yaw",),
}
COLUMNS = {"spar": SPAR_COLUMNS, "animals": ANIMALS_COLUMNS}

NONE = "none"  # category 0 of every per-slot vocabulary: no character / no value
# (SPAR's character 1 wears Default/Blue/Grass and character 2 Default/Red/Stone textures in
# Meta's loaders: both slots share one texture vocabulary, the sorted union.)
MISSING_CHARACTER = ("blank", "none", "")  # character names meaning "no character" (any case)
# SPAR position label (lower case) -> nominal (x, y) in the image, x to the right, y down.
SPAR_POSITION_XY: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5), "right": (0.75, 0.5),
    "top": (0.5, 0.25), "above": (0.5, 0.25), "up": (0.5, 0.25),
    "bottom": (0.5, 0.75), "below": (0.5, 0.75), "down": (0.5, 0.75),
    "center": (0.5, 0.5), "centre": (0.5, 0.5), "middle": (0.5, 0.5), NONE: (0.5, 0.5),
}
# Subfolder of the manual dir per dataset (matched case-insensitively, "-" == "_").
MANUAL_SUBDIRS = {"spar": "PUG_SPAR", "animals": "PUG_Animals"}
DATASET_TITLES = {"spar": "PUG: SPAR", "animals": "PUG: Animals"}
# Where users get PUG themselves (Hugging Face Hub dataset ids); compgen never fetches them.
HUB_DATASETS = {"spar": "facebook/PUG_SPAR", "animals": "facebook/PUG_Animals"}
FACTOR_NAMES = {"spar": ("character", "texture", "position", "background"),
                "animals": ("character", "texture", "background")}
LATENT_NAMES = {"spar": ("x", "y", "present"), "animals": ("scale", "camera_yaw")}
NUM_SLOTS = {"spar": 2, "animals": 1}
# held_out kind -> the two factors whose value pairs are held out ("object": character pairs)
HELD_OUT = {"background": ("character", "background"), "texture": ("character", "texture"),
            "object": ("character", "character")}

LICENSE = ("CC-BY-NC 4.0 with an addendum that PUG must not be used to train generative AI "
           "models.")
LICENSE_NOTICE = (
    "PUG licence: " + LICENSE + " compgen TRAINS GENERATIVE MODELS (autoencoders whose "
    "decoders generate images; replay and search run through them), so check that your use is "
    "permitted by the licence before you build or train on this dataset.")
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
compgen does not download PUG. Get the parquet release of the PUG project by Meta AI
(Bordes et al. 2023, arXiv:2308.03977) yourself:
  PUG: SPAR     Hugging Face Hub dataset {HUB_DATASETS['spar']}     (43,560 images,
                data/train-*.parquet)
  PUG: Animals  Hugging Face Hub dataset {HUB_DATASETS['animals']}  (215,040 images,
                data/train-*.parquet)
e.g. `huggingface-cli download facebook/PUG_SPAR --repo-type dataset --local-dir
<manual_dir>/PUG_SPAR`, and put the shards under <manual_dir>/PUG_SPAR/ and
<manual_dir>/PUG_Animals/ (any depth). <manual_dir> is
`tfds.download.DownloadConfig(manual_dir=...)`, by default <data_dir>/downloads/manual/.
(Only the parquet release is read, not the PNG + labels.csv tarballs.)
LICENCE: {LICENSE_NOTICE}"""
CITATION = """\
@misc{bordes2023pug,
  title={PUG: Photorealistic and Semantically Controllable Synthetic Data for Representation
         Learning},
  author={Florian Bordes and Shashank Shekhar and Mark Ibrahim and Diane Bouchacourt and
          Pascal Vincent and Ari S. Morcos},
  year={2023}, eprint={2308.03977}, archivePrefix={arXiv}}"""
_ZLIB = tfds.features.Encoding.ZLIB


class PugDataError(checks.DataError):
  """The PUG files cannot be used as they are; the message names the problem and the fix."""


class PugFilesMissing(PugDataError, FileNotFoundError):
  """No PUG parquet files in the manual directory."""


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PugConfig(tfds.core.BuilderConfig):
  """Which PUG dataset, which pairs are held out, and the image size.

  Attributes:
    dataset: "spar" or "animals".
    held_out: "background", "texture" or ("spar" only) "object" -- see `HELD_OUT`.
    held_out_fraction: fraction of the occurring pairs to hold out (fewer if holding out more
      would leave some value only OOD).
    test_id_fraction: fraction of the ID scenes put in `test_id` instead of `train`.
    resolution: side of the square images.
    seed: seed of the held-out pairs and of the train / test_id partition.
  """
  dataset: str = "spar"
  held_out: str = "background"
  held_out_fraction: float = 0.1
  test_id_fraction: float = 0.1
  resolution: int = 64
  seed: int = 0

  def __post_init__(self):
    if self.dataset not in COLUMNS:
      raise ValueError(f"dataset={self.dataset!r}: choose one of {sorted(COLUMNS)}.")
    kinds = tuple(HELD_OUT) if NUM_SLOTS[self.dataset] >= 2 else ("background", "texture")
    if self.held_out not in kinds:
      raise ValueError(f"held_out={self.held_out!r} for PUG {self.dataset}: choose one of "
                       f"{kinds}.")
    for name in ("held_out_fraction", "test_id_fraction"):
      if not 0.0 < getattr(self, name) < 1.0:
        raise ValueError(f"{name}={getattr(self, name)!r}: must be in (0, 1).")
    if self.resolution < 8:
      raise ValueError(f"resolution={self.resolution}: must be at least 8.")


RESOLUTIONS = {"": 64, "_128": 128}  # config-name suffix -> image side
HELD_OUT_FRACTIONS = {"spar": 0.1, "animals": 0.2}  # two slots make more scenes OOD per pair


def _configs() -> Iterator[PugConfig]:
  for dataset, kinds in (("spar", ("background", "texture", "object")),
                         ("animals", ("background", "texture"))):
    for kind in kinds:
      for suffix, res in RESOLUTIONS.items():
        a, b = HELD_OUT[kind]
        yield PugConfig(
            name=f"{dataset}_{kind}{suffix}",
            description=(f"{DATASET_TITLES[dataset]} at {res}x{res}, K={NUM_SLOTS[dataset]}; "
                         f"OOD = scenes with a held-out ({a}, {b}) pair."),
            dataset=dataset, held_out=kind, held_out_fraction=HELD_OUT_FRACTIONS[dataset],
            resolution=res)


# ---------------------------------------------------------------------------------------------
# Reading the download
# ---------------------------------------------------------------------------------------------
def find_parquet_files(manual_dir, dataset: str) -> list[pathlib.Path]:
  """The sorted parquet shards of `dataset` under `manual_dir`/PUG_SPAR or /PUG_Animals."""
  title = DATASET_TITLES[dataset]
  want = MANUAL_SUBDIRS[dataset].lower().replace("-", "_")
  root = pathlib.Path(os.path.expanduser(str(manual_dir))) if manual_dir else None
  subdirs = ([p for p in sorted(root.iterdir())
              if p.is_dir() and p.name.lower().replace("-", "_") == want]
             if root is not None and root.is_dir() else [])
  files = sorted(f for d in subdirs for f in d.rglob("*.parquet") if f.is_file())
  if not files:
    where = (f"{root / MANUAL_SUBDIRS[dataset]}" if root is not None else
             f"<manual_dir>/{MANUAL_SUBDIRS[dataset]}")
    raise PugFilesMissing(
        f"No {title} parquet files found in {where} (manual dir: {root}; nothing is "
        f"downloaded by compgen).\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return files


def resolve_columns(path, dataset: str, names: Sequence[str]) -> dict[str, str]:
  """{field: column} for the columns `names` of one parquet file; error if one is missing."""
  mapping = COLUMNS[dataset]
  found = {field: next((c for c in cols if c in names), None) for field, cols in mapping.items()}
  missing = {field: mapping[field] for field, col in found.items() if col is None}
  if missing:
    table = f"{dataset.upper()}_COLUMNS"
    raise PugDataError(
        f"{DATASET_TITLES[dataset]} parquet file {path} lacks the column(s) for "
        + ", ".join(f"{field} (expected one of {list(cols)})" for field, cols in missing.items())
        + f". Columns found: {sorted(names)}. Columns expected (compgen.data.pug.{table}, "
        f"field -> accepted names): { {f: list(c) for f, c in mapping.items()} }. If your copy "
        f"names a field differently, add that name to compgen.data.pug.{table}.")
  return found  # type: ignore[return-value]


@dataclasses.dataclass
class Annotations:
  """The non-image columns of every row, in shard order."""
  dataset: str
  files: list[pathlib.Path]
  columns: list[dict[str, str]]   # per file: field -> column
  offsets: np.ndarray             # [num_files + 1] first global row of each file
  values: dict[str, list]         # field -> one value per row

  def __len__(self) -> int:
    return int(self.offsets[-1])


def read_annotations(files: Sequence[pathlib.Path], dataset: str) -> Annotations:
  """Reads the label columns of every shard (not the images); checks every file's columns."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  fields = [f for f in COLUMNS[dataset] if f != "image"]
  columns, values, offsets = [], {f: [] for f in fields}, [0]
  for path in files:
    try:
      names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as e:
      raise PugDataError(f"Cannot read {path} as parquet ({e}); re-download that shard or "
                         "remove it.") from e
    cols = resolve_columns(path, dataset, names)
    table = pq.read_table(path, columns=[cols[f] for f in fields])
    for f in fields:
      values[f].extend(table.column(cols[f]).to_pylist())
    columns.append(cols)
    offsets.append(offsets[-1] + table.num_rows)
  if offsets[-1] == 0:
    raise PugDataError(f"The {DATASET_TITLES[dataset]} parquet files hold no rows: {files}.")
  return Annotations(dataset, list(files), columns, np.asarray(offsets, np.int64), values)


# ---------------------------------------------------------------------------------------------
# Scenes -> factors / latents
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Scenes:
  """compgen's view of every row: factors [N, K, c], latents [N, K, m], present [N, K]."""
  factors: np.ndarray
  latents: np.ndarray
  present: np.ndarray
  factor_names: tuple[str, ...]
  latent_names: tuple[str, ...]
  vocabularies: dict[str, list[str]]

  def num_categories(self) -> tuple[int, ...]:
    return tuple(len(self.vocabularies[f]) for f in self.factor_names)


def _label(value) -> str | None:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return None
  return str(value).strip()


def _is_missing_character(name: str | None) -> bool:
  return name is None or name.lower() in MISSING_CHARACTER


def _slot_vocab(labels) -> list[str]:
  return [NONE] + sorted({x for x in labels if x is not None and x != NONE})


def _ids(labels: list, vocab: list[str]) -> np.ndarray:
  index = {v: i for i, v in enumerate(vocab)}
  return np.asarray([index[NONE if x is None else x] for x in labels], np.int32)


def _numeric(values: list, field: str, dataset: str) -> np.ndarray:
  bad = [v for v in values if v is None or isinstance(v, str)]
  if bad:
    raise PugDataError(f"{DATASET_TITLES[dataset]} field {field!r} must be numeric with no "
                       f"missing values; found e.g. {bad[:5]}.")
  x = np.asarray(values, np.float64)
  if not np.all(np.isfinite(x)):
    raise PugDataError(f"{DATASET_TITLES[dataset]} field {field!r} holds NaN/Inf values.")
  lo, hi = x.min(), x.max()
  return ((x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)).astype(np.float32)


def _backgrounds(ann: Annotations) -> list[str]:
  labels = [_label(v) for v in ann.values["background"]]
  if any(x is None for x in labels):
    raise PugDataError(f"{DATASET_TITLES[ann.dataset]}: {sum(x is None for x in labels)} "
                       "row(s) have no background (world_name); remove them.")
  return labels


def encode_scenes(ann: Annotations) -> Scenes:
  """Maps the label columns to compgen's slots (the layout in the module doc)."""
  n, k = len(ann), NUM_SLOTS[ann.dataset]
  worlds = _backgrounds(ann)
  vocab = {"background": sorted(set(worlds))}
  if ann.dataset == "spar":
    chars = [[_label(v) for v in ann.values[f"character{s + 1}"]] for s in range(k)]
    present = np.array([[not _is_missing_character(c) for c in chars[s]] for s in range(k)]).T
    chars = [[c if p else None for c, p in zip(chars[s], present[:, s])] for s in range(k)]
    tex = [[_label(v) if p else None for v, p in zip(ann.values[f"texture{s + 1}"],
                                                      present[:, s])] for s in range(k)]
    pos = [[_label(v) if p else None for v, p in zip(ann.values[f"position{s + 1}"],
                                                      present[:, s])] for s in range(k)]
    labels = {x for p in pos for x in p if x is not None}
    unknown = sorted(x for x in labels if x.lower() not in SPAR_POSITION_XY)
    if unknown:
      raise PugDataError(
          f"PUG: SPAR position label(s) {unknown} have no image-plane coordinates: add them to "
          f"compgen.data.pug.SPAR_POSITION_XY (label in lower case -> (x, y) in [0, 1]), "
          f"which knows {sorted(SPAR_POSITION_XY)}.")
    vocab["character"] = _slot_vocab(c for s in chars for c in s)
    vocab["texture"] = _slot_vocab(t for s in tex for t in s)
    vocab["position"] = _slot_vocab(p for s in pos for p in s)
    factors = np.stack([np.stack([_ids(chars[s], vocab["character"]),
                                  _ids(tex[s], vocab["texture"]),
                                  _ids(pos[s], vocab["position"]),
                                  _ids(worlds, vocab["background"])], -1)
                        for s in range(k)], 1)
    xy = np.array([[SPAR_POSITION_XY[(p or NONE).lower()] for p in pos[s]] for s in range(k)],
                  np.float32).transpose(1, 0, 2)  # [N, K, 2]
    latents = np.concatenate([xy, present[..., None].astype(np.float32)], -1)
    latents *= present[..., None]
  else:
    chars = [_label(v) for v in ann.values["character"]]
    if any(_is_missing_character(c) for c in chars):
      raise PugDataError("PUG: Animals rows without a character (null or 'blank' "
                         "character_name) are not supported; remove them.")
    tex = [_label(v) for v in ann.values["texture"]]
    present = np.ones((n, 1), bool)
    vocab["character"] = _slot_vocab(chars)
    vocab["texture"] = _slot_vocab(tex)
    factors = np.stack([_ids(chars, vocab["character"]), _ids(tex, vocab["texture"]),
                        _ids(worlds, vocab["background"])], -1)[:, None, :]
    latents = np.stack([_numeric(ann.values["scale"], "scale", "animals"),
                        _numeric(ann.values["camera_yaw"], "camera_yaw", "animals")],
                       -1)[:, None, :]
  names = FACTOR_NAMES[ann.dataset]
  return Scenes(factors.astype(np.int32), latents.astype(np.float32), present, names,
                LATENT_NAMES[ann.dataset], {f: vocab[f] for f in names})


# ---------------------------------------------------------------------------------------------
# Held-out pairs -> splits
# ---------------------------------------------------------------------------------------------
def pair_codes(scenes: Scenes, held_out: str) -> tuple[np.ndarray, int]:
  """Each scene's pairs as codes a * n_b + b: [N, P] (-1: no pair there), and n_b.

  P = K (one pair per present character) for "background" / "texture"; P = 1 (the unordered
  character pair of two-animal scenes, smaller id first) for "object".
  """
  f = scenes.factor_names
  ch = scenes.factors[..., f.index("character")].astype(np.int64)
  if held_out == "object":
    n_b = len(scenes.vocabularies["character"])
    both = scenes.present.all(1)
    code = np.min(ch, 1) * n_b + np.max(ch, 1)
    return np.where(both, code, -1)[:, None], n_b
  other = HELD_OUT[held_out][1]
  n_b = len(scenes.vocabularies[other])
  code = ch * n_b + scenes.factors[..., f.index(other)]
  return np.where(scenes.present, code, -1), n_b


def _covered(factors: np.ndarray, mask: np.ndarray, totals: list[np.ndarray]) -> bool:
  """Does every (slot, factor) value that occurs at all occur among the scenes in `mask`?"""
  k, c = factors.shape[1:]
  for i in range(k * c):
    counts = np.bincount(factors[mask, i // c, i % c], minlength=len(totals[i]))
    if np.any((totals[i] > 0) & (counts == 0)):
      return False
  return True


@dataclasses.dataclass
class Split:
  indices: dict[str, np.ndarray]       # split -> sorted row indices
  held_out: list[tuple[int, int]]      # held-out pairs (ids in the two factors' vocabularies)
  num_candidates: int                  # pairs occurring in the download
  target: int                          # pairs the fraction asked for


def assign_splits(scenes: Scenes, config: PugConfig) -> Split:
  """Seeded held-out pairs (keeping every value ID) and the train/test_id/test_ood rows."""
  codes, n_b = pair_codes(scenes, config.held_out)
  candidates = np.unique(codes[codes >= 0])
  if not len(candidates):
    raise PugDataError(f"No ({', '.join(HELD_OUT[config.held_out])}) pairs occur in the "
                       f"{DATASET_TITLES[config.dataset]} files: nothing to hold out.")
  target = max(1, int(round(config.held_out_fraction * len(candidates))))
  fac = scenes.factors
  totals = [np.bincount(fac[:, i // fac.shape[2], i % fac.shape[2]])
            for i in range(fac.shape[1] * fac.shape[2])]
  rng = np.random.default_rng(config.seed)
  held: list[int] = []
  ood = np.zeros(len(fac), bool)
  for cand in rng.permutation(candidates):
    trial = ood | (codes == cand).any(1)
    if trial.all() or not _covered(fac, ~trial, totals):
      continue  # would leave a value only OOD (or nothing ID)
    held.append(int(cand))
    ood = trial
    if len(held) == target:
      break
  if not held:
    raise PugDataError(
        f"No ({', '.join(HELD_OUT[config.held_out])}) pair of the {DATASET_TITLES[config.dataset]}"
        " files can be held out without leaving some factor value only out-of-domain; use "
        "another held_out kind or more data.")
  if len(held) < target:
    logging.warning("compgen_pug/%s: held out %d of the %d requested pairs; more would leave "
                    "some factor value only out-of-domain.", config.name, len(held), target)
  id_rows = np.flatnonzero(~ood)
  perm = np.random.default_rng([config.seed, 1]).permutation(id_rows)
  n_test = int(round(config.test_id_fraction * len(id_rows)))
  indices = {"train": np.sort(perm[n_test:]), "test_id": np.sort(perm[:n_test]),
             "test_ood": np.flatnonzero(ood)}
  return Split(indices, sorted((c // n_b, c % n_b) for c in held), len(candidates), target)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
def decode_image(value: Any, resolution: int, base_dir: pathlib.Path | None = None) -> np.ndarray:
  """Encoded image (HF `Image` struct {bytes, path} or binary) -> uint8 [R, R, 3]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  data, path = value, None
  if isinstance(value, dict):
    data, path = value.get("bytes"), value.get("path")
  if data is None and path:
    file = pathlib.Path(path) if base_dir is None else base_dir / path
    if not file.exists():
      raise PugDataError(f"Image has no bytes and its path {path!r} does not exist (looked "
                         f"at {file}).")
    data = file.read_bytes()
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise PugDataError(f"Cannot read an image from a value of type {type(value).__name__}: "
                       "expected encoded bytes or a {'bytes': ..., 'path': ...} struct.")
  with Image.open(io.BytesIO(bytes(data))) as img:
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
    img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img, np.uint8)


# ---------------------------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------------------------
def features_of(config: PugConfig) -> tfds.features.FeaturesDict:
  k, r = NUM_SLOTS[config.dataset], config.resolution
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=(r, r, 3), dtype=np.uint8, encoding=_ZLIB),
      "latents": tfds.features.Tensor(shape=(k, len(LATENT_NAMES[config.dataset])),
                                      dtype=np.float32),
      "factors": tfds.features.Tensor(shape=(k, len(FACTOR_NAMES[config.dataset])),
                                      dtype=np.int32),
      "index": np.int32,  # reads back as a Python int (int64 once batched)
  })


def _manual_dir(dl_manager):
  try:
    return dl_manager.manual_dir
  except AssertionError:  # TFDS: manual dir missing or empty; say where to get PUG instead
    return getattr(dl_manager, "_manual_dir", None)


class CompgenPug(tfds.core.GeneratorBasedBuilder):
  """PUG: SPAR / PUG: Animals from your manual download, with held-out-pair ID/OOD splits."""
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = list(_configs())

  def __init__(self, *, file_format=None, **kwargs):
    # array_record by default: random access with `tfds.data_source`, no TensorFlow needed.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features_of(cfg),
        citation=CITATION, license=LICENSE,
        metadata=tfds.core.MetadataDict())  # filled from the files in _split_generators

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    files = find_parquet_files(_manual_dir(dl_manager), cfg.dataset)
    logging.warning(LICENSE_NOTICE)
    ann = read_annotations(files, cfg.dataset)
    scenes = encode_scenes(ann)
    split = assign_splits(scenes, cfg)
    a, b = HELD_OUT[cfg.held_out]
    va, vb = scenes.vocabularies[a], scenes.vocabularies[b]
    self.info.metadata.update({
        "dataset": DATASET_TITLES[cfg.dataset],
        "factor_names": list(scenes.factor_names),
        "latent_names": list(scenes.latent_names),
        "vocabularies": scenes.vocabularies,
        "missing_character": f"category {NONE!r} (id 0) of character/texture/position; "
                             "latents 0",
        "held_out_factors": [a, b],
        "held_out": [[va[i], vb[j]] for i, j in split.held_out],
        "held_out_ids": [[int(i), int(j)] for i, j in split.held_out],
        "held_out_candidates": split.num_candidates,
        "held_out_requested": split.target,
        "num_examples": {s: int(len(v)) for s, v in split.indices.items()},
        "columns": ann.columns[0],
        "source_files": [f.name for f in files],
        "license": LICENSE_NOTICE,
    })
    return {s: self._generate_examples(ann, scenes, split.indices[s])
            for s in scenes_lib.SPLITS}

  def _generate_examples(self, ann: Annotations, scenes: Scenes, rows: np.ndarray):
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    res = self.builder_config.resolution
    for path, cols, start in zip(ann.files, ann.columns, ann.offsets[:-1]):
      pf = pq.ParquetFile(path)
      for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        lo, hi = np.searchsorted(rows, [start, start + n])
        if hi > lo:
          images = pf.read_row_group(rg, columns=[cols["image"]]).column(0)
          for i in rows[lo:hi]:
            image = decode_image(images[int(i - start)].as_py(), res, path.parent)
            yield int(i), {"image": image, "latents": scenes.latents[i],
                           "factors": scenes.factors[i], "index": np.int32(i)}
        start += n
