"""``benchmarks/learning/join.py``: seeds of one setting from two result folders, summed
up as one group (README's 7-seed HalfCheetah figures come from it)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
LEARNING = ROOT / "benchmarks" / "learning"


@pytest.fixture(scope="module")
def aggregate():
    sys.path.insert(0, str(LEARNING))  # join.py imports aggregate.py as its neighbour
    try:
        import aggregate as module
    finally:
        sys.path.remove(str(LEARNING))
    return module


@pytest.fixture(scope="module")
def join(aggregate):
    spec = importlib.util.spec_from_file_location("join", LEARNING / "join.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("aggregate", aggregate)
    spec.loader.exec_module(module)
    return module


def write_folder(aggregate, folder: Path, run: str, per_budget: dict[int, list[float]]) -> None:
    folder.mkdir(parents=True)
    rows = [aggregate.summary_row(run, b, v, [x - 1 for x in v], 5) for b, v in per_budget.items()]
    aggregate.write_tables(rows, folder, 5)


def run_join(results: Path, out: Path, *specs: str) -> subprocess.CompletedProcess:
    join_args = [arg for spec in specs for arg in ("--join", spec)]
    return subprocess.run(
        [sys.executable, str(LEARNING / "join.py"), *join_args, "--results", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_join_pools_the_seeds_of_shared_budgets(aggregate, tmp_path):
    write_folder(aggregate, tmp_path / "old", "a-1M", {500: [1.0, 2.0, 3.0], 1000: [10.0, 20.0, 30.0]})
    write_folder(aggregate, tmp_path / "new", "a-1M-more", {1000: [40.0, 50.0]})
    done = run_join(tmp_path, tmp_path / "out", "a=old:a-1M,new:a-1M-more")
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "out" / "learning.json").read_text())
    assert [r["budget"] for r in rows] == [1000]  # 500 is not in both
    values = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    assert rows[0]["per_seed"] == values.tolist() and rows[0]["seeds"] == 5
    assert rows[0]["mean"] == pytest.approx(30.0)
    assert rows[0]["ci95_low"] == pytest.approx(30.0 - half, abs=0.05)
    assert rows[0]["last5_per_seed"] == (values - 1).tolist()
    assert "| a | 1,000 | 5 |" in (tmp_path / "out" / "learning.md").read_text()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a-old:a-1M", "write it as NAME=FOLDER:RUN"),
        ("a=old", "write it as NAME=FOLDER:RUN"),
        ("a=old:nope", "no run 'nope' in"),
        ("a=missing:a-1M", "run aggregate.py for it first"),
    ],
)
def test_bad_join_names_the_fix(aggregate, join, tmp_path, spec, message):
    write_folder(aggregate, tmp_path / "old", "a-1M", {1000: [1.0, 2.0]})
    with pytest.raises(ValueError, match=message):
        join.joined_rows(*join.parse_join(spec), tmp_path, 5)


def test_bad_join_on_the_command_line_is_one_line_and_exit_2(aggregate, tmp_path):
    write_folder(aggregate, tmp_path / "old", "a-1M", {1000: [1.0, 2.0]})
    done = run_join(tmp_path, tmp_path / "out", "a=old:nope")
    assert done.returncode == 2
    assert "no run 'nope' in" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_seed_without_a_result_stays_a_missing_value(join):
    values = join.per_seed("[1.5, nan, 3.0]")
    assert values[0] == 1.5 and np.isnan(values[1]) and values[2] == 3.0
