"""Multi-agent TRPL: two policies on a two-agent continuous env with the default config
(observation and reward normalisation per agent, merged exactly across 2 EnvRunners),
checkpointed and restored, evaluated and exported from the command line."""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.env.multi_agent_env import make_multi_agent

from rllib_trl import TRPLConfig
from tests.connectors.test_filters import _stats

SLACK = 1 + 1e-4
TwoPendulums = make_multi_agent("Pendulum-v1")


class RecordingTwoPendulums(TwoPendulums):
    """Two independent Pendulum-v1 agents (ids 0 and 1) that save what each observes."""

    def __init__(self, config):
        super().__init__(config)
        self.log_dir = config["log_dir"]
        self.seen: dict[int, list] = {0: [], 1: []}
        # training EnvRunners only (indices 1, 2), not the driver's evaluation EnvRunner
        self.recording = getattr(config, "worker_index", 0) > 0

    def _record(self, obs):
        if not self.recording:
            return
        for agent_id, o in obs.items():
            self.seen[agent_id].append(o)
        for agent_id, rows in self.seen.items():
            np.save(os.path.join(self.log_dir, f"{agent_id}-{os.getpid()}-{id(self)}.npy"), np.asarray(rows))

    def reset(self, *, seed=None, options=None):
        obs, infos = super().reset(seed=seed, options=options)
        self._record(obs)
        return obs, infos

    def step(self, action_dict):
        out = super().step(action_dict)
        self._record(out[0])
        return out


def policy_of(agent_id, episode=None, **kwargs) -> str:
    return f"p{agent_id}"


def two_policy_config(env, log_dir: Path) -> TRPLConfig:
    """TRPL's defaults but for the batch size, with two policies."""
    return (
        TRPLConfig()
        # no env checker: its probe reset and step would be recorded but never filtered
        .environment(env, env_config={"num_agents": 2, "log_dir": str(log_dir)}, disable_env_checking=True)
        .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
        .multi_agent(policies={"p0", "p1"}, policy_mapping_fn=policy_of)
        .training(train_batch_size=400, minibatch_size=100, num_epochs=2)
        .evaluation(evaluation_interval=1, evaluation_duration=1)
        .debugging(seed=0)
    )


def test_two_policies_train_normalise_per_agent_and_restore(ray_local, tmp_path):
    # The env class travels by value: to the EnvRunners, and in the checkpoint to the CLI.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    (tmp_path / "obs").mkdir()
    config = two_policy_config(RecordingTwoPendulums, tmp_path / "obs")
    assert config.normalize_observations and config.rewards_normalized  # the defaults
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        for module_id in ("p0", "p1"):
            metrics = result["learners"][module_id]
            assert float(metrics["kl_max"]) <= (config.mean_bound + config.cov_bound) * SLACK
            assert float(metrics["mean_constraint_max"]) <= config.mean_bound * SLACK
            assert float(metrics["cov_constraint_max"]) <= config.cov_bound * SLACK
        assert math.isfinite(result["evaluation"]["env_runners"]["episode_return_mean"])
        state = algo.env_runner_group.local_env_runner.get_state()["env_to_module_connector"]
        evaluated = algo.eval_env_runner_group.local_env_runner.get_state()["env_to_module_connector"]
        checkpoint = algo.save(str(tmp_path / "checkpoint")).checkpoint.path
        weights = algo.get_module("p1").state_dict()
    finally:
        algo.stop()

    # Each agent's filter holds exactly the statistics of what that agent observed, over
    # both EnvRunners (numpy's mean and population std).
    obs_filter = state["ExactMeanStdFilter"]
    assert set(obs_filter) == {0, 1}
    for agent_id in (0, 1):
        files = glob.glob(str(tmp_path / "obs" / f"{agent_id}-*.npy"))
        assert len(files) == 2  # both EnvRunners sampled (the local one does not)
        seen = np.concatenate([np.load(f) for f in files]).astype(np.float64)  # Pendulum: float32
        n, mean, std = _stats({None: obs_filter[agent_id]})
        assert n == len(seen)
        np.testing.assert_allclose(mean, seen.mean(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(std, seen.std(0), rtol=1e-6, atol=1e-9)
        # evaluation normalised each agent with that agent's training statistics
        assert _stats({None: evaluated["ExactMeanStdFilter"][agent_id]})[0] >= n > 0
    # ... and the discounted-return statistics are per agent too.
    assert set(state["DiscountedReturnStats"]["stat"]) == {0, 1}

    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        again = restored.env_runner_group.local_env_runner.get_state()["env_to_module_connector"]
        for agent_id in (0, 1):
            assert (
                _stats({None: again["ExactMeanStdFilter"][agent_id]})[0]
                == _stats({None: obs_filter[agent_id]})[0]
            )
        assert again["DiscountedReturnStats"]["stat"] == state["DiscountedReturnStats"]["stat"]
        for key, value in restored.get_module("p1").state_dict().items():
            np.testing.assert_array_equal(value, weights[key])
        restored.train()  # and it trains on
    finally:
        restored.stop()

    # The command line evaluates and exports it (one file per policy).
    cli = [sys.executable, "-m", "rllib_trl.cli.main"]
    out = subprocess.run(
        [*cli, "evaluate", checkpoint, "--episodes", "2"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "agent 0 (policy p0)" in out.stdout and "agent 1 (policy p1)" in out.stdout
    out = subprocess.run(
        [*cli, "export", checkpoint, "-o", str(tmp_path / "policy.pt2")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("policy_*.pt2")) == ["policy_p0.pt2", "policy_p1.pt2"]
