"""The CLI end to end, in subprocesses with their own local Ray instance: train one
iteration from a tuned example, evaluate its checkpoint, plot; a two-trial search."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "train_batch_size_per_learner": 512,
    "minibatch_size": 128,
    "num_epochs": 2,
    "num_envs_per_env_runner": 2,
    "evaluation_interval": 1,
    "evaluation_duration": 2,
}


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "rllib_trl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_train_evaluate_plot(tmp_path):
    storage = tmp_path / "results"
    out = _cli(
        "train",
        "file",
        "tuned_examples/hopper/hopper-trpl-kl.yaml",
        "--stop",
        json.dumps({"training_iteration": 1}),
        "--config",
        json.dumps(SMALL),
        "--storage-path",
        str(storage),
    )
    assert f"Results, checkpoints and TensorBoard logs: {storage / 'hopper-trpl-kl'}" in out.stdout
    assert "Best env_runners/episode_return_mean:" in out.stdout
    trials = [p for p in (storage / "hopper-trpl-kl").iterdir() if p.is_dir() and p.name.startswith("TRPL")]
    assert len(trials) == 1
    trial = trials[0]
    checkpoints = sorted(trial.glob("checkpoint_*"))
    assert checkpoints, "no checkpoint written"

    events = sorted(trial.glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for metric in (
        "kl_max",
        "mean_constraint_max",
        "cov_constraint_max",
        "trust_region_loss",
        "entropy",
        "policy_step_kl_max",
        "policy_step_outside_frac",
    ):
        assert any(tag.endswith(f"learners/default_policy/{metric}") for tag in tags), metric

    evaluated = _cli("evaluate", str(checkpoints[-1]), "--episodes", "2")
    assert "Hopper-v5: deterministic return" in evaluated.stdout

    png = tmp_path / "curves.png"
    _cli("plot", str(storage / "hopper-trpl-kl"), "-o", str(png))
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_env_whose_first_iteration_ends_no_episode(tmp_path):
    """HalfCheetah's episodes last 1000 steps: after a 256-step first iteration RLlib has
    no episode return to report, which Tune's strict metric check turned into a failed
    trial. Training goes on, and the end says why there is no best return yet."""
    spec = tmp_path / "cheetah.yaml"
    spec.write_text(
        "cheetah:\n"
        "  run: TRPL\n"
        "  env: HalfCheetah-v5\n"
        "  stop: {training_iteration: 2}\n"
        "  config: {train_batch_size_per_learner: 256, minibatch_size: 128, num_epochs: 1,\n"
        "           num_env_runners: 0, num_envs_per_env_runner: 1}\n"
    )
    storage = tmp_path / "results"
    out = _cli("train", "file", str(spec), "--storage-path", str(storage))
    assert "No trial reported env_runners/episode_return_mean: no episode ended yet" in out.stdout
    (trial,) = (p for p in (storage / "cheetah").iterdir() if p.is_dir() and p.name.startswith("TRPL"))
    rows = (trial / "result.json").read_text().splitlines()
    assert [json.loads(row)["training_iteration"] for row in rows] == [1, 2]


def test_two_trial_search_from_yaml(tmp_path):
    spec = tmp_path / "search.yaml"
    spec.write_text(
        "search:\n"
        "  run: TRPL\n"
        "  env: Hopper-v5\n"
        "  stop: {training_iteration: 1}\n"
        "  tune_config: {metric: env_runners/episode_return_mean, mode: max}\n"
        "  config:\n"
        "    mean_bound: {grid_search: [0.01, 0.05]}\n"
        "    cov_bound: {loguniform: [0.0005, 0.002]}\n"
        f"    train_batch_size_per_learner: {SMALL['train_batch_size_per_learner']}\n"
        "    minibatch_size: 128\n"
        "    num_epochs: 1\n"
        "    num_env_runners: 0\n"  # no EnvRunner actor per trial; the two trials run at once
    )
    storage = tmp_path / "results"
    _cli("train", "file", str(spec), "--storage-path", str(storage))
    trials = sorted(p for p in (storage / "search").iterdir() if p.is_dir() and p.name.startswith("TRPL"))
    assert len(trials) == 2
    bounds = sorted(json.loads((t / "params.json").read_text())["mean_bound"] for t in trials)
    assert bounds == [0.01, 0.05]
    for trial in trials:
        params = json.loads((trial / "params.json").read_text())
        assert 0.0005 <= params["cov_bound"] <= 0.002
        rows = (trial / "progress.csv").read_text().strip().splitlines()
        assert len(rows) == 2  # header + one finished iteration
