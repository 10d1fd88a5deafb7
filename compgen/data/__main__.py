r"""Renders a dataset's ID and OOD sample grids and prints its statistics.

  python -m compgen.data --config=configs/sprites.py:smoke --workdir=/tmp/compgen/data
"""
from compgen import cli
from compgen.data import report

_CONFIG, _WORKDIR = cli.define_flags("Where figures and stats.json are written.")


def main():
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
  cli.run(main)
