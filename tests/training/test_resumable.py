"""The one resumable run (training, replay and the supervised reference run on it): a run
resumes at its newest checkpoint with the rows logged after it dropped, continues across
several `run` calls, and a folder of a run made with other settings is refused untouched."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from compgen.training import checkpoints, resumable


def _init():
  return resumable.TrainState(jnp.zeros((), jnp.int32), {"w": jnp.zeros((2,))},
                              {"m": jnp.zeros((2,))})


def _step(state, step):
  params = {"w": state.params["w"] + 1.0}
  return (resumable.TrainState(state.step + 1, params, state.opt_state),
          {"loss": jnp.sum(params["w"])})


def _run(run, state, stop):
  return run.run(_step, state, stop=stop, num_steps=8, batch_size=1, log_every=1,
                 checkpoint_every=4, desc="test")


def _start(run):
  shape = jax.eval_shape(_init)
  repl = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return run.restore_or_init(_init, shape, jax.tree.map(lambda _: repl, shape))


def test_a_run_resumes_at_its_checkpoint_and_logs_each_step_once(tmp_path):
  directory = str(tmp_path / "run")
  run = resumable.ResumableRun(directory, keep=2)
  step, state, resumed = _start(run)
  assert (step, resumed) == (0, False)
  state, step = _run(run, state, 2)  # two calls on one run: the checkpointer reopens
  state, step = _run(run, state, 6)
  assert step == 6 and checkpoints.latest_step(directory) == 6
  run.writer.write(7, {"loss": 1.0})  # a row logged after the last checkpoint, then a stop
  run.writer.flush()

  again = resumable.ResumableRun(directory, keep=2)
  step, state, resumed = _start(again)
  assert (step, resumed) == (6, True)
  np.testing.assert_array_equal(state.params["w"], [6.0, 6.0])
  state, step = _run(again, state, 8)
  assert [row["step"] for row in again.writer.rows()] == list(range(1, 9))
  np.testing.assert_array_equal(state.params["w"], [8.0, 8.0])


def test_a_run_made_with_other_settings_is_refused_and_left_as_it_was(tmp_path):
  directory = str(tmp_path / "run")
  run = resumable.ResumableRun(directory, keep=2, record={"lr": 0.1})
  _, state, _ = _start(run)
  _run(run, state, 4)
  before = sorted(os.listdir(directory))
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"holds a replay run made with other settings \(.*lr.*\)\. Set them "
                           r"back to resume it, or delete .* to replay anew"):
    resumable.ResumableRun(directory, keep=2, record={"lr": 0.2}, what="a replay run",
                           redo="replay anew")
  assert sorted(os.listdir(directory)) == before
  same = resumable.ResumableRun(directory, keep=2, record={"lr": 0.1})
  assert same.saved_step() == 4
