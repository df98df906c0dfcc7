"""Options that change what is trained, each shown to act in a real training run:
reward normalisation (what the learner sees, its clip, its checkpoint, its absence in
evaluation), both normalisations off, a float32 projection, entropy control before the
projection and the exp schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rllib_trl.connectors.reward_scaling import ScaleRewards
from rllib_trl.projections import entropy_bound
from tests.algorithm.helpers import small_config

MODULE = "default_policy"


def _pipeline_names(runner) -> list[str]:
    return [type(piece).__name__ for piece in runner._env_to_module.connectors]


def _learner(algo):
    return algo.learner_group._learner


def _return_stats(runner) -> list:
    return runner.get_state(components="env_to_module_connector")["env_to_module_connector"][
        "DiscountedReturnStats"
    ]["stat"]


def test_reward_normalisation_on_training_off_in_evaluation_and_checkpointed(ray_local, tmp_path):
    config = (
        small_config(reward_clip=3.0)
        .env_runners(num_env_runners=0)
        .evaluation(evaluation_interval=1, evaluation_duration=1)
    )
    assert config.rewards_normalized  # the default on the new API stack
    algo = config.build_algo()
    try:
        algo.train()
        runner = algo.env_runner_group.local_env_runner
        assert "DiscountedReturnStats" in _pipeline_names(runner)
        assert "DiscountedReturnStats" not in _pipeline_names(algo.eval_env_runner_group.local_env_runner)
        (scale_rewards,) = [
            c for c in _learner(algo)._learner_connector.connectors if isinstance(c, ScaleRewards)
        ]
        assert scale_rewards.clip == 3.0
        stats = _return_stats(runner)
        assert stats[None][0] >= 256  # one discounted return per env step
        algo.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algo.stop()
    restored = type(algo).from_checkpoint(str(tmp_path / "ckpt"))
    try:
        assert _return_stats(restored.env_runner_group.local_env_runner) == stats
    finally:
        restored.stop()


def test_the_learner_sees_scaled_and_clipped_rewards():
    """ScaleRewards on a batch of two episodes whose EnvRunner stamped scales 2 and 0.5."""
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from rllib_trl.connectors.reward_scaling import REWARD_SCALE_KEY

    episodes = []
    for scale, rewards in ((2.0, [1.0, -4.0, 10.0]), (0.5, [1.0, -2.0])):
        episode = SingleAgentEpisode(observations=[np.zeros(2)], actions=[], rewards=[])
        for r in rewards:
            episode.add_env_step(np.zeros(2), 0, r)
        episode.custom_data[REWARD_SCALE_KEY] = scale
        episodes.append(episode)
    batch = {MODULE: {Columns.REWARDS: torch.tensor([1.0, -4.0, 10.0, 1.0, -2.0])}}
    out = ScaleRewards(clip=3.0)(rl_module=None, batch=batch, episodes=episodes)
    expected = torch.tensor([0.5, -2.0, 3.0, 2.0, -3.0])  # r / scale, clipped to ±3
    torch.testing.assert_close(out[MODULE][Columns.REWARDS], expected)


def test_both_normalisations_off(ray_local):
    config = small_config(normalize_observations=False, normalize_rewards=False).env_runners(
        num_env_runners=0
    )
    algo = config.build_algo()
    try:
        metrics = algo.train()["learners"][MODULE]
        names = _pipeline_names(algo.env_runner_group.local_env_runner)
        assert "ExactMeanStdFilter" not in names and "DiscountedReturnStats" not in names
        learner_pieces = _learner(algo)._learner_connector.connectors
        assert not any(isinstance(c, ScaleRewards) for c in learner_pieces)
    finally:
        algo.stop()
    assert math.isfinite(metrics["policy_loss"]) and math.isfinite(metrics["vf_loss"])


def test_float32_projection_keeps_the_bounds(ray_local):
    config = small_config(projection_dtype="float32", lr=3e-3, mean_bound=0.01, cov_bound=0.001)
    algo = config.build_algo()
    try:
        stats = [algo.train()["learners"][MODULE] for _ in range(2)]
    finally:
        algo.stop()
    assert any(s["mean_projected_frac"] > 0 for s in stats)  # the projection acted
    for s in stats:
        assert s["mean_constraint_max"] <= 0.01 * (1 + 1e-3)
        assert s["cov_constraint_max"] <= 0.001 * (1 + 1e-3)


@pytest.mark.parametrize("entropy_first", [False, True])
def test_exp_schedule_with_equality(ray_local, entropy_first):
    config = small_config(
        entropy_schedule="exp",
        target_entropy=-1.0,
        temperature=0.5,
        entropy_eq=True,
        entropy_first=entropy_first,
        entropy_schedule_steps=1024,
    )
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    k = 3  # Hopper's action dimension
    h0 = 0.5 * k * (1 + math.log(2 * math.pi))  # init_std 1
    for result in results:
        metrics = result["learners"][MODULE]
        # the bound was computed at the env steps sampled before this iteration's update
        step = result["num_env_steps_sampled_lifetime"]
        expected = entropy_bound(
            "exp",
            initial_entropy=h0,
            target_entropy=-1.0,
            temperature=0.5,
            step=step,
            total_steps=1024,
            action_dim=k,
        )
        assert metrics["entropy_bound"] == pytest.approx(expected, rel=1e-6)
        if not entropy_first:  # equality applied last: π̃ has exactly the bound's entropy
            assert metrics["entropy"] == pytest.approx(metrics["entropy_bound"], abs=1e-4)
        else:  # the trust region applied last keeps π̃ within its cov bound around π_old,
            # whose entropy is still far above the falling bound
            assert metrics["cov_constraint_max"] <= 0.001 * (1 + 1e-4)
            assert metrics["entropy"] > metrics["entropy_bound"] + 1.0
