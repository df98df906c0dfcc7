"""Tune searches from YAML through the CLI, in subprocesses with their own local Ray:
``--num-samples`` makes that many trials, the samplers are sampled by Tune within their
ranges, and the ASHA scheduler stops trials early."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_end_to_end import _cli

# Sampling on the trial's own (local) EnvRunner: no EnvRunner actor to start per trial,
# and a trial needs 1 CPU, so two run at once where the search allows it.
TINY = (
    "    train_batch_size_per_learner: 256\n    minibatch_size: 128\n    num_epochs: 1\n"
    "    num_env_runners: 0\n"
)


def _trials(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("TRPL"))


def _iterations(trial: Path) -> int:
    return len((trial / "result.json").read_text().strip().splitlines())


def test_num_samples_and_samplers(tmp_path):
    spec = tmp_path / "samplers.yaml"
    spec.write_text(
        "samplers:\n"
        "  run: TRPL\n"
        "  env: Hopper-v5\n"
        "  stop: {training_iteration: 1}\n"
        "  config:\n"
        "    mean_bound: {uniform: [0.01, 0.05]}\n"
        "    cov_bound: {quniform: [0.001, 0.005, 0.001]}\n"
        "    num_envs_per_env_runner: {randint: [1, 3]}\n"
        "    projection: {choice: [kl, frobenius, wasserstein]}\n" + TINY
    )
    storage = tmp_path / "results"
    _cli("train", "file", str(spec), "--storage-path", str(storage), "--num-samples", "3")
    trials = _trials(storage / "samplers")
    assert len(trials) == 3
    params = [json.loads((t / "params.json").read_text()) for t in trials]
    for p, trial in zip(params, trials, strict=True):
        assert 0.01 <= p["mean_bound"] <= 0.05
        steps = p["cov_bound"] / 0.001  # quniform: a multiple of q within the range
        assert abs(steps - round(steps)) < 1e-9 and 1 <= round(steps) <= 5
        assert isinstance(p["num_envs_per_env_runner"], int) and 1 <= p["num_envs_per_env_runner"] < 3
        assert p["projection"] in ("kl", "frobenius", "wasserstein")
        assert _iterations(trial) == 1
    assert len({p["mean_bound"] for p in params}) == 3  # sampled per trial, not one value


def test_asha_stops_worse_trials_early(tmp_path):
    # The metric is the trial's own mean_bound (Tune reports each trial's config in its
    # results), so which trials are worse is known in advance: run in this order, every
    # trial after the first is below the first one's rung value and ASHA stops it.
    spec = tmp_path / "asha.yaml"
    spec.write_text(
        "asha:\n"
        "  run: TRPL\n"
        "  env: Hopper-v5\n"
        "  stop: {training_iteration: 3}\n"
        "  tune_config:\n"
        "    metric: config/mean_bound\n"
        "    mode: max\n"
        "    max_concurrent_trials: 1\n"
        "    scheduler: {type: ASHA, time_attr: training_iteration, max_t: 3, grace_period: 1,"
        " reduction_factor: 2}\n"
        "  config:\n"
        "    mean_bound: {grid_search: [0.04, 0.03, 0.02]}\n"
        "    num_envs_per_env_runner: 1\n" + TINY
    )
    storage = tmp_path / "results"
    _cli("train", "file", str(spec), "--storage-path", str(storage))
    done = {
        json.loads((t / "params.json").read_text())["mean_bound"]: _iterations(t)
        for t in _trials(storage / "asha")
    }
    assert done[0.04] == 3, done
    assert done[0.03] < 3 and done[0.02] < 3, done
