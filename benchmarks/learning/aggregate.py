"""Aggregate finished learning runs into a table (CSV, JSON, Markdown) and PNG curves.

    python benchmarks/learning/aggregate.py [--budgets 100000 200000 300000]
        [--runs 'hopper-*-300k*'] [--out benchmarks/learning/results]

For each run group (runs/<name>/seed*/ with a DONE file) and env-step budget: the last
deterministic evaluation at or before the budget, and the mean of the last ``--last``
evaluations up to it (less noisy: one Hopper evaluation swings by 1000s between
neighbours); each as mean and 95% interval over seeds (Student t).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rllib_trl.cli.plot import interval, load_trial, plot_command
from rllib_trl.cli.result_keys import ENV_STEPS as STEPS
from rllib_trl.cli.result_keys import EVAL_RETURN

HERE = Path(__file__).resolve().parent


def evals_upto(trial: Path, budget: int) -> np.ndarray:
    """The trial's deterministic evaluation returns up to ``budget`` env steps, in order
    (RLlib repeats an evaluation's result in the next iteration's row: counted once)."""
    frame, _ = load_trial(trial)
    if EVAL_RETURN not in frame:
        return np.array([])
    values = frame[(frame[STEPS] <= budget * 1.01) & frame[EVAL_RETURN].notna()][EVAL_RETURN].to_numpy()
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _summary(values: list[float]) -> dict:
    """Mean, 95% t-interval (None with fewer than 2 seeds: there is none) and the seeds."""
    mean, low, high = interval(np.array(values)[:, None])
    spread = len(values) > 1
    return {
        "mean": round(float(mean[0]), 1),
        "ci95_low": round(float(low[0]), 1) if spread else None,
        "ci95_high": round(float(high[0]), 1) if spread else None,
        "per_seed": [round(v, 1) for v in values],
    }


def _cell(mean: float, low: float | None, high: float | None) -> str:
    return f"{mean} [{low}, {high}]" if low is not None else f"{mean} (1 seed, no interval)"


def select_groups(patterns: list[str]) -> list[Path]:
    """Run groups (folders under runs/) whose names match any of the glob ``patterns``."""
    runs = HERE / "runs"
    return sorted(
        p
        for p in (runs.iterdir() if runs.exists() else [])
        if p.is_dir() and any(fnmatch.fnmatchcase(p.name, pattern) for pattern in patterns)
    )


def finished_trials(group: Path, include_unfinished: bool = False) -> list[Path | None]:
    """The trial folder of each finished seed (with DONE) of ``group``, in seed order;
    None for a finished seed without a result.json. ``include_unfinished``: every seed
    (a stopped run's too)."""
    trials: list[Path | None] = []
    for seed in sorted(s for s in group.glob("seed*") if include_unfinished or (s / "DONE").exists()):
        results = sorted(seed.rglob("result.json"))
        trials.append(results[0].parent if results else None)
    return trials


def summary_row(run: str, budget: int, finals: list[float], lasts: list[float], k: int) -> dict:
    """One table row: the seeds' last evaluations ``finals`` and their means of the last
    ``k`` evaluations ``lasts`` (one value per seed each), summarised over seeds."""
    last = _summary(lasts)
    return {
        "run": run,
        "budget": budget,
        "seeds": len(finals),
        **_summary(finals),
        **{f"last{k}_{key}": value for key, value in last.items()},
    }


def write_tables(rows: list[dict], out: Path, k: int) -> None:
    """``rows`` (one per run group and budget) as learning.csv, learning.json and
    learning.md under ``out``; the Markdown table is printed too."""
    pd.DataFrame(rows).to_csv(out / "learning.csv", index=False)
    (out / "learning.json").write_text(json.dumps(rows, indent=1))
    lines = [
        f"| run | env steps | seeds | last evaluation, mean [95% CI] | per seed "
        f"| mean of the last {k} evaluations, mean [95% CI] | per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['budget']:,} | {r['seeds']} "
            f"| {_cell(r['mean'], r['ci95_low'], r['ci95_high'])} "
            f"| {', '.join(str(v) for v in r['per_seed'])} "
            f"| {_cell(r[f'last{k}_mean'], r[f'last{k}_ci95_low'], r[f'last{k}_ci95_high'])} "
            f"| {', '.join(str(v) for v in r[f'last{k}_per_seed'])} |"
        )
    (out / "learning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", nargs="+", type=int, default=[100_000, 200_000, 300_000])
    parser.add_argument("--last", type=int, default=5, help="also average the last N evaluations")
    parser.add_argument("--runs", nargs="+", default=["*"], help="run-group names or glob patterns")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    groups = select_groups(args.runs)
    for group in groups:
        trials = finished_trials(group)
        if not trials:
            continue
        for budget in args.budgets:
            finals, lasts = [], []
            for trial in trials:
                values = evals_upto(trial, budget) if trial else np.array([])
                finals.append(float(values[-1]) if len(values) else float("nan"))
                lasts.append(float(values[-args.last :].mean()) if len(values) else float("nan"))
            rows.append(summary_row(group.name, budget, finals, lasts, args.last))
    write_tables(rows, out, args.last)
    done_groups = [str(g) for g in groups if any((s / "DONE").exists() for s in g.glob("seed*"))]
    if done_groups:
        plot_command(done_groups, str(out / "curves.png"))


if __name__ == "__main__":
    main()
