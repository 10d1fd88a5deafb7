r"""The whole experiment in one job: ID training → encoder, search, replay, replay + search,
for the configured decoder and the unconstrained control; scores ID vs OOD, writes
results.json, results.md and figures to the workdir, and prints the table.

  python -m compgen.experiment --config=configs/sprites.py:quickstart,rule --workdir=/tmp/compgen/exp

Rerunning reuses the checkpoints and cached latents already in the workdir.
"""
from absl import flags

from compgen import cli
from compgen.study import experiment

_CONFIG, _WORKDIR = cli.define_flags("Output folder; one sub-workdir per seed and decoder.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Recompute cached per-method latents.")


def main():
  results = experiment.run_experiment(_CONFIG.value, _WORKDIR.value, _OVERWRITE.value)
  cli.report(experiment.format_table(results["summary"], results["factor_names"]))
  cli.report(f"\nWrote {_WORKDIR.value}/results.json, results.md and figures "
        f"({results['wall_seconds'] / 60:.1f} min).")


if __name__ == "__main__":
  cli.run(main)
