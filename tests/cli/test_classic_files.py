"""Files in RLlib's classic YAML format through the `rllib` command, end to end, and the
console a user sees: notes for renamed keys, the progress table, no config dump, no
warning caused by this project's config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RLLIB = Path(sys.executable).parent / "rllib"

PENDULUM_PPO = """\
# RLlib's tuned_examples/ppo/pendulum-ppo.yaml, with a short stop and Pendulum-v1
pendulum-ppo:
    env: Pendulum-v1
    run: PPO
    stop:
        episode_reward_mean: -100
        timesteps_total: 1024
    config:
        framework: torch
        train_batch_size: 512
        vf_clip_param: 10.0
        num_workers: 0
        num_envs_per_worker: 4
        lambda: 0.1
        gamma: 0.95
        lr: 0.0003
        sgd_minibatch_size: 64
        num_sgd_iter: 6
        model:
            fcnet_hiddens: [64, 64]
        observation_filter: MeanStdFilter
"""

HOPPER_TRPL = """\
hopper-trpl:
    env: Hopper-v5
    run: TRPL
    stop:
        timesteps_total: 1024
    config:
        framework: torch
        train_batch_size: 512
        num_workers: 1
        num_envs_per_worker: 2
        lambda: 0.95
        sgd_minibatch_size: 128
        num_sgd_iter: 2
        observation_filter: MeanStdFilter
        model:
            fcnet_hiddens: [32, 32]
            free_log_std: true
"""


def _rllib(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(RLLIB), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _trial(storage: Path, name: str) -> Path:
    (trial,) = (p for p in (storage / name).iterdir() if p.is_dir() and (p / "params.json").exists())
    return trial


def _rows(trial: Path) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]


def test_rllib_pendulum_ppo_classic_file(tmp_path):
    spec = tmp_path / "pendulum-ppo.yaml"
    spec.write_text(PENDULUM_PPO)
    out = _rllib("train", "file", str(spec), "--storage-path", str(tmp_path / "results"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for old, new in [
        ("num_workers", "num_env_runners"),
        ("num_envs_per_worker", "num_envs_per_env_runner"),
        ("sgd_minibatch_size", "minibatch_size"),
        ("num_sgd_iter", "num_epochs"),
        ("timesteps_total", "num_env_steps_sampled_lifetime"),
        ("episode_reward_mean", "env_runners/episode_return_mean"),
    ]:
        assert "rllib: note: " in out.stdout and f"'{old}' is '{new}' in Ray 2.60" in out.stdout
    params = json.loads((_trial(tmp_path / "results", "pendulum-ppo") / "params.json").read_text())
    assert params["minibatch_size"] == 64 and params["num_epochs"] == 6
    assert params["num_env_runners"] == 0 and params["num_envs_per_env_runner"] == 4
    assert params["lambda_"] == 0.1 and params["train_batch_size"] == 512
    assert params["_model_config"] == {"fcnet_hiddens": [64, 64]}
    assert "function observation_filter" in params["_env_to_module_connector"]  # the exact filter
    assert "SyncEvalObservationFilter" in params["callbacks_class"]
    rows = _rows(_trial(tmp_path / "results", "pendulum-ppo"))
    assert rows[-1]["num_env_steps_sampled_lifetime"] == 1024 and len(rows) == 2  # 512 per iteration


def test_rllib_trl_classic_file(tmp_path):
    spec = tmp_path / "hopper-trpl.yaml"
    spec.write_text(HOPPER_TRPL)
    out = _rllib("train", "file", str(spec), "--storage-path", str(tmp_path / "results"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "observation_filter: MeanStdFilter -> normalize_observations: True" in out.stdout
    trial = _trial(tmp_path / "results", "hopper-trpl")
    params = json.loads((trial / "params.json").read_text())
    assert params["minibatch_size"] == 128 and params["num_epochs"] == 2
    assert params["num_env_runners"] == 1 and params["num_envs_per_env_runner"] == 2
    assert params["_model_config"] == {"fcnet_hiddens": [32, 32], "contextual_std": False}
    rows = _rows(trial)
    # classic `train_batch_size` is TRPL's batch too: 512 env steps per iteration (RLlib
    # may count one more at an episode boundary), not TRPL's default 2048
    steps = [r["num_env_steps_sampled_lifetime"] for r in rows]
    assert len(steps) == 2 and 512 <= steps[0] <= 520 and 1024 <= steps[1] <= 1040


def test_quickstart_console_is_quiet(tmp_path):
    """The quickstart's config for two iterations: the progress table, no config dump, and
    no WARNING line but Ray's own note that token authentication is on."""
    out = _rllib(
        "train",
        "file",
        "tuned_examples/quickstart/hopper-trpl-kl.yaml",
        "--stop",
        json.dumps({"training_iteration": 2}),
        "--storage-path",
        str(tmp_path / "results"),
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    warnings = [
        line for line in log.splitlines() if "WARNING" in line and "authentication_token_setup" not in line
    ]
    assert warnings == []
    assert "DeprecationWarning" not in log
    assert "parameters={" not in log and "Current best trial" not in log
    assert "Checkpoint successfully created" not in log
    table = [line for line in out.stdout.splitlines() if line.split()[:2] == ["trial", "iter"]]
    assert len(table) == 1
    assert any(line.rstrip().endswith("done") for line in out.stdout.splitlines())


def test_rllib_command_errors_name_itself(tmp_path):
    out = _rllib("train", "file", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"rllib: error: experiment file not found: {tmp_path / 'missing.yaml'}"
