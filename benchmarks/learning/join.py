"""Join the per-seed values of run groups from committed results into one group.

    python benchmarks/learning/join.py --out results/F \\
        --join NAME=FOLDER:RUN,FOLDER:RUN [--join NAME=FOLDER:RUN,... ...]

When the seeds of one setting were run in different sessions (different tags, so
different run groups, and the older runs are no longer on the machine), aggregate.py
cannot see them together. This reads the per-seed values that aggregate.py wrote
(``results/<folder>/learning.csv``), puts the named groups' seeds side by side for each
budget they share, and writes the same tables (mean and 95% t-interval over all seeds).
Each ``--join`` is ``NAME=FOLDER:RUN,FOLDER:RUN,...``; the seeds are taken in that order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from aggregate import HERE, summary_row, write_tables  # this folder (run as a script)


def parse_join(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """``NAME=FOLDER:RUN,FOLDER:RUN`` as (NAME, [(FOLDER, RUN), ...])."""
    name, sep, parts = spec.partition("=")
    pairs = [tuple(part.split(":", 1)) for part in parts.split(",") if part]
    if not sep or not name or not pairs or any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ValueError(f"--join {spec!r}: write it as NAME=FOLDER:RUN,FOLDER:RUN")
    return name, pairs


def per_seed(cell: str) -> list[float]:
    """A per-seed cell of learning.csv (``"[1.5, nan]"``: a seed without a result is nan)
    as floats."""
    return [float(value) for value in cell.strip("[]").split(",") if value.strip()]


def joined_rows(name: str, pairs: list[tuple[str, str]], results: Path, k: int) -> list[dict]:
    """One row per budget that every (FOLDER, RUN) has, over all their seeds."""
    parts = []
    for folder, run in pairs:
        path = results / folder / "learning.csv"
        if not path.exists():
            raise ValueError(f"--join {name}: {path} does not exist; run aggregate.py for it first")
        table = pd.read_csv(path)
        rows = table[table["run"] == run]
        if rows.empty:
            known = ", ".join(sorted(table["run"].unique()))
            raise ValueError(f"--join {name}: no run {run!r} in {path}; it has {known}")
        parts.append(rows.set_index("budget"))
    budgets = sorted(set.intersection(*(set(p.index) for p in parts)))
    if not budgets:
        raise ValueError(f"--join {name}: the runs share no budget")
    out = []
    for budget in budgets:
        finals = [v for p in parts for v in per_seed(p.loc[budget, "per_seed"])]
        lasts = [v for p in parts for v in per_seed(p.loc[budget, f"last{k}_per_seed"])]
        out.append(summary_row(name, int(budget), finals, lasts, k))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--join", action="append", required=True, help="NAME=FOLDER:RUN,FOLDER:RUN,...")
    parser.add_argument("--last", type=int, default=5, help="the N of aggregate.py's last-N means")
    parser.add_argument("--results", default=str(HERE / "results"), help="folder of the result folders")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        rows = [
            row for spec in args.join for row in joined_rows(*parse_join(spec), Path(args.results), args.last)
        ]
    except ValueError as error:
        print(f"join.py: {error}", file=sys.stderr)
        sys.exit(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(rows, out, args.last)


if __name__ == "__main__":
    main()
