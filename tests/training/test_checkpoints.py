"""Checkpointer: which failures set a step aside (damage) and which do not (another tree, a
storage error; the end-to-end damaged-checkpoint run is in tests/test_faults.py), and the
metric writer on an object store."""
import errno
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen import errors
from compgen.training import checkpoints


def _state(scale):
  return {"params": {"w": jnp.full((3,), scale)}, "opt_state": {"m": jnp.zeros((3,))},
          "step": jnp.asarray(int(scale))}


@pytest.fixture
def saved(tmp_path):
  ckpt = checkpoints.Checkpointer(str(tmp_path), keep=3)
  for step in (1, 2):
    ckpt.save(step, _state(float(step)), {"epoch": step})
  ckpt.close()
  return tmp_path


def _abstract(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def test_params_only_restore_ignores_the_optimizer_state(saved):
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  step, params, data = ckpt.restore_latest(_abstract(_state(0.0)["params"]), params_only=True)
  assert step == 2 and data is None
  np.testing.assert_array_equal(params["w"], [2.0, 2.0, 2.0])


def test_another_tree_is_refused_with_the_difference_and_nothing_is_moved(saved):
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  other = _state(0.0)
  other["opt_state"] = {"m": jnp.zeros((3,)), "v": jnp.zeros((3,))}  # another optimizer
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"holds other train state.*opt_state/v \(3,\) is not in the checkpoint"):
    ckpt.restore_latest(_abstract(other))
  assert not (saved / "checkpoints_unreadable").exists()


@pytest.mark.parametrize("params_only", [False, True])
def test_other_shapes_are_refused_by_path_from_the_metadata(saved, params_only):
  """Another width (the saved (3,) parameter built (4,)) is named with both shapes, read from
  the step's metadata; the same tree with its own shapes has no difference."""
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  tree = lambda n: _abstract({"params": {"w": jnp.zeros((n,))}, "opt_state": {"m": jnp.zeros((3,))},
                              "step": jnp.asarray(0)})
  wanted = lambda n: tree(n)["params"] if params_only else tree(n)
  assert ckpt.tree_difference(2, wanted(3), params_only) is None
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"holds other .*params/w was saved \(3,\), is built \(4,\)"):
    ckpt.restore_latest(wanted(4), params_only=params_only)
  assert not (saved / "checkpoints_unreadable").exists() and ckpt.latest_step() == 2


@pytest.mark.parametrize("error", [PermissionError("denied"), TimeoutError("slow"),
                                   Exception("UNAVAILABLE: gcs outage")])
def test_a_storage_error_is_raised_and_sets_nothing_aside(saved, monkeypatch, error):
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  def failing(step, abstract):
    raise error
  monkeypatch.setattr(ckpt, "restore", failing)
  with pytest.raises(checkpoints.CheckpointError, match="storage error, not a damaged"):
    ckpt.restore_latest(_abstract(_state(0.0)))
  assert not (saved / "checkpoints_unreadable").exists()
  assert ckpt.latest_step() == 2


def test_a_damaged_step_is_set_aside_and_the_previous_one_restored(saved, monkeypatch, capsys):
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  restore = ckpt.restore
  def damaged_newest(step, abstract):
    if step == 2:
      raise Exception("Encountered error while reading array index")  # what tensorstore says
    return restore(step, abstract)
  monkeypatch.setattr(ckpt, "restore", damaged_newest)
  step, state, data = ckpt.restore_latest(_abstract(_state(0.0)))
  assert step == 1 and data == {"epoch": 1}
  np.testing.assert_array_equal(state["params"]["w"], [1.0, 1.0, 1.0])
  assert (saved / "checkpoints_unreadable" / "2").is_dir()
  assert "moved it to" in capsys.readouterr().out


class _Usage:
  def __init__(self, free):
    self.total, self.used, self.free = 10 * 2**30, 0, free


@pytest.mark.parametrize("free, named", [(1000, True), (10 * 2**30, False)])
def test_a_failed_save_on_a_device_without_room_for_a_step_is_named_a_full_disk(
    saved, monkeypatch, free, named):
  """orbax's writers can end on a full disk with their own teardown error, without ENOSPC:
  with less free space than the newest complete step takes, it is still named a full disk
  with the step to resume from; with room, the error is raised as it was."""
  ckpt = checkpoints.Checkpointer(str(saved), keep=3, create=False)
  def teardown_error(*args, **kwargs):
    raise RuntimeError("Event loop is closed")
  monkeypatch.setattr(ckpt.manager, "save", teardown_error)
  monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: _Usage(free))
  expected = (errors.DiskFullError if named else RuntimeError)
  with pytest.raises(expected) as raised:
    ckpt.save(3, _state(3.0), {"epoch": 3})
  if named:
    assert "while saving checkpoint step None" not in str(raised.value)
    assert "resumes from step 2, the newest complete checkpoint" in str(raised.value)


def test_a_full_disk_is_found_in_the_errors_an_error_was_raised_from_or_during():
  enospc = OSError(errno.ENOSPC, "No space left on device")
  try:
    try:
      raise enospc
    except OSError:
      raise RuntimeError("Event loop is closed")  # raised while handling the ENOSPC
  except RuntimeError as e:
    during = e
  assert errors.is_disk_full(during)
  assert errors.is_disk_full(ExceptionGroup("writers", [ValueError("x"), enospc]))
  assert errors.is_disk_full(ValueError("Failed to write 2 bytes [os_error_code='28']"))
  assert not errors.is_disk_full(RuntimeError("Event loop is closed"))
  assert not errors.is_disk_full(OSError(errno.EACCES, "Permission denied"))


def test_metric_rows_on_an_object_store_are_written_in_batches(tmp_path, monkeypatch):
  from compgen import files  # pylint: disable=g-import-not-at-top
  from compgen.training import loop  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(files, "is_remote", lambda p: True)  # a local folder posing as gs://
  writer = loop.MetricWriter(str(tmp_path), remote_flush_s=3600)
  rewrites = []
  real_write = type(writer.path).write_text
  monkeypatch.setattr(type(writer.path), "write_text",
                      lambda self, text: (rewrites.append(len(text)), real_write(self, text)))
  for step in range(1, 51):
    writer.write(step, {"loss": 1.0 / step})
  assert not rewrites and not writer.path.exists()  # 50 logs, no rewrite yet
  writer.flush()  # at a checkpoint
  writer.write(51, {"loss": 0.0})
  writer.drop_after(40)  # a resumed run: flushes, then forgets steps after 40
  steps = [json.loads(r)["step"] for r in writer.path.read_text().splitlines()]
  assert steps == list(range(1, 41)) and len(rewrites) == 3
