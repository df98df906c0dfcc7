"""The real step of finished learning runs: mean and largest over all iterations of the
``policy_step_*`` metrics, per run group (the figures in README "Results").

    python benchmarks/learning/real_step.py --runs 'walker2d-*-1M' [--cov-bound 0.001]

Reads runs/<group>/seed*/ like aggregate.py (resumed iterations counted once). With
``--cov-bound``, also the share of iterations whose covariance part reached 99% of it.
"""

from __future__ import annotations

import argparse

from aggregate import finished_trials, select_groups  # this folder (run as a script)

from rllib_trl.cli.plot import load_trial

PREFIX = "learners/default_policy/policy_step_"
KEYS = ("outside_frac", "kl_mean", "mean_part_max", "cov_part_max")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", default=["*"], help="run-group names or glob patterns")
    parser.add_argument("--cov-bound", type=float, help="also count iterations at this covariance bound")
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


if __name__ == "__main__":
    main()
