r"""Renders a dataset's ID and OOD sample grids and prints its statistics.

  python -m compgen.data --config=configs/sprites.py:smoke --workdir=/tmp/compgen/data
"""
from absl import app
from absl import flags
from ml_collections import config_flags

from compgen.data import report

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where figures and stats.json are written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  stats = report.write_report(_CONFIG.value, _WORKDIR.value)
  print(report.format_table(stats))
  if "render_throughput" in stats:
    t = stats["render_throughput"]
    print(f"\nrenderer: {t['batch']} images of {t['resolution']}x{t['resolution']} in "
          f"{t['seconds'] * 1e3:.1f} ms ({t['images_per_s']:,.0f} images/s on {t['device']}; "
          f"first call incl. compilation {t['first_call_s']:.2f} s)")
  for name, path in stats["files"].items():
    print(f"{name}: {path}")
  print(f"stats: {_WORKDIR.value}/stats.json")


if __name__ == "__main__":
  app.run(main)
