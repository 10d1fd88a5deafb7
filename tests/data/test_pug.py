"""compgen_pug: built from a tiny parquet fixture in the published PUG schema (no real PUG here)."""
import io
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import compgen.data.pug  # noqa: F401  (registers compgen_pug)
from compgen import config_lib
from compgen.data import pipeline, pug

ANIMALS = ["yak", "cat", "owl", "dog", "fox", "pig"]  # deliberately unsorted
WORLDS = ["Moon", "Desert", "Lake", "Forest"]
TEX1, TEX2 = ["Default", "Blue", "Grass"], ["Default", "Red", "Stone"]
POSITIONS = [("left", "right"), ("bottom", "top")]
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # HF `Image` column
XY = {"left": (0.25, 0.5), "right": (0.75, 0.5), "bottom": (0.5, 0.75), "top": (0.5, 0.25)}


def colour(i):
  return (i % 256, 255 - i % 256, (37 * i) % 256)


def png(i, size=(32, 24)):
  buf = io.BytesIO()
  Image.new("RGB", size, colour(i)).save(buf, format="PNG")
  return buf.getvalue()


def spar_rows(n=80):
  """Rows in the PUG: SPAR card's schema: background-only, one-animal and two-animal scenes."""
  rng = np.random.default_rng(0)
  rows = []
  for i in range(n):
    c1, c2 = ANIMALS[rng.integers(6)], ANIMALS[rng.integers(6)]
    if i < 4:
      c1 = c2 = "blank"
    elif i < 16:
      c1, c2 = (c1, "blank") if i % 2 else ("blank", c2)
    p1, p2 = POSITIONS[rng.integers(2)]
    rows.append({"image": {"bytes": png(i), "path": None}, "world_name": WORLDS[rng.integers(4)],
                 "character_name": c1, "character2_name": c2, "character1_pos": p1,
                 "character2_pos": p2, "character_texture": TEX1[rng.integers(3)],
                 "character2_texture": TEX2[rng.integers(3)]})
  return rows


def animals_rows(n=48):
  rng = np.random.default_rng(1)
  return [{"image": {"bytes": png(i, (20, 20)), "path": None},
           "world_name": WORLDS[rng.integers(3)], "character_name": ANIMALS[rng.integers(4)],
           "character_scale": float(rng.choice([0.8, 1.0, 1.4])),
           "camera_yaw": int(rng.choice([0, 90, 180, 270])),
           "character_texture": TEX1[rng.integers(3)]} for i in range(n)]


def write_shards(folder, rows, num_shards=2, drop=()):
  folder.mkdir(parents=True)
  per = -(-len(rows) // num_shards)
  for s in range(num_shards):
    part = rows[s * per:(s + 1) * per]
    cols = {k: [r[k] for r in part] for k in part[0] if k not in drop}
    arrays = {k: pa.array(v, type=IMAGE_TYPE if k == "image" else None) for k, v in cols.items()}
    pq.write_table(pa.table(arrays), folder / f"train-{s:05d}-of-{num_shards:05d}.parquet",
                   row_group_size=16)


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
  manual = tmp_path_factory.mktemp("manual")
  rows = {"spar": spar_rows(), "animals": animals_rows()}
  write_shards(manual / "PUG_SPAR" / "data", rows["spar"])
  write_shards(manual / "PUG_Animals" / "data", rows["animals"], num_shards=1)
  return manual, rows


def download_kwargs(manual):
  return {"download_config": tfds.download.DownloadConfig(manual_dir=str(manual))}


def read_all(source):
  return {split: pipeline.TfdsSource(src, split)[np.arange(len(src))]
          for split, src in source.items()}


@pytest.fixture(scope="module")
def spar_built(fixture_dir, tmp_path_factory):
  manual, rows = fixture_dir
  data_dir = tmp_path_factory.mktemp("tfds")
  source = tfds.data_source("compgen_pug/spar_background", data_dir=str(data_dir),
                            download_and_prepare_kwargs=download_kwargs(manual))
  meta = source["train"].dataset_info.metadata
  return read_all(source), dict(meta), rows["spar"], data_dir


def names_of(row, slot):
  """(character, texture, position, background) of one fixture row's slot, as published."""
  c = row["character_name" if slot == 0 else "character2_name"]
  if c == "blank":
    return ("none", "none", "none", row["world_name"])
  tex = row["character_texture" if slot == 0 else "character2_texture"]
  return (c, tex, row[f"character{slot + 1}_pos"], row["world_name"])


def test_spar_examples_have_compgen_layout_and_match_their_rows(spar_built):
  arrays, meta, rows, data_dir = spar_built
  vocab = meta["vocabularies"]
  assert meta["factor_names"] == ["character", "texture", "position", "background"]
  assert vocab["character"] == ["none"] + sorted(ANIMALS)
  assert vocab["texture"] == ["none"] + sorted(set(TEX1 + TEX2))
  assert vocab["position"] == ["none", "bottom", "left", "right", "top"]
  assert vocab["background"] == sorted(WORLDS)
  seen = []
  for split, a in arrays.items():
    n = len(a["index"])
    assert n > 0, split
    assert a["image"].shape == (n, 64, 64, 3) and a["image"].dtype == np.uint8
    assert a["latents"].shape == (n, 2, 3) and a["latents"].dtype == np.float32
    assert a["factors"].shape == (n, 2, 4) and a["factors"].dtype == np.int32
    assert a["index"].shape == (n,) and np.issubdtype(a["index"].dtype, np.integer)
    pipeline.validate(a, split)  # compgen's data contract
    for img, lat, fac, i in zip(a["image"], a["latents"], a["factors"], a["index"]):
      row = rows[i]
      np.testing.assert_allclose(img.reshape(-1, 3).mean(0), colour(int(i)), atol=1.0)
      for k in range(2):
        decoded = tuple(vocab[f][v] for f, v in zip(meta["factor_names"], fac[k]))
        assert decoded == names_of(row, k), (split, i, k)
        pos = names_of(row, k)[2]
        expected = (0.0, 0.0, 0.0) if pos == "none" else (*XY[pos], 1.0)
        np.testing.assert_allclose(lat[k], expected)
    seen.extend(a["index"].tolist())
  assert sorted(seen) == list(range(len(rows)))  # every row exactly once
  assert list(data_dir.glob("compgen_pug/spar_background/1.0.0/*.array_record*"))


def scene_pairs(row, held_out):
  """The (a, b) name pairs of one fixture row that a held_out kind looks at."""
  present = [names_of(row, k) for k in range(2) if names_of(row, k)[0] != "none"]
  if held_out == "object":
    return {tuple(sorted(p[0] for p in present))} if len(present) == 2 else set()
  j = {"background": 3, "texture": 1}[held_out]
  return {(p[0], p[j]) for p in present}


def check_held_out_split(rows_by_split, held, held_out, slot_values):
  """ID and OOD pairs disjoint, OOD pairs = held, every OOD value also ID."""
  held = {tuple(h) for h in held}
  assert held
  id_pairs = set().union(*(scene_pairs(r, held_out) for s in ("train", "test_id")
                           for r in rows_by_split[s]))
  ood_pairs = [scene_pairs(r, held_out) for r in rows_by_split["test_ood"]]
  assert not id_pairs & held
  assert all(p & held for p in ood_pairs)  # every OOD scene shows a held-out pair
  assert set().union(*ood_pairs) & held == held  # and every held-out pair occurs OOD
  id_rows = rows_by_split["train"] + rows_by_split["test_id"]
  for k, f in itertools.product(range(len(slot_values(id_rows[0]))),
                                range(len(slot_values(id_rows[0])[0]))):
    ood_values = {slot_values(r)[k][f] for r in rows_by_split["test_ood"]}
    assert ood_values <= {slot_values(r)[k][f] for r in id_rows}, (k, f)


def spar_slots(row):
  return [names_of(row, k) for k in range(2)]


def test_spar_background_ood_is_exactly_the_held_out_pairs(spar_built):
  arrays, meta, rows, _ = spar_built
  assert meta["held_out_factors"] == ["character", "background"]
  rows_by_split = {s: [rows[i] for i in a["index"]] for s, a in arrays.items()}
  check_held_out_split(rows_by_split, meta["held_out"], "background", spar_slots)
  assert len(meta["held_out"]) == meta["held_out_requested"] >= 2


@pytest.mark.parametrize("name", ["spar_texture", "spar_object"])
def test_other_spar_configs_hold_out_their_pairs(fixture_dir, name):
  manual, rows = fixture_dir
  config = {c.name: c for c in pug.CompgenPug.BUILDER_CONFIGS}[name]
  files = pug.find_parquet_files(manual, "spar")
  scenes = pug.encode_scenes(pug.read_annotations(files, "spar"))
  split = pug.assign_splits(scenes, config)
  a, b = pug.HELD_OUT[config.held_out]
  held = [(scenes.vocabularies[a][i], scenes.vocabularies[b][j]) for i, j in split.held_out]
  rows_by_split = {s: [rows["spar"][i] for i in idx] for s, idx in split.indices.items()}
  check_held_out_split(rows_by_split, held, config.held_out, spar_slots)


def test_held_out_pairs_are_deterministic_given_the_seed(fixture_dir):
  manual, _ = fixture_dir
  scenes = pug.encode_scenes(pug.read_annotations(pug.find_parquet_files(manual, "spar"), "spar"))
  def held(seed):
    return pug.assign_splits(scenes, pug.PugConfig(name="t", held_out="background", seed=seed,
                                                   held_out_fraction=0.2))
  first = held(0)
  assert held(0).held_out == first.held_out
  for s in pug.scenes_lib.SPLITS:
    np.testing.assert_array_equal(held(0).indices[s], first.indices[s])
  assert len({tuple(held(seed).held_out) for seed in range(5)}) > 1


def test_animals_custom_resolution_and_numeric_latents(fixture_dir, tmp_path):
  manual, rows = fixture_dir
  config = pug.PugConfig(name="animals_texture_16", dataset="animals", held_out="texture",
                         held_out_fraction=0.25, resolution=16)
  builder = pug.CompgenPug(config=config, data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  meta = builder.info.metadata
  arrays = read_all(builder.as_data_source())
  assert meta["factor_names"] == ["character", "texture", "background"]
  assert meta["vocabularies"]["character"] == ["none"] + sorted(ANIMALS[:4])
  scale = {0.8: 0.0, 1.0: 1 / 3, 1.4: 1.0}
  for split, a in arrays.items():
    n = len(a["index"])
    assert a["image"].shape == (n, 16, 16, 3) and a["latents"].shape == (n, 1, 2)
    assert a["factors"].shape == (n, 1, 3)
    for lat, fac, i in zip(a["latents"], a["factors"], a["index"]):
      row = rows["animals"][i]
      np.testing.assert_allclose(lat[0], [scale[row["character_scale"]],
                                          row["camera_yaw"] / 270], rtol=1e-5)
      assert meta["vocabularies"]["texture"][fac[0, 1]] == row["character_texture"]
  rows_by_split = {s: [rows["animals"][i] for i in a["index"]] for s, a in arrays.items()}
  held = {tuple(h) for h in meta["held_out"]}
  assert held
  for s, split_rows in rows_by_split.items():
    in_held = [(r["character_name"], r["character_texture"]) in held for r in split_rows]
    assert all(in_held) if s == "test_ood" else not any(in_held), s
  for field in ("character_name", "character_texture", "world_name"):
    assert ({r[field] for r in rows_by_split["test_ood"]}
            <= {r[field] for r in rows_by_split["train"] + rows_by_split["test_id"]})


@pytest.mark.parametrize("layout", ["missing", "empty", "other_dataset"])
def test_without_the_files_the_error_says_where_to_get_pug_and_the_licence(tmp_path, layout):
  manual = tmp_path / "manual"
  if layout != "missing":
    manual.mkdir()
  if layout == "other_dataset":  # only PUG: Animals there, building SPAR
    (manual / "PUG_Animals").mkdir()
    (manual / "PUG_Animals" / "x.parquet").write_bytes(b"")
  with pytest.raises(pug.PugFilesMissing) as e:
    tfds.data_source("compgen_pug/spar_object", data_dir=str(tmp_path / "tfds"),
                     download_and_prepare_kwargs=download_kwargs(manual))
  msg = str(e.value)
  for needle in ("Hugging Face Hub dataset facebook/PUG_SPAR", "CC-BY-NC 4.0",
                 "must not be used to train generative AI", "compgen TRAINS GENERATIVE MODELS",
                 "PUG_SPAR", "manual"):
    assert needle in msg, needle
  assert isinstance(e.value, pipeline.DataError)
  assert not list((tmp_path / "tfds").glob("compgen_pug/spar_object/1.0.0/*.array_record*"))


def test_a_parquet_lacking_a_column_is_named_with_the_columns_found(tmp_path):
  manual = tmp_path / "manual"
  write_shards(manual / "pug-spar", spar_rows(20), num_shards=1, drop=("character2_texture",))
  builder = tfds.builder("compgen_pug/spar_texture", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(pug.PugDataError) as e:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  msg = str(e.value)
  assert "texture2 (expected one of ['character2_texture'])" in msg
  assert "Columns found: ['character1_pos', 'character2_name', 'character2_pos', " in msg
  assert "SPAR_COLUMNS" in msg and "train-00000-of-00001.parquet" in msg


def test_unknown_position_labels_are_named(fixture_dir):
  rows = spar_rows(20)
  rows[18]["character1_pos"] = "behind"
  ann = pug.Annotations("spar", [], [], np.array([0, 20]), {
      f: [r[cols[0]] for r in rows] for f, cols in pug.SPAR_COLUMNS.items() if f != "image"})
  with pytest.raises(pug.PugDataError, match=r"\['behind'\].*SPAR_POSITION_XY"):
    pug.encode_scenes(ann)


@pytest.mark.parametrize("held_out", ["background", "texture", "object"])
def test_holding_out_too_much_stops_before_a_value_is_only_ood(fixture_dir, held_out):
  manual, rows = fixture_dir
  scenes = pug.encode_scenes(pug.read_annotations(pug.find_parquet_files(manual, "spar"), "spar"))
  config = pug.PugConfig(name="t", held_out=held_out, held_out_fraction=0.9)
  split = pug.assign_splits(scenes, config)
  assert 0 < len(split.held_out) <= split.target
  if held_out != "object":  # capped: 90% would leave values only OOD (object: one-animal
    assert len(split.held_out) < split.target  # scenes keep every animal ID)
  a, b = pug.HELD_OUT[held_out]
  held = [(scenes.vocabularies[a][i], scenes.vocabularies[b][j]) for i, j in split.held_out]
  rows_by_split = {s: [rows["spar"][i] for i in idx] for s, idx in split.indices.items()}
  check_held_out_split(rows_by_split, held, held_out, spar_slots)


def test_an_unreadable_shard_is_named(tmp_path):
  (tmp_path / "PUG_SPAR").mkdir()
  (tmp_path / "PUG_SPAR" / "broken.parquet").write_bytes(b"not parquet")
  with pytest.raises(pug.PugDataError, match=r"Cannot read .*broken\.parquet as parquet"):
    pug.read_annotations(pug.find_parquet_files(tmp_path, "spar"), "spar")


def test_the_training_data_layer_reads_pug(spar_built, tmp_path):
  data_dir = spar_built[3]
  data = config_lib.data_config("pug")
  data.source, data.tfds_config, data.tfds_data_dir = "tfds", "spar_background", str(data_dir)
  batch = next(pipeline.BatchIterator(pipeline.load_split(data, "train"), batch_size=4))
  assert batch["image"].shape == (4, 64, 64, 3) and batch["latents"].shape == (4, 2, 3)
  assert batch["factors"].shape == (4, 2, 4)
  data.source = "generate"
  with pytest.raises(pipeline.DataError, match="data.source='tfds'"):
    pipeline.load_split(data, "train")
  data.source, data.tfds_data_dir = "tfds", str(tmp_path)  # not built, no manual download
  with pytest.raises(pug.PugFilesMissing, match="CC-BY-NC 4.0"):
    pipeline.load_split(data, "train")
