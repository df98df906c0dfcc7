"""The vectorised NormalizeAndClipActions gives RLlib's per-sub-env result, and TRPL's
EnvRunners use it."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.connectors.module_to_env.normalize_and_clip_actions import NormalizeAndClipActions
from ray.rllib.core.columns import Columns

from rllib_trl.connectors.actions import VectorisedNormalizeAndClipActions
from tests.algorithm.helpers import small_config


@pytest.mark.parametrize("normalize, clip", [(True, False), (False, True)])
def test_same_actions_for_env_as_rllib(normalize, clip):
    space = gym.spaces.Box(np.array([-1.0, 0.0, -0.4], np.float32), np.array([1.0, 2.0, 0.4], np.float32))
    rng = np.random.default_rng(0)
    batch = {
        Columns.ACTIONS: {(f"ep{i}",): [rng.normal(size=3).astype(np.float32) * 2] for i in range(8)},
        Columns.ACTION_LOGP: {(f"ep{i}",): [np.float32(-1.0)] for i in range(8)},
    }
    outputs = []
    for cls in (NormalizeAndClipActions, VectorisedNormalizeAndClipActions):
        connector = cls(input_action_space=space, normalize_actions=normalize, clip_actions=clip)
        outputs.append(connector(rl_module=None, batch=copy.deepcopy(batch), episodes=[]))
    theirs, ours = outputs
    assert ours.keys() == theirs.keys()
    for key, items in theirs[Columns.ACTIONS_FOR_ENV].items():
        assert len(ours[Columns.ACTIONS_FOR_ENV][key]) == len(items)
        for a, b in zip(ours[Columns.ACTIONS_FOR_ENV][key], items, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    for key, items in batch[Columns.ACTIONS].items():  # the sampled actions stay as they were
        assert np.array_equal(ours[Columns.ACTIONS][key][0], items[0])


def test_trpl_env_runner_pipeline_uses_it():
    config = small_config()
    env = gym.make("Hopper-v5")
    pipeline = config.build_module_to_env_connector(env=gym.vector.SyncVectorEnv([lambda: env]))
    kinds = [type(c) for c in pipeline.connectors]
    assert VectorisedNormalizeAndClipActions in kinds and NormalizeAndClipActions not in kinds
