"""The stopping rule (`compgen.training.stopping`) applied to the held-out ID error curves of
finished runs: at which step each (window, improvement) setting would have stopped them, and
how much the error still fell over each run's last evaluations.

  python results/health/stopping_on_curves.py --out=results/health/stopping_on_curves.json \
    results/health/bench64_population_seed{0,1,2}/metrics.jsonl \
    results/sprites32/hard_edges/steps18k/train_metrics.jsonl
"""
import argparse
import json

from compgen import files
from compgen.training import stopping

WINDOWS = (2000, 3000, 4000)
IMPROVEMENTS = (0.01, 0.02, 0.05)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("metrics", nargs="+", help="the metrics.jsonl of finished runs")
  parser.add_argument("--out", required=True)
  parser.add_argument("--not-before", type=int, default=2000,
                      help="no stop before this step (bench64's population cut)")
  args = parser.parse_args()
  runs = []
  width = max(map(len, args.metrics))
  print(f"{'metrics':<{width}} {'last':>6} {'fell, last 2k':>14} {'last 4k':>8}  "
        + "  ".join(f"w{w // 1000}k/{i:.0%}" for w in WINDOWS for i in IMPROVEMENTS))
  for path in args.metrics:
    with open(path) as f:
      curve = {row["step"]: row["test_id/recon_mse"] for row in map(json.loads, f)
               if "test_id/recon_mse" in row}
    steps = sorted(curve)
    last = steps[-1]
    fell = {f"last_{w}": stopping.fell_over(curve, last, w) for w in (2000, 4000)
            if last - w in curve}
    stops = {f"{w}/{i}": next((t for t in steps if stopping.levelled_off(
        curve, t, w, i, args.not_before)), None) for w in WINDOWS for i in IMPROVEMENTS}
    runs.append({"metrics": path, "last_step": last, "last_error": curve[last],
                 "fell_over": fell, "stops_at": stops})
    print(f"{path:<{width}} {last:>6} {fell.get('last_2000', float('nan')):>14.1%} "
          f"{fell.get('last_4000', float('nan')):>8.1%}  "
          + "  ".join(f"{str(s or '-'):>7}" for s in stops.values()))
  files.write_json(files.path(args.out), {"not_before": args.not_before, "runs": runs})


if __name__ == "__main__":
  main()
