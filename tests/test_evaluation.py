"""Batched evaluation (``rllib_trl.evaluation``) reports what RLlib's own deterministic
evaluation would: the same return per episode, from the same module, filter and seed."""

from __future__ import annotations

import math

import pytest

from rllib_trl.cli.evaluate import run_episode
from rllib_trl.env_check import make_env
from rllib_trl.evaluation import _policy, batched_evaluation, run_lockstep
from tests.algorithm.helpers import small_config


def test_batched_evaluation_matches_rllibs_episodes(ray_local):
    config = small_config().evaluation(
        evaluation_interval=1, evaluation_duration=3, custom_evaluation_function=batched_evaluation
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        reported = result["evaluation"]["env_runners"]
        assert reported["num_episodes"] == 3 and math.isfinite(reported["episode_return_mean"])
        runner = algo.eval_env_runner_group.local_env_runner
        assert runner._env_to_module.connectors[0]._filters[None].running_stats.n > 0  # synced stats
        seeds = [5, 6]
        returns, lengths = run_lockstep(
            [make_env("Hopper-v5") for _ in seeds], _policy(runner, algo.evaluation_config), seeds
        )
        for seed, value in zip(seeds, returns, strict=True):
            # RLlib's connector pipelines of the same EnvRunner, one step at a time
            expected = run_episode(
                make_env("Hopper-v5"), runner.module, runner._env_to_module, runner._module_to_env, seed
            )
            assert value == pytest.approx(expected, rel=1e-5)
        assert all(n > 0 for n in lengths)
        again = algo.evaluate()["env_runners"]  # this evaluation's episodes only
        assert again["num_episodes"] == 3
        assert again["episode_return_min"] <= again["episode_return_mean"] <= again["episode_return_max"]
    finally:
        algo.stop()


def test_batched_evaluation_rejects_timestep_durations(ray_local):
    config = small_config().evaluation(
        evaluation_interval=1,
        evaluation_duration=100,
        evaluation_duration_unit="timesteps",
        custom_evaluation_function=batched_evaluation,
    )
    algo = config.build_algo()
    try:
        with pytest.raises(ValueError, match="evaluation_duration_unit: episodes"):
            algo.evaluate()
    finally:
        algo.stop()
