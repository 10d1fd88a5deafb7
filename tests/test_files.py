"""Workdir files (`compgen.files`, `training/loop.MetricWriter`): writes are atomic, a torn
metrics line is dropped with a warning, damaged JSON and .npz files are named."""
import errno
import json
import os

import numpy as np
import pytest

from compgen import errors
from compgen import files
from compgen.training import loop


def _disk_full(*args, **kwargs):
  raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [
    lambda p: files.write_json(p, {"new": list(range(1000))}),
    lambda p: files.save_npz(p, a=np.arange(1000)),
    lambda p: files.write_text(p, "new text"),
])
def test_a_write_that_fails_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch,
                                                                       write):
  target = files.path(tmp_path, "result")
  target.write_text("old")
  monkeypatch.setattr(os, "fsync", _disk_full)  # the disk fills before the data are on it
  with pytest.raises(errors.DiskFullError,
                     match=f"No space left on the device of {tmp_path} while writing result; "
                           "the old file is kept whole. Free space and run the same command"):
    write(target)
  assert target.read_text() == "old"
  assert sorted(os.listdir(tmp_path)) == ["result"]


def test_a_write_replaces_the_file_whole(tmp_path):
  target = files.path(tmp_path, "r.json")
  files.write_json(target, {"a": 1})
  files.write_json(target, {"b": 2})
  assert files.read_json(target) == {"b": 2} and sorted(os.listdir(tmp_path)) == ["r.json"]


def test_damaged_json_and_npz_are_named_with_the_fix(tmp_path):
  cut = files.path(tmp_path, "results.json")
  cut.write_text('{"summary": {"a": 1')
  with pytest.raises(errors.DamagedFileError, match=r"results.json is damaged \(not valid JSON"):
    files.read_json(cut)
  npz = files.path(tmp_path, "params.npz")
  files.save_npz(npz, a=np.arange(10_000))
  data = npz.read_bytes()
  npz.write_bytes(data[: len(data) // 2])
  with pytest.raises(errors.DamagedFileError, match="params.npz is damaged.*Move it away"):
    files.load_npz(npz)
  flipped = bytearray(data)
  flipped[len(data) // 2] ^= 0xFF
  npz.write_bytes(bytes(flipped))
  with pytest.raises(errors.DamagedFileError, match="params.npz is damaged"):
    files.load_npz(npz)


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_and_resume_goes_on(tmp_path,
                                                                               capsys):
  writer = loop.MetricWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write(step, {"loss": 1.0 / step})
  path = tmp_path / "metrics.jsonl"
  path.write_text(path.read_text() + '{"step": 40, "lo')  # a full disk mid-append
  assert [r["step"] for r in writer.rows()] == [10, 20, 30]
  assert "cut short" in capsys.readouterr().out
  writer.drop_after(20)  # what a resumed run does
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
  writer.write(30, {"loss": 0.1})
  assert [r["step"] for r in writer.rows()] == [10, 20, 30]


def test_a_metrics_file_damaged_inside_is_refused_not_rewritten(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
  with pytest.raises(errors.DamagedFileError, match="line 2, is not a JSON row"):
    loop.MetricWriter(str(tmp_path)).drop_after(1)
  assert path.read_text() == '{"step": 1}\nnot json\n{"step": 2}\n'


def test_a_foreign_folder_is_refused_untouched_and_a_compgen_one_adopted(tmp_path):
  foreign = tmp_path / "theirs"
  foreign.mkdir()
  (foreign / "metrics.jsonl").write_text("another tool's rows\n")
  with pytest.raises(files.ForeignWorkdirError, match="compgen did not make: it holds "
                                                      "metrics.jsonl"):
    with files.hold(str(foreign), "train"):
      pytest.fail("ran in a foreign folder")
  assert sorted(os.listdir(foreign)) == ["metrics.jsonl"]
  assert (foreign / "metrics.jsonl").read_text() == "another tool's rows\n"
  older = tmp_path / "older_run"  # a workdir of a compgen without the mark
  older.mkdir()
  (older / "config.json").write_text(json.dumps({"data": {}, "model": {}, "seed": 0}))
  with files.hold(str(older), "train"):
    pass
  assert (older / files.MARKER_FILE).exists()
  new = tmp_path / "new"
  with files.hold(str(new), "train"):
    assert (new / files.MARKER_FILE).exists()
  assert not new.exists()  # made, nothing written: removed again


def test_training_refuses_a_foreign_folder_and_a_metrics_link_out_of_its_workdir(tmp_path,
                                                                                 config_of):
  from compgen.training import train_lib  # pylint: disable=import-outside-toplevel
  config = config_of("sprites", "smoke")
  foreign = tmp_path / "theirs"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine")
  with pytest.raises(files.ForeignWorkdirError):
    train_lib.train_and_evaluate(config, str(foreign))
  assert sorted(os.listdir(foreign)) == ["notes.txt"]
  outside = tmp_path / "outside.txt"
  outside.write_text("keep me\n")
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / files.MARKER_FILE).write_text("")
  os.symlink(outside, workdir / "metrics.jsonl")
  with pytest.raises(files.WorkdirNotWritableError, match="is a link"):
    train_lib.train_and_evaluate(config, str(workdir))
  assert outside.read_text() == "keep me\n"
