"""The fused EnvRunner pipelines give RLlib's episodes, connector states and actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.common.tensor_to_numpy import TensorToNumpy
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module.env_to_module_pipeline import EnvToModulePipeline
from ray.rllib.connectors.module_to_env.module_to_env_pipeline import ModuleToEnvPipeline
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import (
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT,
)

from rllib_trl.connectors.fused import FusedEnvToModulePipeline, FusedModuleToEnvPipeline
from rllib_trl.connectors.reward_scaling import REWARD_SCALE_KEY
from tests.algorithm.helpers import small_config


def _runner(config, fused: bool) -> SingleAgentEnvRunner:
    runner = SingleAgentEnvRunner(config=config)
    assert type(runner._env_to_module) is FusedEnvToModulePipeline
    assert type(runner._module_to_env) is FusedModuleToEnvPipeline
    if not fused:  # RLlib's own loop over the same pieces
        runner._env_to_module.__class__ = EnvToModulePipeline
        runner._module_to_env.__class__ = ModuleToEnvPipeline
    return runner


@pytest.fixture
def tail_calls(monkeypatch) -> list:
    """The names of RLlib's NumpyToTensor and TensorToNumpy pieces, at each call."""
    calls = []
    for cls in (NumpyToTensor, TensorToNumpy):
        original = cls.__call__

        def spy(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", spy)
    return calls


def _sample(runner: SingleAgentEnvRunner, seed: int, **kwargs) -> list:
    torch.manual_seed(seed)  # action noise comes from torch's global generator
    return runner.sample(**kwargs)


def _assert_same_episodes(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert (len(a), a.t_started, a.is_terminated, a.is_truncated) == (
            len(b),
            b.t_started,
            b.is_terminated,
            b.is_truncated,
        )
        for get in ("get_observations", "get_actions", "get_rewards"):
            x, y = np.asarray(getattr(a, get)()), np.asarray(getattr(b, get)())
            assert x.dtype == y.dtype and np.array_equal(x, y), get
        for key in (Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP):
            x, y = np.asarray(a.get_extra_model_outputs(key)), np.asarray(b.get_extra_model_outputs(key))
            assert x.dtype == y.dtype and np.array_equal(x, y), key
        assert a.custom_data.get(REWARD_SCALE_KEY) == b.custom_data.get(REWARD_SCALE_KEY)


def _assert_same_states(ours: SingleAgentEnvRunner, theirs: SingleAgentEnvRunner) -> None:
    x, y = ours._env_to_module.get_state(), theirs._env_to_module.get_state()
    np.testing.assert_equal(x, y)


def _metric_keys(runner: SingleAgentEnvRunner) -> dict[tuple, object]:
    """The runner's reduced metrics, flattened to key paths."""
    flat = {}

    def walk(prefix: tuple, node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk((*prefix, key), value)
        else:
            flat[prefix] = node

    walk((), runner.get_metrics())
    return flat


@pytest.mark.parametrize(
    "cov_type, actions",
    [("diag", "normalize"), ("full", "normalize"), ("diag", "clip"), ("diag", "neither")],
)
def test_fused_pipelines_sample_what_rllib_samples(cov_type, actions, tail_calls):
    """Hopper, 3 sub-envs, 600 steps in three calls (episodes end, sub-envs autoreset,
    chunks are cut), then deterministic sampling: the same data and filter statistics,
    and the same metrics except the fused pieces' own timers."""
    config = small_config(cov_type=cov_type).env_runners(num_env_runners=0, num_envs_per_env_runner=3)
    config.environment(normalize_actions=actions == "normalize", clip_actions=actions == "clip")
    ours, theirs = _runner(config, fused=True), _runner(config, fused=False)
    for call in range(3):
        a = _sample(ours, call, num_timesteps=200)
        assert not tail_calls  # the fused pass ran, not RLlib's pieces
        b = _sample(theirs, call, num_timesteps=200)
        assert tail_calls
        tail_calls.clear()
        assert any(e.is_done for e in b)  # the autoreset path is covered
        _assert_same_episodes(a, b)
        _assert_same_states(ours, theirs)
        if call == 0:
            mine, rllibs = _metric_keys(ours), _metric_keys(theirs)
            fused_timers = {
                "add_observations_from_episodes_to_batch",
                "batch_individual_items",
                "numpy_to_tensor",
            }
            assert set(mine) <= set(rllibs)
            assert fused_timers & {key[-1] for key in set(rllibs) - set(mine)}
            assert {key[-1] for key in set(rllibs) - set(mine)} <= fused_timers | {
                "add_time_dim_to_batch_and_zero_pad",
                "add_states_from_episodes_to_batch",
                "tensor_to_numpy",
                "un_batch_to_individual_items",
                "remove_single_ts_time_rank_from_batch",
                "vectorised_normalize_and_clip_actions",
                "listify_data_for_vector_env",
            }
            for key in (ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN, ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT):
                assert mine[(key,)] == rllibs[(key,)]
    _assert_same_episodes(
        _sample(ours, 7, num_episodes=3, explore=False), _sample(theirs, 7, num_episodes=3, explore=False)
    )


class _AddNoiseObs(ConnectorV2):
    """A user piece before RLlib's defaults that fills the batch itself."""

    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        batch[Columns.OBS] = {
            (e.id_,): [np.asarray(e.get_observations(-1), np.float32) + 1.0] for e in episodes
        }
        return batch


def test_user_piece_that_fills_the_batch_takes_rllibs_tail(tail_calls):
    config = small_config().env_runners(
        num_env_runners=0,
        num_envs_per_env_runner=2,
        env_to_module_connector=lambda env, spaces, device: _AddNoiseObs(),
    )
    ours, theirs = _runner(config, fused=True), _runner(config, fused=False)
    a = _sample(ours, 0, num_timesteps=64)
    assert "NumpyToTensor" in tail_calls and "TensorToNumpy" not in tail_calls
    _assert_same_episodes(a, _sample(theirs, 0, num_timesteps=64))
