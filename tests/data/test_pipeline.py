"""Config -> sources (generated, TFDS, npz), validation errors, and the batch iterator."""
import numpy as np
import pytest

from compgen import config_lib
from compgen.data import pipeline


def _arrays(n=20, k=2, m=3, image=True, rng=None):
  rng = rng or np.random.default_rng(0)
  out = {"latents": rng.uniform(size=(n, k, m)).astype(np.float32),
         "factors": rng.integers(0, 3, (n, k, 1)).astype(np.int32)}
  if image:
    out["image"] = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.uint8)
  else:
    out["x"] = rng.normal(size=(n, 10)).astype(np.float32)
  return out


def _npz_config(path):
  data = config_lib.data_config("npz")
  data.npz_path = str(path)
  return data


@pytest.fixture()
def npz_file(tmp_path):
  path = tmp_path / "scenes.npz"
  pipeline.save_npz(str(path), {s: _arrays() for s in ("train", "test_id", "test_ood")})
  return path


def test_npz_file_round_trip(npz_file):
  source = pipeline.load_split(_npz_config(npz_file), "test_ood")
  assert len(source) == 20
  np.testing.assert_array_equal(source[np.arange(20)]["latents"], _arrays()["latents"])


def test_npz_folder_of_splits(tmp_path):
  for split in ("train", "test_id", "test_ood"):
    np.savez(tmp_path / f"{split}.npz", **_arrays(image=False))
  batch = pipeline.load_split(_npz_config(tmp_path), "train")[np.arange(4)]
  assert batch["x"].shape == (4, 10)
  with pytest.raises(pipeline.DataError, match="has no test_id.npz"):
    (tmp_path / "test_id.npz").unlink()
    pipeline.load_split(_npz_config(tmp_path), "test_id")


@pytest.mark.parametrize("corrupt, match", [
    (lambda a: a.update(latents=a["latents"][:5]), "has 20 examples but 'latents' has 5"),
    (lambda a: a["latents"].__setitem__((3, 0, 0), np.nan), "NaN/Inf"),
    (lambda a: a.update(image=a["image"].astype(np.float32)), r"must be in \[0, 1\]"),
    (lambda a: a.update(image=a["image"][..., 0]), r"\[N, H, W, C\]"),
    (lambda a: a.update(image=a["image"].astype(np.int64)), "dtype int64"),
    (lambda a: a.update(x=np.zeros((20, 4), np.float32)), "exactly one of"),
    (lambda a: a.pop("latents"), "no 'latents'"),
    (lambda a: a.update(factors=-a["factors"] - 1), "negative"),
    (lambda a: a.update(factors=a["factors"].astype(np.float32)), "'factors' must be int"),
])
def test_bad_npz_data_gets_an_error_naming_the_problem(tmp_path, corrupt, match):
  arrays = _arrays()
  corrupt(arrays)
  path = tmp_path / "bad.npz"
  pipeline.save_npz(str(path), {"train": arrays})
  with pytest.raises(pipeline.DataError, match=match):
    pipeline.load_split(_npz_config(path), "train")


@pytest.mark.parametrize("split, change, match", [
    ("test_ood", lambda a: a.update(image=np.zeros((20, 16, 16, 3), np.uint8)),
     r"'image' \[N, H, W, C\] is uint8 \[N, 16, 16, 3\] in test_ood but uint8 \[N, 8, 8, 3\] "
     "in train.*make test_ood like train"),
    ("test_id", lambda a: a.update(latents=a["latents"][:, :1], factors=a["factors"][:, :1]),
     r"'factors' \[N, K slots, c factors\] is int32 \[N, 1, 1\] in test_id"),
    ("test_ood", lambda a: a.update(latents=a["latents"][..., :2]),
     r"'latents' \[N, K slots, m latents per slot\] is float32 \[N, 2, 2\] in test_ood"),
    ("test_id", lambda a: a.pop("factors"), "the splits hold different arrays"),
    ("test_id", lambda a: a.update({k: v[:0] for k, v in a.items()}),
     "test_id split holds no examples|test_id: no examples"),
])
def test_splits_that_disagree_or_are_empty_are_refused_naming_split_and_array(
    tmp_path, split, change, match):
  """What `load_splits` checks before a job trains: every split like the others."""
  arrays = {s: _arrays() for s in ("train", "test_id", "test_ood")}
  pipeline.load_splits(_npz_config(_saved(tmp_path, arrays)))
  change(arrays[split])
  with pytest.raises(pipeline.DataError, match=match):
    pipeline.load_splits(_npz_config(_saved(tmp_path, arrays)))


def _saved(folder, arrays):
  for split, a in arrays.items():
    np.savez(folder / f"{split}.npz", **a)
  return folder


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[:len(b) // 2], r"train.npz cannot be read as an .npz archive \(BadZipFile"),
    (lambda b: b"not an archive", r"train.npz cannot be read.*\(neither .npz nor .npy\)"),
    (lambda b: b[:len(b) - 200], "train.npz cannot be read"),
])
def test_damaged_npz_files_are_named_with_what_to_do(tmp_path, damage, match):
  path = _saved(tmp_path, {s: _arrays() for s in ("train", "test_id", "test_ood")})
  (path / "train.npz").write_bytes(damage((path / "train.npz").read_bytes()))
  with pytest.raises(pipeline.DataError, match=match) as raised:
    pipeline.load_splits(_npz_config(path))
  assert "write it again with numpy.savez" in str(raised.value)
  with open(path / "train.npz", "wb") as f:
    np.save(f, np.zeros(3))  # one .npy array under an .npz name
  with pytest.raises(pipeline.DataError, match=r"holds one array \(.npy format\)"):
    pipeline.load_splits(_npz_config(path))


def test_npz_names_are_read_checked_and_kept_out_of_the_examples(tmp_path):
  named = lambda **names: {**_arrays(), **{k: np.array(v) for k, v in names.items()}}
  path = tmp_path / "named.npz"
  pipeline.save_npz(str(path), {s: named(latent_names=["a", "b", "c"], factor_names=["f"])
                                for s in ("train", "test_id", "test_ood")})
  assert pipeline.npz_names(str(path)) == (["a", "b", "c"], ["f"])
  assert set(pipeline.load_split(_npz_config(path), "train")[np.arange(2)]) == {
      "image", "latents", "factors"}
  pipeline.save_npz(str(path), {s: _arrays() for s in ("train", "test_id", "test_ood")})
  assert pipeline.npz_names(str(path)) == (None, None)
  for names, match in ((dict(latent_names=["a", "b"]), "must be 3 strings"),
                       (dict(latent_names=[1, 2, 3]), "must be 3 strings"),
                       (dict(latent_names=["a", "a", "c"]), "distinct"),
                       (dict(factor_names=["f", "g"]), "must be 1 strings")):
    pipeline.save_npz(str(path), {"train": named(**names)})
    with pytest.raises(pipeline.DataError, match=match):
      pipeline.load_split(_npz_config(path), "train")
  pipeline.save_npz(str(path), {"train": named(latent_names=["a", "b", "c"]),
                                "test_id": named(latent_names=["a", "b", "d"]),
                                "test_ood": named()})
  with pytest.raises(pipeline.DataError, match="differ between splits"):
    pipeline.npz_names(str(path))
  pipeline.save_npz(str(path), {"train": named(latent_names=np.array(["a", "b", "c"], object))})
  with pytest.raises(pipeline.DataError, match="object array"):
    pipeline.load_split(_npz_config(path), "train")


def test_missing_npz_path_and_split_and_unknown_names(npz_file, tmp_path):
  with pytest.raises(pipeline.DataError, match="does not exist"):
    pipeline.load_split(_npz_config(tmp_path / "nope.npz"), "train")
  with pytest.raises(pipeline.DataError, match="needs data.npz_path"):
    pipeline.load_split(_npz_config(""), "train")
  path = tmp_path / "only_train.npz"
  pipeline.save_npz(str(path), {"train": _arrays()})
  with pytest.raises(pipeline.DataError, match="holds no 'test_ood/"):
    pipeline.load_split(_npz_config(path), "test_ood")
  with pytest.raises(ValueError, match="Unknown split"):
    pipeline.load_split(_npz_config(npz_file), "valid")
  data = config_lib.data_config("sprites")
  data.source = "hub"
  with pytest.raises(pipeline.DataError, match="Unknown data.source"):
    pipeline.load_split(data, "train")
  data = config_lib.data_config("clevr")
  with pytest.raises(pipeline.DataError, match="Unknown data.dataset"):
    pipeline.load_split(data, "train")


def test_generated_and_tfds_sources_from_config_agree(tmp_path):
  data = config_lib.data_config("sprites")
  data.sprites.resolution = 16
  data.num_train, data.num_test_id, data.num_test_ood = 256, 128, 128
  generated = pipeline.load_split(data, "test_id")
  data.source, data.tfds_config, data.tfds_data_dir = "tfds", "diagonal_tiny", str(tmp_path)
  from_tfds = pipeline.load_split(data, "test_id")
  assert len(generated) == len(from_tfds) == 128
  a, b = generated[np.arange(10, 20)], from_tfds[np.arange(10, 20)]
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  data.tfds_config = "diagonal_huge"
  with pytest.raises(pipeline.DataError, match="diagonal_tiny"):
    pipeline.load_split(data, "test_id")


def test_iterator_visits_each_example_once_per_epoch_and_is_seeded():
  source = pipeline.ArraySource(_arrays(n=20))
  it = pipeline.BatchIterator(source, 6, seed=1)
  assert it.batches_per_epoch == 3  # remainder of 2 dropped
  seen = np.concatenate([next(it)["latents"][:, 0, 0] for _ in range(3)])
  assert len(np.unique(seen)) == 18
  first = lambda seed: next(pipeline.BatchIterator(source, 6, seed=seed))["latents"]
  np.testing.assert_array_equal(first(1), first(1))
  assert not np.array_equal(first(1), first(2))
  batch = next(it)  # a new epoch begins, with a new order
  assert it.state == {"epoch": 1, "position": 1}
  assert batch["image"].dtype == np.float32 and 0.0 <= batch["image"].min() <= batch["image"].max() <= 1.0


def test_iterator_without_drop_remainder_and_finite_epochs():
  it = pipeline.BatchIterator(pipeline.ArraySource(_arrays(n=10)), 4, shuffle=False,
                              drop_remainder=False, num_epochs=1)
  sizes = [len(b["latents"]) for b in it]
  assert sizes == [4, 4, 2]


def test_process_shards_partition_each_global_batch():
  source = pipeline.ArraySource(_arrays(n=40))
  full = pipeline.BatchIterator(source, 8, seed=3)
  shards = [pipeline.BatchIterator(source, 8, seed=3, process_index=p, process_count=4)
            for p in range(4)]
  for _ in range(7):  # crosses an epoch boundary
    global_batch = next(full)["latents"]
    parts = [next(s)["latents"] for s in shards]
    assert all(len(p) == 2 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), global_batch)


def test_iterator_state_resumes_at_the_exact_batch():
  source = pipeline.ArraySource(_arrays(n=30))
  it = pipeline.BatchIterator(source, 4, seed=0)
  for _ in range(9):
    next(it)
  state = it.state
  expected = [next(it)["latents"] for _ in range(5)]
  resumed = pipeline.BatchIterator(source, 4, seed=0)
  resumed.restore(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["latents"], want)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=6, process_count=4), "not divisible"),
    (dict(batch_size=4, process_index=2, process_count=2), "process_index"),
    (dict(batch_size=64), "fewer than one batch"),
])
def test_iterator_refuses_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    pipeline.BatchIterator(pipeline.ArraySource(_arrays(n=20)), **kwargs)
