"""TFDS builders `compgen_sprites` and `compgen_synthetic`, registered on importing this module.

They render locally (nothing is downloaded), write array_record and are read with
`tfds.data_source` — TensorFlow is not needed. Splits: train (ID), test_id, test_ood.

Builder configs are named `{scheme}_{size}` for sprites (e.g. `diagonal_tiny`,
`held_out_combinations_small`) and `{scheme}_{interaction}_{size}` for synthetic vectors
(`l_shaped_n0_small`, the benchmark's split, `diagonal_n0_tiny` ... `diagonal_n2_small`,
`diagonal_mlp_small` for the negative control).
The `tiny` configs are for tests.

Each prepared dataset stores the `DatasetSpec` it was rendered from (`metadata.json`, key
"spec"); `check_prepared` refuses a data_dir holding another version of a config, or a copy
rendered from another spec (a renderer or size changed without a version bump), with the
versions / differing fields and the fix, instead of building next to it or reading it.

    import compgen.data.tfds_builders, tensorflow_datasets as tfds  # registers the builders
    source = tfds.data_source("compgen_sprites/diagonal_tiny", data_dir="/tmp/tfds")
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from compgen import errors
from compgen.data import checks
from compgen.data import scenes
from compgen.data import splits as splits_lib
from compgen.data import sprites as sprites_lib
from compgen.data import synthetic as synthetic_lib

# size name -> (resolution or output_dim, num_train, num_test_id, num_test_ood)
SPRITES_SIZES = {"tiny": (16, 256, 128, 128), "small": (64, 10_000, 1_000, 1_000),
                 "base": (64, 100_000, 5_000, 5_000)}
SYNTHETIC_SIZES = {"tiny": (16, 256, 128, 128), "small": (32, 10_000, 1_000, 1_000)}
SYNTHETIC_INTERACTIONS = {"n0": dict(degree=0), "n1": dict(degree=1), "n2": dict(degree=2),
                          "mlp": dict(interaction="mlp")}
_ZLIB = tfds.features.Encoding.ZLIB


@dataclasses.dataclass
class CompgenConfig(tfds.core.BuilderConfig):
  """A builder config that carries the full `DatasetSpec` it renders."""
  spec: scenes.DatasetSpec | None = None


def _sprites_configs():
  for scheme in ("diagonal", "held_out_combinations", "iid"):
    for size, (res, n_train, n_id, n_ood) in SPRITES_SIZES.items():
      yield CompgenConfig(
          name=f"{scheme}_{size}",
          description=f"{res}x{res} sprites, K=2, split '{scheme}', {n_train} train images.",
          spec=scenes.DatasetSpec(
              sprites_lib.SpritesSpec(resolution=res),
              dataclasses.replace(splits_lib.default_split("sprites"), scheme=scheme),
              n_train, n_id, n_ood))


def _synthetic_configs():
  for scheme in ("diagonal", "l_shaped", "iid"):
    for inter, kwargs in SYNTHETIC_INTERACTIONS.items():
      for size, (d_x, n_train, n_id, n_ood) in SYNTHETIC_SIZES.items():
        yield CompgenConfig(
            name=f"{scheme}_{inter}_{size}",
            description=f"K=2, m=2, d_x={d_x} vectors, interaction '{inter}', split '{scheme}'.",
            spec=scenes.DatasetSpec(synthetic_lib.SyntheticSpec(output_dim=d_x, **kwargs),
                                    _synthetic_split(scheme), n_train, n_id, n_ood))


def _synthetic_split(scheme: str) -> splits_lib.SplitSpec:
  """The paper's diagonal split (joint band, δ = 0.125), or the benchmark's split with
  `scheme` (the L-shaped one, or iid)."""
  if scheme == "diagonal":
    return splits_lib.SplitSpec("diagonal")
  return dataclasses.replace(splits_lib.default_split("synthetic"), scheme=scheme)


def features_of(spec: scenes.DatasetSpec) -> tfds.features.FeaturesDict:
  """TFDS features of one example of `spec` (numpy-only encodings)."""
  gen = spec.generator
  latents = tfds.features.Tensor(shape=(gen.num_slots, gen.latent_dim), dtype=np.float32)
  if spec.kind == "synthetic":
    return tfds.features.FeaturesDict({
        "x": tfds.features.Tensor(shape=(gen.output_dim,), dtype=np.float32),
        "latents": latents})
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=gen.image_shape, dtype=np.uint8, encoding=_ZLIB),
      "latents": latents,
      "factors": tfds.features.Tensor(shape=(gen.num_slots, len(gen.num_categories)),
                                      dtype=np.int32),
      "visibility": tfds.features.Tensor(shape=(gen.num_slots,), dtype=np.float32),
      "overlap": np.bool_,
  })


class _CompgenBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared body: render each split of the config's `DatasetSpec`."""
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def __init__(self, *, file_format=None, **kwargs):
    # array_record by default: random access with `tfds.data_source`, no TensorFlow needed.
    super().__init__(file_format=file_format or "array_record", **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=features_of(self.builder_config.spec),
        metadata=tfds.core.MetadataDict(spec=spec_record(self.builder_config.spec)),
        disable_shuffling=True)  # keep generation order: identical to `scenes.generate`

  def _split_generators(self, dl_manager):
    del dl_manager  # rendered locally, nothing to download
    return {split: self._generate_examples(split) for split in scenes.SPLITS}

  def _generate_examples(self, split):
    index = 0
    for chunk in scenes.iter_chunks(self.builder_config.spec, split):
      for i in range(len(chunk["latents"])):
        yield index, {k: v[i] for k, v in chunk.items()}
        index += 1


class CompgenSprites(_CompgenBuilder):
  """Sprites scenes (K objects, shape/x/y/scale/hue) with ID/OOD splits."""
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "1.1.0": "Diagonal split with the per-latent band (1.0.0: the joint band)."}
  BUILDER_CONFIGS = list(_sprites_configs())


class CompgenSynthetic(_CompgenBuilder):
  """Synthetic F_int vectors (and an MLP negative control) with ID/OOD splits."""
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "1.1.0": "L-shaped split configs; the spec records the generator's "
                            "input_scale (1.0: the same vectors as 1.0.0)."}
  BUILDER_CONFIGS = list(_synthetic_configs())


BUILDERS = {"sprites": CompgenSprites, "synthetic": CompgenSynthetic}


def builder_spec(dataset: str, config_name: str) -> scenes.DatasetSpec:
  """The `DatasetSpec` of builder config `config_name` of `compgen_{dataset}`."""
  specs = {c.name: c.spec for c in BUILDERS[dataset].BUILDER_CONFIGS}
  if config_name not in specs:
    raise errors.ConfigError(
        f"Unknown TFDS config {config_name!r} for compgen_{dataset}: choose one "
                     f"of {sorted(specs)}.")
  return specs[config_name]


def spec_record(spec: scenes.DatasetSpec) -> dict:
  """The JSON record of a `DatasetSpec` that a prepared dataset stores (metadata "spec")."""
  return json.loads(json.dumps({"kind": spec.kind, **dataclasses.asdict(spec)}))


def _flat(record, prefix=""):
  for key, value in record.items():
    if isinstance(value, dict):
      yield from _flat(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def spec_differences(found: dict, expected: dict, labels=("found", "expected")) -> list[str]:
  """"field: found X, expected Y" for every field where two spec records differ."""
  found, expected = dict(_flat(found)), dict(_flat(expected))
  return [f"{k}: {labels[0]} {found.get(k, '(none)')!r}, {labels[1]} "
          f"{expected.get(k, '(none)')!r}"
          for k in sorted(set(found) | set(expected)) if found.get(k) != expected.get(k)]


def check_prepared(name: str, data_dir: str) -> None:
  """Refuses `data_dir` when its copy of `name` ("compgen_sprites/diagonal_tiny") is another
  dataset version than this compgen's builder, or was prepared from another builder config
  (stored spec != this compgen's spec); a DataError names both and the fix. Nothing there
  yet, or a config without a spec: nothing to check."""
  builder_name, config_name = name.split("/")
  builder = tfds.builder_cls(builder_name)
  version = str(builder.VERSION)
  root = epath.Path(data_dir) / builder_name / config_name
  fix = (f"Delete {root} (it is rebuilt on first use) or point data.tfds_data_dir "
         "elsewhere.")
  if not root.is_dir():
    return
  found = sorted(p.name for p in root.iterdir()
                 if tfds.core.Version.is_valid(p.name) and p.is_dir())
  if found and version not in found:
    raise checks.DataError(
        f"{root} holds version {', '.join(found)} of {name}, but this compgen builds and "
        f"reads version {version}: that data comes from another compgen and may differ. {fix}")
  prepared = root / version
  config = {c.name: c for c in builder.BUILDER_CONFIGS}.get(config_name)
  spec = getattr(config, "spec", None)
  if spec is None or not (prepared / "dataset_info.json").exists():
    return
  meta = prepared / "metadata.json"
  stored = json.loads(meta.read_text()).get("spec") if meta.exists() else None
  if stored is None:
    raise checks.DataError(
        f"{prepared} holds no record of the builder config it was prepared from "
        f"(metadata.json, key 'spec'), so it cannot be checked against {name}. {fix}")
  diff = spec_differences(stored, spec_record(spec))
  if diff:
    raise checks.DataError(
        f"{prepared} was prepared from another builder config than this compgen's {name} "
        f"(version {version}): {'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}. {fix}")
