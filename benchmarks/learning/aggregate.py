"""Aggregate finished learning runs into a table (CSV, JSON, Markdown) and PNG curves.

    python benchmarks/learning/aggregate.py [--budgets 100000 200000 300000]
        [--out benchmarks/learning/results]

For each run group (runs/<name>/seed*/ with a DONE file), the deterministic evaluation
return at each env-step budget is the last evaluation at or before the budget; the
table shows its mean and 95% interval over seeds (Student t).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rllib_trl.cli.plot import EVAL_RETURN, STEPS, interval, load_trial, plot_command

HERE = Path(__file__).resolve().parent


def eval_at(trial: Path, budget: int) -> float:
    frame, _ = load_trial(trial)
    if EVAL_RETURN not in frame:
        return float("nan")
    rows = frame[(frame[STEPS] <= budget * 1.01) & frame[EVAL_RETURN].notna()]
    return float(rows[EVAL_RETURN].iloc[-1]) if len(rows) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", nargs="+", type=int, default=[100_000, 200_000, 300_000])
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    groups = sorted(p for p in (HERE / "runs").iterdir() if p.is_dir()) if (HERE / "runs").exists() else []
    for group in groups:
        seeds = sorted(s for s in group.glob("seed*") if (s / "DONE").exists())
        if not seeds:
            continue
        for budget in args.budgets:
            values = []
            for seed in seeds:
                results = sorted(seed.rglob("result.json"))
                values.append(eval_at(results[0].parent, budget) if results else float("nan"))
            mean, low, high = interval(np.array(values)[:, None])
            rows.append(
                {
                    "run": group.name,
                    "budget": budget,
                    "seeds": len(values),
                    "mean": round(float(mean[0]), 1),
                    "ci95_low": round(float(low[0]), 1),
                    "ci95_high": round(float(high[0]), 1),
                    "per_seed": [round(v, 1) for v in values],
                }
            )
    table = pd.DataFrame(rows)
    table.to_csv(out / "learning.csv", index=False)
    (out / "learning.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "| run | env steps | seeds | deterministic return, mean [95% CI] | per seed |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['budget']:,} | {r['seeds']} "
            f"| {r['mean']} [{r['ci95_low']}, {r['ci95_high']}] "
            f"| {', '.join(str(v) for v in r['per_seed'])} |"
        )
    (out / "learning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    done_groups = [str(g) for g in groups if any((s / "DONE").exists() for s in g.glob("seed*"))]
    if done_groups:
        plot_command(done_groups, str(out / "curves.png"))


if __name__ == "__main__":
    main()
