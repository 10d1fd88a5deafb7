"""The Python surface (`compgen.fit / load / invert / replay_encoder / evaluate`), the plots,
and the two documents that show them: the Colab notebook and the README's example, executed."""
import json
import os
import re

import numpy as np
import pytest
from matplotlib.figure import Figure

import compgen



@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """One smoke run shared by the tests below, the notebook and the README example (which
  then resume it: the same functions, without training three times)."""
  return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def smoke_spec(repo_root):
  return os.path.join(repo_root, "configs", "sprites.py") + ":smoke"


@pytest.fixture(scope="module")
def model(workdir, smoke_spec):
  return compgen.fit(smoke_spec, str(workdir))  # a spec string is loaded


def test_fit_load_encode_decode(model):
  again = compgen.load(model.workdir)  # the config saved in the workdir
  assert again.step == model.step == 4
  ood = model.data("test_ood", 5)
  assert ood["image"].shape == (5, 16, 16, 3) and ood["image"].dtype == np.float32
  z = model.encode(ood["image"])
  np.testing.assert_array_equal(z, again.encode(ood["image"]))
  assert z.shape == (5, 2, model.config.model.slot_dim)
  decoded = model.decode(z)
  assert decoded["output"].shape == (5, 16, 16, 3)
  assert decoded["slots"].shape == (5, 2, 16, 16, 3)  # the default additive decoder's parts


def test_an_exported_model_loads_anywhere_as_the_same_model(model, tmp_path):
  folder = compgen.export(model, str(tmp_path / "exported"))
  assert sorted(os.listdir(folder)) == ["config.json", "params.npz"]
  loaded = compgen.load(folder)
  assert loaded.step == model.step and loaded.workdir == folder
  x = model.data("test_ood", 4)["image"]
  np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
  found = compgen.invert(loaded, x, num_steps=4)
  np.testing.assert_allclose(found["mse"], compgen.invert(model, x, num_steps=4)["mse"],
                             rtol=1e-6)
  # a params file of another model is refused by name, not half-loaded
  config = json.loads((tmp_path / "exported" / "config.json").read_text())
  config["model"]["decoders"]["additive"]["hidden"] = [16, 16]
  (tmp_path / "exported" / "config.json").write_text(json.dumps(config))
  with pytest.raises(compgen.CheckpointError, match="does not hold the parameters"):
    compgen.load(folder)
  with pytest.raises(ValueError, match="No shipped model 'sprites128'"):
    compgen.pretrained("sprites128")


def test_an_export_older_than_the_checkpoints_beside_it_is_not_served(tmp_path, smoke_spec,
                                                                       capsys):
  workdir = str(tmp_path / "run")
  first = compgen.fit(smoke_spec, workdir)
  compgen.export(first, workdir)  # an export into the workdir itself, at step 4
  longer = compgen.get_config(smoke_spec, {"train.num_steps": 6})
  trained = compgen.fit(longer, workdir)  # newer checkpoints beside the export
  assert trained.step == 6 and "newer checkpoints (step 6)" in capsys.readouterr().out
  assert compgen.load(workdir).step == 6


def test_data_takes_minus_one_for_all_and_invert_names_a_dict_handed_to_it(model):
  assert len(model.data("test_ood", -1)["image"]) == model.config.data.num_test_ood
  with pytest.raises(compgen.DataError, match=r'model.data\(...\)\["image"\]'):
    compgen.invert(model, model.data("test_ood", 2))


def test_invert_searches_from_the_encoder_and_records_iterates(model):
  x = model.data("test_ood", 6)["image"]
  found = compgen.invert(model, x, num_steps=8, record_steps=(0, 4, 8))
  assert found["z"].shape == (6, 2, model.config.model.slot_dim)
  assert found["trace"].shape == (6, 8)
  np.testing.assert_allclose(found["z0"], model.encode(x), rtol=1e-5, atol=1e-6)
  assert (found["mse"] <= found["mse0"] + 1e-7).all()  # the best iterate includes the start
  assert sorted(found["iterates"]) == [0, 4, 8]
  np.testing.assert_allclose(found["iterates"][0], found["z0"], rtol=1e-5, atol=1e-6)
  assert not np.allclose(found["iterates"][8], found["z0"])
  restarts = compgen.invert(model, x, num_steps=8, restarts=3)
  assert (restarts["mse"] <= found["mse"] + 1e-6).all()  # restart 0 is the same start
  with pytest.raises(ValueError, match=r"must be in \[0, num_steps=8\]"):
    compgen.invert(model, x, num_steps=8, record_steps=(9,))


def test_replay_encoder_then_evaluate_every_method(model):
  with pytest.raises(compgen.CheckpointError, match="replay_encoder"):
    compgen.evaluate(model)
  replayed = compgen.replay_encoder(model)
  assert replayed.encoder_source == "replay"
  before = np.concatenate([np.ravel(v) for v in _leaves(model.params["encoder"])])
  after = np.concatenate([np.ravel(v) for v in _leaves(replayed.params["encoder"])])
  assert not np.allclose(before, after)
  np.testing.assert_array_equal(  # the decoder is the one trained on ID data
      _leaves(model.params["decoder"])[0], _leaves(replayed.params["decoder"])[0])
  scores = compgen.evaluate(model)
  assert set(scores) == {"encoder", "search", "replay_encoder", "replay_search"}
  for splits in scores.values():
    assert set(splits) == {"id", "ood"}
    assert all(np.isfinite(s["identifiability"]) and s["recon_mse"] > 0 for s in splits.values())


def _leaves(tree):
  import jax  # pylint: disable=import-outside-toplevel
  return [np.asarray(v) for v in jax.tree.leaves(tree)]


def test_get_config_overrides_and_refuses_unknown_keys(smoke_spec):
  config = compgen.get_config(smoke_spec, {"train.num_steps": 7})
  assert config.train.num_steps == 7
  with pytest.raises(KeyError, match="lerning_rate"):
    compgen.get_config(smoke_spec, {"optim.lerning_rate": 1.0})
  with pytest.raises(FileNotFoundError, match="configs/sprites.py"):
    compgen.get_config("no/such/config.py:smoke")


def _png(path):
  data = open(path, "rb").read()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
  return data


def test_every_plot_writes_a_png_or_returns_a_figure(model, tmp_path):
  ood = model.data("test_ood", 4)
  decoded = model.decode(model.encode(ood["image"]))
  rng = np.random.default_rng(0)
  attention = rng.dirichlet(np.ones(2), size=(4, 2, 3, 256))  # [B, L, heads, P, K]
  decoded_kinds = {
      "alpha": {"output": decoded["output"],
                "masks": np.moveaxis(rng.dirichlet(np.ones(3), size=(4, 16, 16)), -1, 1)},
      "transformer": {"output": decoded["output"], "attention": attention},
      "additive": decoded}
  figures = {
      "samples": lambda p: compgen.plots.samples(ood["image"], ood["image"], p),
      "trajectory": lambda p: compgen.plots.search_trajectory(
          ood["image"], {0: decoded["output"], 5: decoded["output"]}, rng.random((4, 5)) + 0.1,
          p),
      "bars": lambda p: compgen.plots.results_bars({"encoder": {"id": (0.9, 0.01),
                                                               "ood": (0.2, 0.1)}}, p),
      "curves": lambda p: compgen.plots.loss_curves({"search": np.linspace(1, 0.1, 9)}, p),
      "training": lambda p: compgen.plots.metrics_along_training(
          [{"step": s, "train/jis": s / 4, "test_id/recon_mse": 1 / (s + 1)} for s in range(4)]
          + [{"step": 4, "loss": 0.1}], ("train/jis",), ("test_id/recon_mse",), p),
      "rows": lambda p: compgen.plots.labelled_rows({"input": ood["image"]}, p),
      "grid": lambda p: compgen.plots.image_grid(ood["image"], p),
      **{f"slots_{k}": (lambda d: lambda p: compgen.plots.slot_decomposition(
          ood["image"], d, p))(d) for k, d in decoded_kinds.items()}}
  sizes = {}
  for name, draw in figures.items():
    assert draw(str(tmp_path / f"{name}.png")) == str(tmp_path / f"{name}.png")
    sizes[name] = len(_png(tmp_path / f"{name}.png"))
    assert isinstance(draw(None), Figure)
  with pytest.raises(ValueError, match="unconstrained"):
    compgen.plots.slot_decomposition(ood["image"], {"output": decoded["output"]})
  with pytest.raises(ValueError, match="No row has any of the keys"):
    compgen.plots.metrics_along_training([{"step": 0, "loss": 1.0}], ("train/jis",))


def _runnable(source: str, workdir: str) -> str:
  """Notebook/README code made to run here: shell and magic lines become `pass`, the smoke
  config and a temporary workdir replace the documented ones."""
  lines = []
  for line in source.splitlines():
    stripped = line.lstrip()
    if stripped.startswith(("!", "%")):
      line = line[:len(line) - len(stripped)] + "pass"
    lines.append(line)
  code = "\n".join(lines).replace(":quickstart", ":smoke")
  return re.sub(r'"/tmp/[^"]*"', repr(workdir), code)


def test_the_colab_notebook_runs(workdir, monkeypatch, repo_root):
  with open(os.path.join(repo_root, "launch", "colab_quickstart.ipynb")) as f:
    notebook = json.load(f)
  cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
  assert len(cells) >= 5
  monkeypatch.chdir(repo_root)
  namespace = {}
  for cell in cells:
    exec(compile(_runnable(cell, str(workdir)), "notebook", "exec"), namespace)  # pylint: disable=exec-used
  assert set(namespace["scores"]) == {"encoder", "search", "replay_encoder", "replay_search"}
  assert (workdir / "replay" / "summary.json").exists()
  assert sorted(namespace["found"]["iterates"]) == [0, 1, 5]
  # the skip-training path: the shipped model, whose search explains OOD scenes better
  shipped = namespace["shipped_found"]
  assert shipped["z"].shape == (8, 2, namespace["shipped"].config.model.slot_dim)
  assert shipped["mse"].mean() < 0.5 * shipped["mse0"].mean()  # measured: 0.16×


def test_the_readme_python_example_runs(workdir, monkeypatch, repo_root):
  readme = open(os.path.join(repo_root, "README.md")).read()
  section = readme[readme.index("## Use from Python / Colab"):]
  example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  monkeypatch.chdir(repo_root)
  namespace = {}
  exec(compile(_runnable(example, str(workdir)), "README", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["found"]["z"].shape[1:] == (2, namespace["config"].model.slot_dim)
  assert isinstance(namespace["figure"], Figure)
