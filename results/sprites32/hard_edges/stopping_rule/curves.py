"""Held-out ID error and ID matched R² along training, of several runs side by side: a plot
(`curves.png`) and its numbers (`curves.json`), with the error's fall over each run's last
2,000 and 4,000 steps.

  python results/sprites32/hard_edges/stopping_rule/curves.py \
    --out=results/sprites32/hard_edges/stopping_rule \
    "cosine to 12k=results/sprites32/hard_edges/steps18k/train_metrics.jsonl:12000" \
    "restart to 18k=results/sprites32/hard_edges/steps18k/train_metrics.jsonl" \
    "stable + rule + cool-down=results/sprites32/hard_edges/stopping_rule/train_metrics.jsonl"

Each run is LABEL=METRICS[:LAST_STEP] (rows after LAST_STEP are left out).
"""
import argparse
import json

from compgen import files
from compgen import plots
from compgen.training import stopping

ERROR, R2 = "test_id/recon_mse", "test_id/matched_r2"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="LABEL=METRICS[:LAST_STEP]")
  parser.add_argument("--out", required=True, help="folder for curves.png and curves.json")
  args = parser.parse_args()
  rows, out = [], {}
  for run in args.runs:
    label, _, where = run.partition("=")
    path, _, last = where.partition(":")
    with open(path) as f:
      evaluated = [r for r in map(json.loads, f)
                   if ERROR in r and (not last or r["step"] <= int(last))]
    curve = {r["step"]: (r[ERROR], r[R2]) for r in evaluated}  # the last row of a step wins
    steps = sorted(curve)
    end = steps[-1]
    errors = {s: error for s, (error, _) in curve.items()}
    out[label] = {"metrics": path, "last_step": end,
                  "curve": [[s, *curve[s]] for s in steps],
                  "fell_over": {f"last_{w}": stopping.fell_over(errors, end, w)
                                for w in (2000, 4000) if end - w in curve}}
    rows += [{"step": s, f"{label}: ID matched R²": curve[s][1],
              f"{label}: held-out ID error": curve[s][0]} for s in steps]
    print(f"{label:<32} last step {end:>6}  error {curve[end][0]:.3g}  R² {curve[end][1]:.3f}  "
          + "  ".join(f"fell {v:.1%} over the {k.replace('_', ' ')}"
                      for k, v in out[label]["fell_over"].items()))
  labels = list(out)
  plots.metrics_along_training(rows, unit=tuple(f"{l}: ID matched R²" for l in labels),
                               log=tuple(f"{l}: held-out ID error" for l in labels),
                               path=files.path(args.out, "curves.png"))
  files.write_json(files.path(args.out, "curves.json"), out)


if __name__ == "__main__":
  main()
