"""``benchmarks/learning/posture.py``: the measure behind README's HalfCheetah stalls
(upright or on its back) reads a real HalfCheetah-v5 torso."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests.learning_scripts import load_script


@pytest.fixture(scope="module")
def posture():
    return load_script("posture")


class StartOnItsBack(gym.Wrapper):
    """HalfCheetah reset with the torso turned over (pitch pi)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        base = self.env.unwrapped
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[1], qpos[2] = 0.3, np.pi
        base.set_state(qpos, qvel)
        return base._get_obs(), info


def still(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(obs.shape[0], 6, dtype=obs.dtype)


def test_upside_down_for_any_winding(posture):
    pitch = np.array([0.0, 1.0, -1.4, 1.7, np.pi, -np.pi, 2 * np.pi, 3 * np.pi, -5.0])
    np.testing.assert_array_equal(posture.upside_down(pitch), [0, 0, 0, 1, 1, 1, 0, 1, 0])


def test_replay_tells_upright_from_on_its_back(posture):
    upright = gym.make("HalfCheetah-v5")
    total, down = posture.replay(still, upright, seed=0)
    assert down == 0.0 and np.isfinite(total)
    _, down = posture.replay(still, StartOnItsBack(gym.make("HalfCheetah-v5")), seed=0)
    assert down == 1.0
