"""TRPLEnvRunner's lean loop samples what RLlib's SingleAgentEnvRunner samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module.env_to_module_pipeline import EnvToModulePipeline
from ray.rllib.connectors.module_to_env.module_to_env_pipeline import ModuleToEnvPipeline
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import (
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT,
)
from ray.rllib.utils.metrics.utils import to_snake_case

from rllib_trl.connectors.fused import ENV_TO_MODULE_TAIL, MODULE_TO_ENV
from rllib_trl.env_runner import TRPLEnvRunner
from rllib_trl.trpl import TRPLConfig
from tests.algorithm.helpers import small_config
from tests.connectors.test_fused import _assert_same_episodes, _assert_same_states, _metric_keys


def _pair(config) -> tuple[TRPLEnvRunner, SingleAgentEnvRunner]:
    """Ours (counting its lean calls), and RLlib's runner with RLlib's own connector loop
    over the same pieces."""
    assert config.env_runner_cls is TRPLEnvRunner
    theirs = SingleAgentEnvRunner(config=config)
    theirs._env_to_module.__class__ = EnvToModulePipeline
    theirs._module_to_env.__class__ = ModuleToEnvPipeline
    ours = TRPLEnvRunner(config=config)
    ours.lean_calls = 0
    lean = ours._sample_lean

    def counted(*args, **kwargs):
        ours.lean_calls += 1
        return lean(*args, **kwargs)

    ours._sample_lean = counted
    return ours, theirs


def _assert_same_columns(ours: list, theirs: list) -> None:
    """Beyond ``_assert_same_episodes``: infos, and every extra model output column."""
    for a, b in zip(ours, theirs, strict=True):
        assert a.get_infos() == b.get_infos()
        assert sorted(a.extra_model_outputs) == sorted(b.extra_model_outputs)
        for key in a.extra_model_outputs:
            x, y = np.asarray(a.get_extra_model_outputs(key)), np.asarray(b.get_extra_model_outputs(key))
            assert x.dtype == y.dtype and np.array_equal(x, y), key


def _sample(runner, seed: int, **kwargs) -> list:
    torch.manual_seed(seed)  # action noise comes from torch's global generator
    return runner.sample(**kwargs)


class _CountSteps(RLlibCallback):
    """Counts every episode callback with the episode's length at the time."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_episode_step(self, *, episode, env_index, **kwargs):
        self.calls.append(("step", env_index, len(episode)))

    def on_episode_start(self, *, episode, env_index, **kwargs):
        self.calls.append(("start", env_index, len(episode)))

    def on_episode_end(self, *, episode, env_index, **kwargs):
        self.calls.append(("end", env_index, len(episode), episode.get_return()))


class _PassThrough(ConnectorV2):
    """A user's env-to-module piece (it passes the batch through)."""

    def __call__(self, *, rl_module, batch, episodes, **kwargs):
        return batch


# Every single piece's timer: the pipelines' own timers stay.
LEAN_TIMERS_DROPPED = {to_snake_case(cls.__name__) for cls in (*ENV_TO_MODULE_TAIL, *MODULE_TO_ENV)} | {
    "exact_mean_std_filter",
    "discounted_return_stats",
    "vectorised_normalize_and_clip_actions",
}


@pytest.mark.parametrize(
    "case",
    ["diag", "full", "diag-clip", "raw-observations-and-rewards", "step-callback"],
)
def test_lean_loop_samples_what_rllib_samples(case):
    """Hopper, 3 sub-envs, 600 steps in three calls (episodes end, sub-envs autoreset,
    chunks are cut), then deterministic timesteps: the same episodes, filter and return
    statistics, callbacks and metrics (less the single pieces' timers)."""
    config = small_config(cov_type="full" if case == "full" else "diag").env_runners(
        num_env_runners=0, num_envs_per_env_runner=3
    )
    if case == "diag-clip":
        config.environment(normalize_actions=False, clip_actions=True)
    if case == "raw-observations-and-rewards":
        config.training(normalize_observations=False, normalize_rewards=False)
    if case == "step-callback":
        config.callbacks(_CountSteps)
    ours, theirs = _pair(config)
    plan = ours.lean_plan()
    assert plan is not None and plan.step_callbacks == (case == "step-callback")
    assert (plan.obs_filter is None) == (case == "raw-observations-and-rewards")
    for call in range(3):
        a, b = _sample(ours, call, num_timesteps=200), _sample(theirs, call, num_timesteps=200)
        assert ours.lean_calls == call + 1
        assert any(e.is_done for e in b)  # the autoreset path is covered
        _assert_same_episodes(a, b)
        _assert_same_columns(a, b)
        _assert_same_states(ours, theirs)
        for x, y in zip(a, b, strict=True):
            assert x.observation_space == y.observation_space
    mine, rllibs = _metric_keys(ours), _metric_keys(theirs)
    assert set(mine) <= set(rllibs)
    assert {key[-1] for key in set(rllibs) - set(mine)} <= LEAN_TIMERS_DROPPED
    counted = ("episode_return", "episode_len", "num_", "agent_episode", "module_episode")
    counted += ("env_to_module_sum",)
    compared = [key for key in mine if str(key[0]).startswith(counted)]
    assert len(compared) >= 15
    for key in compared:
        assert mine[key] == rllibs[key], key
    for key in (ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN, ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT):
        assert mine[(key,)] == rllibs[(key,)]
    if case == "step-callback":
        assert ours._callbacks[0].calls == theirs._callbacks[0].calls
        assert any(call[0] == "step" for call in ours._callbacks[0].calls)
    # Deterministic timesteps on fresh episodes (GetActions picks the mean; its log-prob
    # rows differ in shape from sampled ones, so RLlib cannot mix both in one episode),
    # then whole episodes (RLlib's loop).
    deterministic = dict(num_timesteps=60, explore=False, force_reset=True)
    a, b = _sample(ours, 5, **deterministic), _sample(theirs, 5, **deterministic)
    assert ours.lean_calls == 4
    _assert_same_episodes(a, b)
    _assert_same_columns(a, b)
    _assert_same_states(ours, theirs)
    a, b = _sample(ours, 7, num_episodes=3, explore=False), _sample(theirs, 7, num_episodes=3, explore=False)
    assert ours.lean_calls == 4  # whole episodes: RLlib's loop
    _assert_same_episodes(a, b)


def test_lean_loop_is_skipped_where_it_does_not_apply():
    """A user's env-to-module piece, or RLlib's unfused pipelines: RLlib's loop runs."""
    config = small_config().env_runners(
        num_env_runners=0,
        num_envs_per_env_runner=2,
        env_to_module_connector=lambda env, spaces, device: _PassThrough(),
    )
    assert TRPLEnvRunner(config=config).lean_plan() is None
    runner = TRPLEnvRunner(config=small_config().env_runners(num_env_runners=0))
    assert runner.lean_plan() is not None
    runner._env_to_module.__class__ = EnvToModulePipeline
    assert runner.lean_plan() is None


def test_a_step_callback_function_keeps_the_step_callbacks():
    config = small_config().env_runners(num_env_runners=0)
    config.callbacks(on_episode_step=lambda **kwargs: None)
    assert TRPLEnvRunner(config=config).lean_plan().step_callbacks


def test_which_env_runner_a_config_gets():
    """TRPLEnvRunner by default, also after a dict round trip; RLlib's choice for
    multi-agent, offline recording and the old stack, or where one is given."""
    config = small_config()
    assert config.env_runner_cls is TRPLEnvRunner
    assert config.to_dict()["env_runner_cls"] is None
    assert TRPLConfig().update_from_dict(config.to_dict()).env_runner_cls is TRPLEnvRunner
    config = small_config().multi_agent(policies={"a", "b"}, policy_mapping_fn=lambda agent_id, *a, **k: "a")
    assert config.env_runner_cls is None
    assert small_config().offline_data(output="/tmp/unused").env_runner_cls is None
    assert small_config().api_stack(False, False).env_runner_cls is None
    config = small_config().env_runners(env_runner_cls=SingleAgentEnvRunner)
    assert config.env_runner_cls is SingleAgentEnvRunner
