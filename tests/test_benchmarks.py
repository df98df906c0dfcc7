"""Every benchmark script starts (imports resolve, arguments parse): they run outside
the test suite, so a renamed import would otherwise only show in the next benchmark run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.relative_to(ROOT) for p in (ROOT / "benchmarks").rglob("*.py"))


def test_scripts_found():
    assert Path("benchmarks/throughput.py") in SCRIPTS and Path("benchmarks/learning/aggregate.py") in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_benchmark_script_starts(script):
    out = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
