"""``rllib-trl export``: the exported policy, loaded in a fresh process with torch alone
(no Ray, no rllib_trl), acts exactly as ``rllib-trl evaluate`` does; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig

from rllib_trl.cli.checkpoint import load_checkpoint
from rllib_trl.cli.evaluate import run_episode
from rllib_trl.connectors import observation_filter
from tests.algorithm.helpers import small_config

EPISODES = 10
# Runs in a fresh interpreter: the exported file, gymnasium and torch, nothing else.
DEPLOY_SCRIPT = """
import json, sys
import gymnasium as gym
import torch

policy = torch.export.load(sys.argv[1]).module()
env = gym.make(sys.argv[2])
returns, first_actions = [], []
for seed in range(int(sys.argv[3])):
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = policy(torch.as_tensor(obs)[None])[0].numpy()
        if seed == 0:
            first_actions.append(action.tolist())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("ray", "rllib_trl"))
print(json.dumps({"returns": returns, "first_actions": first_actions, "leaked": leaked}))
"""


class RecordActions(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.actions: list = []

    def step(self, action):
        self.actions.append(np.asarray(action, dtype=np.float64))
        return self.env.step(action)


@pytest.fixture(scope="module")
def checkpoints(ray_local, tmp_path_factory):
    """A TRPL and a PPO-baseline Hopper checkpoint (two iterations, observation filter
    on), and a discrete-action PPO one."""
    root = tmp_path_factory.mktemp("checkpoints")
    configs = {
        "trpl": small_config(cov_type="full"),
        "ppo": PPOConfig()
        .environment("Hopper-v5")
        .env_runners(num_env_runners=0, env_to_module_connector=observation_filter)
        .training(train_batch_size=256, minibatch_size=64, num_epochs=1),
        "discrete": PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .training(train_batch_size=128, minibatch_size=64, num_epochs=1),
    }
    paths = {}
    for name, config in configs.items():
        algo = config.build_algo()
        try:
            for _ in range(2 if name != "discrete" else 1):
                algo.train()
            paths[name] = algo.save(str(root / name)).checkpoint.path
        finally:
            algo.stop()
    return paths


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rllib_trl.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize("algorithm", ["trpl", "ppo"])
def test_exported_policy_acts_as_evaluate(checkpoints, algorithm, tmp_path):
    out = _cli("export", checkpoints[algorithm], "-o", str(tmp_path / "policy.pt2"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    script = tmp_path / "deploy.py"
    script.write_text(DEPLOY_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "policy.pt2"), "Hopper-v5", str(EPISODES)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    deployed = json.loads(run.stdout.strip().splitlines()[-1])
    assert deployed["leaked"] == []  # torch alone: no Ray, no rllib_trl

    loaded = load_checkpoint(checkpoints[algorithm])
    module = loaded.modules["default_policy"]
    env = RecordActions(gym.make("Hopper-v5"))
    returns = []
    for seed in range(EPISODES):
        env.actions = []
        returns.append(run_episode(env, module, loaded.env_to_module, loaded.module_to_env, seed))
        if seed == 0:
            first_actions = np.asarray(env.actions)
    np.testing.assert_allclose(np.asarray(deployed["first_actions"]), first_actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(deployed["returns"], returns, rtol=1e-6)


def test_export_and_evaluate_take_a_relative_checkpoint_path(checkpoints, tmp_path):
    checkpoint = Path(checkpoints["trpl"])
    out = _cli("export", checkpoint.name, "-o", str(tmp_path / "policy.pt2"), cwd=checkpoint.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "policy.pt2").is_file()
    out = _cli("evaluate", checkpoint.name, "--episodes", "1", cwd=checkpoint.parent)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "/nonexistent/checkpoint"], "not an RLlib algorithm checkpoint"),
        (["export", "{discrete}", "-o", "p.pt2"], "export supports continuous (Box) Gaussian policies"),
        (
            ["export", "{trpl}", "-o", "/nonexistent/folder/p.pt2"],
            "the folder /nonexistent/folder does not exist",
        ),
        (["export", "{trpl}", "-o", "."], "is a folder"),
    ],
)
def test_export_bad_input(checkpoints, args, message, tmp_path):
    out = _cli(*(a.format(**checkpoints) for a in args), cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rllib-trl: error: ") and message in lines[0], out.stderr
    assert not list(tmp_path.glob("*.pt2"))
