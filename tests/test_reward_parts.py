"""``benchmarks/learning/reward_parts.py``: the reward terms behind README's Ant replays
add up to the return, and a termination is reported with the torso's height."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import torch

from tests.learning_scripts import load_script


@pytest.fixture(scope="module")
def reward_parts():
    return load_script("reward_parts")


class Constant(torch.nn.Module):
    """A deterministic policy that outputs one fixed action ``(1, k)`` for every state."""

    def __init__(self, action: list[float]):
        super().__init__()
        self.action = torch.tensor([action], dtype=torch.float32)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.action.expand(obs.shape[0], -1)


def test_terms_sum_to_the_return_at_the_time_limit(reward_parts):
    env = gym.make("Ant-v5", max_episode_steps=50)
    parts = reward_parts.episode_parts(Constant([0.0] * 8), env, seed=0)
    terms = sum(v for k, v in parts.items() if k.startswith("reward_"))
    assert {"reward_forward", "reward_ctrl", "reward_contact", "reward_survive"} <= parts.keys()
    assert parts["return"] == pytest.approx(terms, rel=1e-9, abs=1e-9)
    assert parts["length"] == 50 and parts["terminated"] == 0.0
    assert math.isnan(parts["end_torso_z"])
    assert parts["reward_ctrl"] == 0.0  # zero action, no control cost


def test_termination_reports_the_torso_height(reward_parts):
    """An Ant whose healthy range ends at 0.4 is terminated as soon as its torso (0.75
    at reset) is above it; the height reported is above the range."""
    env = gym.make("Ant-v5", healthy_z_range=(0.2, 0.4), max_episode_steps=50)
    parts = reward_parts.episode_parts(Constant([0.5] * 8), env, seed=0)
    assert parts["terminated"] == 1.0 and parts["length"] < 50
    assert parts["end_torso_z"] > 0.4
    assert parts["reward_ctrl"] < 0.0
