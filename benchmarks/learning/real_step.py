"""The real step of finished learning runs: mean and largest over all iterations of the
``policy_step_*`` metrics, per run group (the figures in README "Results").

    python benchmarks/learning/real_step.py --runs 'walker2d-*-1M' [--cov-bound 0.001]

Reads runs/<group>/seed*/ like aggregate.py (resumed iterations counted once). With
``--cov-bound``, also the share of iterations whose covariance part reached 99% of it;
with ``--entropy-at 100000 1000000``, the training policy's entropy per seed at the first
iteration at or past each env-step budget (the last iteration if none is).
"""

from __future__ import annotations

import argparse

from aggregate import finished_trials, select_groups  # this folder (run as a script)

from rllib_trl.cli.plot import load_trial
from rllib_trl.cli.result_keys import ENV_STEPS

PREFIX = "learners/default_policy/policy_step_"
KEYS = ("outside_frac", "kl_mean", "mean_part_max", "cov_part_max")
ENTROPY = "learners/default_policy/entropy"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", default=["*"], help="run-group names or glob patterns")
    parser.add_argument("--cov-bound", type=float, help="also count iterations at this covariance bound")
    parser.add_argument("--entropy-at", nargs="+", type=int, default=[], help="env-step budgets")
    args = parser.parse_args()
    for group in select_groups(args.runs):
        frames = [load_trial(trial)[0] for trial in finished_trials(group) if trial]
        columns = [f"{PREFIX}{key}" for key in KEYS]
        rows = [f[columns].dropna() for f in frames if all(c in f for c in columns)]
        if not rows:
            continue
        n = sum(len(r) for r in rows)
        parts = [f"{group.name}: {len(rows)} runs, {n} iterations"]
        for key, column in zip(KEYS, columns, strict=True):
            values = [v for r in rows for v in r[column]]
            parts.append(f"{key} mean {sum(values) / n:.4g}, largest {max(values):.4g}")
        if args.cov_bound:
            at = sum(v >= 0.99 * args.cov_bound for r in rows for v in r[f"{PREFIX}cov_part_max"])
            parts.append(f"cov part at the bound in {100 * at / n:.0f}% of iterations")
        print("; ".join(parts))
        for budget in args.entropy_at:
            values = [_entropy_at(f, budget) for f in frames if ENTROPY in f]
            if values:
                per_seed = ", ".join(f"{v:.2f}" for v in values)
                print(f"  entropy at {budget:,}: {per_seed} (mean {sum(values) / len(values):.2f})")


def _entropy_at(frame, budget: int) -> float:
    """Entropy at the first iteration at or past ``budget`` env steps, else the last."""
    past = frame[frame[ENV_STEPS] >= budget]
    row = past.iloc[0] if len(past) else frame.iloc[-1]
    return float(row[ENTROPY])


if __name__ == "__main__":
    main()
