"""Generated datasets and their TFDS builders (array_record, read without TensorFlow)."""
import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from compgen.data import scenes, splits, sprites, synthetic, tfds_builders

TINY = scenes.DatasetSpec(sprites.SpritesSpec(resolution=16), num_train=96, num_test_id=40,
                          num_test_ood=40)


@pytest.fixture(scope="module")
def tiny_splits():
  return {split: scenes.generate(TINY, split) for split in scenes.SPLITS}


def test_generated_splits_have_the_documented_fields_and_sizes(tiny_splits):
  for split, arrays in tiny_splits.items():
    n = TINY.size(split)
    assert arrays["image"].shape == (n, 16, 16, 3) and arrays["image"].dtype == np.uint8
    assert arrays["latents"].shape == (n, 2, 4) and arrays["latents"].dtype == np.float32
    assert arrays["factors"].shape == (n, 2, 1) and arrays["factors"].dtype == np.int32
    assert arrays["visibility"].shape == (n, 2)
    assert not arrays["overlap"].any()  # filtered
    assert (arrays["visibility"] >= TINY.min_visibility).all()
  assert (splits.distance_to_diagonal(tiny_splits["train"]["latents"]) <= 0.125).all()
  assert (splits.distance_to_diagonal(tiny_splits["test_ood"]["latents"]) > 0.125).all()
  # train and test_id come from independent streams of the same region
  assert not np.isin(tiny_splits["test_id"]["latents"][:, 0, 0],
                     tiny_splits["train"]["latents"][:, 0, 0]).any()


def test_generation_is_deterministic_and_the_seed_matters(tiny_splits):
  again = scenes.generate(TINY, "test_ood")
  np.testing.assert_array_equal(again["image"], tiny_splits["test_ood"]["image"])
  other = scenes.generate(scenes.DatasetSpec(TINY.generator, num_test_ood=40, seed=1), "test_ood")
  assert not np.array_equal(other["latents"], tiny_splits["test_ood"]["latents"])


def test_images_are_renders_of_their_latents(tiny_splits):
  arrays = tiny_splits["test_id"]
  f = scenes.true_generator(TINY)
  image = np.asarray(f(arrays["latents"][3], arrays["factors"][3]))
  np.testing.assert_allclose(image * 255, arrays["image"][3], atol=0.51)


def test_overlap_filter_off_keeps_overlapping_scenes():
  spec = scenes.DatasetSpec(sprites.SpritesSpec(resolution=16), splits.SplitSpec("iid"),
                            num_train=512, filter_overlap=False)
  arrays = scenes.generate(spec, "train")
  assert arrays["overlap"].any()
  np.testing.assert_array_equal(arrays["overlap"],
                                arrays["visibility"].min(1) < scenes.OVERLAP_VISIBILITY)


def test_the_overlap_variant_overlaps_id_and_ood_and_keeps_every_object_half_visible(
    config_of):
  from compgen.data import pipeline, report  # pylint: disable=g-import-not-at-top
  data = config_of("sprites", "overlap,smoke").data
  spec = pipeline.dataset_spec(data)
  stats = {}
  for split in ("train", "test_ood"):
    arrays = scenes.generate(spec, split)
    assert (arrays["visibility"] >= 0.5).all()  # a mostly hidden object is dropped
    stats[split] = report.split_statistics(arrays, spec)
  # measured on 1,000 scenes of each at 16x16 (soft edges count more): 85% of ID scenes
  # overlap, 44% of OOD ones
  assert 0.6 < stats["train"]["overlap_rate"] < 0.95, stats["train"]
  assert 0.25 < stats["test_ood"]["overlap_rate"] < 0.6, stats["test_ood"]
  assert stats["test_ood"]["fraction_in_id_region"] == 0.0  # recombinations, overlapping


def test_synthetic_dataset_and_empty_split():
  spec = scenes.DatasetSpec(synthetic.SyntheticSpec(degree=2), num_train=10, num_test_id=0)
  arrays = scenes.generate(spec, "train")
  assert arrays["x"].shape == (10, 16) and arrays["latents"].shape == (10, 2, 2)
  f = scenes.true_generator(spec)
  np.testing.assert_allclose(np.asarray(f(arrays["latents"][0])), arrays["x"][0], rtol=1e-5,
                             atol=1e-5)
  assert scenes.generate(spec, "test_id")["x"].shape == (0, 16)
  with pytest.raises(ValueError, match="Unknown split"):
    scenes.generate(spec, "validation")


def test_every_builder_config_is_named_by_scheme_and_size():
  sprite_names = {c.name for c in tfds_builders.CompgenSprites.BUILDER_CONFIGS}
  assert {"diagonal_tiny", "held_out_combinations_small", "iid_base"} <= sprite_names
  synth_names = {c.name for c in tfds_builders.CompgenSynthetic.BUILDER_CONFIGS}
  assert {"diagonal_n0_tiny", "diagonal_n2_small", "diagonal_mlp_small"} <= synth_names


_ROUND_TRIP = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow_datasets as tfds
    import compgen.data.tfds_builders  # registers the builders
    from compgen.data import scenes, tfds_builders
    out = {}
    for builder, name in ((tfds_builders.CompgenSprites, "compgen_sprites/diagonal_tiny"),
                          (tfds_builders.CompgenSynthetic, "compgen_synthetic/diagonal_n1_tiny")):
      spec = {c.name: c.spec for c in builder.BUILDER_CONFIGS}[name.split("/")[1]]
      source = tfds.data_source(name, data_dir=sys.argv[1])
      for split in ("train", "test_id", "test_ood"):
        expected = scenes.generate(spec, split)
        records = source[split].__getitems__(list(range(len(source[split]))))
        same = all(np.array_equal(np.stack([r[k] for r in records]), v)
                   for k, v in expected.items())
        out[f"{name}:{split}"] = [len(source[split]), len(expected["latents"]), same]
    out["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    print("RESULT" + json.dumps(out))
""")


def test_tfds_build_and_read_round_trip_without_tensorflow(tmp_path):
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed here; this test proves compgen's TFDS path without it.")
  proc = subprocess.run([sys.executable, "-c", _ROUND_TRIP, str(tmp_path)], capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split("RESULT")[-1])
  assert result.pop("tensorflow_loaded") is False
  assert len(result) == 6
  for name, (n_read, n_expected, same) in result.items():
    assert n_read == n_expected > 0 and same, name
  assert list(tmp_path.glob("compgen_sprites/diagonal_tiny/1.1.0/*.array_record*"))
