"""The experiment's data and what it perceives, typed.

- `SETS`: the experiment's image sets and the data split each is drawn from — the readouts
  are fitted on "fit" (ID training images) and applied to "id" and "ood" (the test splits).
- `Benchmark`: the images of every set with their true latents and factor names — what every
  run of one experiment is scored against (`load_benchmark`).
- `Perceived`: what each method perceived on each set, and the decoder's interaction
  statistics; written to and read from one `.npz` by `save` / `load` (keys
  "{method}/{set}/{field}" and "interaction/{name}").
"""
from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np

from compgen import files
from compgen import models
from compgen.data import pipeline
from compgen.data import sprites as sprites_lib
from compgen.training import trained

METHODS = ("encoder", "search", "replay_encoder", "replay_search")
SETS = {"fit": "train", "id": "test_id", "ood": "test_ood"}  # set -> the data split it is from


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """arrays {set: examples ("latents" [N, K, m], "factors" [N, K, c] when categorical, the
  model inputs)}; names: the continuous then categorical factors' names; num_categories:
  classes per categorical factor (None: inferred from the data)."""
  arrays: dict[str, dict[str, np.ndarray]]
  names: list[str]
  num_categories: Any

  def truth(self, s: str) -> tuple:
    """(true latents, true factors or None) of set `s`."""
    return self.arrays[s]["latents"], self.arrays[s].get("factors")

  def x(self, s: str) -> np.ndarray:
    """The model inputs of set `s` (images [N, H, W, C] or vectors [N, d_x])."""
    return models.model_input(self.arrays[s])


def factor_names(config: ml_collections.ConfigDict, arrays: dict) -> tuple[list[str], tuple]:
  """Names of the continuous then categorical factors, and classes per categorical factor."""
  if config.data.dataset == "sprites":
    return (list(sprites_lib.LATENT_NAMES) + list(sprites_lib.FACTOR_NAMES),
            pipeline.dataset_spec(config.data).num_categories)
  m = arrays["fit"]["latents"].shape[2]
  fac = arrays["fit"].get("factors")
  n_c = 0 if fac is None else fac.shape[2]
  latent, factor = (pipeline.npz_names(config.data.npz_path) if config.data.dataset == "npz"
                    else (None, None))
  latent = latent or [f"z{i}" for i in range(m)]
  return latent + (factor or [f"factor{i}" for i in range(n_c)]), None


def load_arrays(config: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """{set: the first `experiment.fit_examples` ("fit") or `experiment.eval_examples` examples
  of its split}."""
  ec = config.experiment
  sizes = {"fit": ec.fit_examples, "id": ec.eval_examples, "ood": ec.eval_examples}
  sources = pipeline.load_splits(config.data)
  return {name: trained.first_examples(sources[split], sizes[name])
          for name, split in SETS.items()}


def load_benchmark(config: ml_collections.ConfigDict) -> Benchmark:
  arrays = load_arrays(config)
  return Benchmark(arrays, *factor_names(config, arrays))


@dataclasses.dataclass
class Perceived:
  """views {(method, set): {"z" [N, K, m], "mse" [N]; search methods also "trace_mean" [T]
  (mean objective per step), "converged", "finite" [N]; on sprites "mse_overlap",
  "mse_single" [N] (the error on pixels two or more / one true object cover, NaN without
  any) and "fg_ari" [N] (decoders with slot masks); on "ood" also "pictures" (the first
  decoded latents)}}; interaction {name: value}."""
  views: dict[tuple[str, str], dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
  interaction: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def __getitem__(self, key: tuple[str, str]) -> dict[str, np.ndarray]:
    return self.views[key]

  def add(self, method: str, s: str, **fields) -> None:
    self.views.setdefault((method, s), {}).update(fields)


def save(path, perceived: Perceived) -> None:
  files.save_npz(path, **{f"{m}/{s}/{field}": v for (m, s), view in perceived.views.items()
                          for field, v in view.items()},
                 **{f"interaction/{name}": np.asarray(v)
                    for name, v in perceived.interaction.items()})


def load(path) -> Perceived:
  perceived = Perceived()
  for key, value in files.load_npz(path).items():
    if key.startswith("interaction/"):
      perceived.interaction[key.split("/", 1)[1]] = value
    else:
      method, s, field = key.split("/")
      perceived.add(method, s, **{field: value})
  return perceived
