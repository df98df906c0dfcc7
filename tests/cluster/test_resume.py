"""An experiment whose driver is killed continues with `rllib-trl train file ... --resume`
from its last checkpoint, without losing iterations (those after the checkpoint run again,
and readers keep one row per iteration)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rllib_trl.cli.plot import load_trial

ROOT = Path(__file__).resolve().parents[2]
STOP = 40


def _iterations(trial: Path) -> list[int]:
    rows = (trial / "result.json").read_text().strip().splitlines()
    return [json.loads(r)["training_iteration"] for r in rows if r.strip()]


def _synced_rows(storage: Path) -> int:
    results = list(storage.glob("resumable/TRPL*/result.json"))
    return len(results[0].read_text().strip().splitlines()) if results else 0


def test_resume_after_driver_killed(tmp_path):
    spec = tmp_path / "exp.yaml"
    spec.write_text(
        "resumable:\n"
        "  run: TRPL\n"
        "  env: Hopper-v5\n"
        f"  stop: {{training_iteration: {STOP}}}\n"
        "  checkpoint_config: {checkpoint_frequency: 1, checkpoint_at_end: true}\n"
        "  config: {train_batch_size_per_learner: 512, minibatch_size: 128, num_epochs: 1,"
        " num_envs_per_env_runner: 2}\n"
    )
    storage = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "rllib_trl.cli.main",
        "train",
        "file",
        str(spec),
        "--storage-path",
        str(storage),
    ]
    log = open(tmp_path / "first.log", "w")
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.time() + 300
        # Kill as soon as an experiment snapshot (every 5 s) holds two finished iterations.
        while time.time() < deadline and not _synced_rows(storage) >= 2:
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started
        driver.wait()
    (trial,) = storage.glob("resumable/TRPL*")
    before = _iterations(trial)
    assert 2 <= max(before) < STOP, before

    out = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after = _iterations(trial)
    # Nothing lost; the iterations run after the last checkpoint Tune had recorded are run
    # again and appended (a tail of the first run), and readers keep one row for each.
    assert sorted(set(after)) == list(range(1, STOP + 1)) and after[-1] == STOP, after
    repeated = sorted({i for i in after if after.count(i) > 1})
    assert repeated == list(range(max(before) - len(repeated) + 1, max(before) + 1)), (repeated, before)
    frame, _ = load_trial(trial)
    assert frame["training_iteration"].tolist() == list(range(1, STOP + 1))
    # the row kept for a repeated iteration is the resumed run's (its last one)
    rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    for iteration in repeated:
        first, *_, last = [row["time_total_s"] for row in rows if row["training_iteration"] == iteration]
        kept = frame.loc[frame["training_iteration"] == iteration, "time_total_s"].item()
        assert kept == last != first, (iteration, kept, last, first)
    assert sorted(trial.glob("checkpoint_*"))
