r"""A map of where generation is required: the experiment over a grid of settings.

  python -m compgen.sweep --config=configs/synthetic.py --workdir=/tmp/cg/map \
    --grid=data.split.delta=0.1,0.2,0.3 --grid=variant=n0,n1,n2,mlp \
    --grid=model.decoder=additive,transformer,unconstrained --config.experiment.seeds=3

Each cell runs the whole experiment (control off) in `{workdir}/{cell}/`; a rerun resumes.
Writes `{workdir}/sweep.json` and `sweep.png` (OOD identifiability per method against the first
axis, one panel per value of the second and third axes) and prints the OOD table.
"""
import sys

from absl import flags

from compgen import cli
from compgen.study import sweep

_CONFIG_SPEC = flags.DEFINE_string("config", None, "Config file (configs/*.py[:variant]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; one sub-folder per cell.")
_GRID = flags.DEFINE_multi_string(
    "grid", None, "A grid axis KEY=V1,V2,...: a dotted config key or 'variant' (config "
    "variants); repeat for more axes. The first is the figure's x axis.")
_SET = flags.DEFINE_multi_string(
    "set", [], "KEY=VALUE set in every cell (like --config.KEY=VALUE of the other jobs).")
flags.mark_flags_as_required(["config", "workdir", "grid"])


def main():
  overrides = {}
  for text in _SET.value:
    key, sep, value = text.partition("=")
    if not sep:
      sys.exit(f"compgen.sweep: --set={text!r}: write KEY=VALUE, e.g. "
               "--set=train.num_steps=1000.")
    overrides[key.strip()] = sweep.parse_value(value.strip())
  try:
    axes = [sweep.Axis.parse(a) for a in _GRID.value]
    sweep.check_grid(_CONFIG_SPEC.value, axes, overrides)
  except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
    sys.exit(f"compgen.sweep: {e.args[0] if isinstance(e, KeyError) else e}")
  result = sweep.run_sweep(_CONFIG_SPEC.value, axes, _WORKDIR.value, overrides)
  cli.report(sweep.format_table(result))
  cli.report(f"\nWrote {_WORKDIR.value}/sweep.json and sweep.png "
             f"({result['wall_seconds'] / 60:.1f} min).")


if __name__ == "__main__":
  cli.run(main)
