"""``TRPLEnvRunner``: RLlib's ``SingleAgentEnvRunner`` with a leaner per-step loop.

RLlib 2.60's ``SingleAgentEnvRunner._sample`` adds each env step to the episodes with
the raw observation, then runs the env-to-module pipeline, whose observation filter reads
every episode's last observation back, normalises it and writes it into the episode
again (and resets the episode's observation space, a walk over the space, every step);
it calls ``on_episode_step`` per sub-env and step even where no callback defines it.

Where the pipelines are this project's fused ones with nothing but
:class:`~rllib_trl.connectors.mean_std_filter.ExactMeanStdFilter` and
:class:`~rllib_trl.connectors.reward_scaling.DiscountedReturnStats` before RLlib's
default pieces (what ``TRPLConfig`` builds for a Box single-agent env), the loop here:

- normalises the env's stacked observations with ``ExactMeanStdFilter.normalize_rows``
  (the same pushes in the same order) and adds the normalised rows to the episodes;
- updates ``DiscountedReturnStats`` from the env's rewards (``push_step``: the same
  updates, without reading the rewards back from the episodes);
- turns the module's output into env actions with the fused pipeline's code, without
  ``GetActions`` when the module sampled the actions itself (``GetActions`` passes them
  through then);
- calls ``on_episode_step`` only if a callback defines it; ``on_episode_created``,
  ``on_episode_start`` and ``on_episode_end`` are called as RLlib calls them.

Same episodes, filter and return statistics, random draws and metrics, except the timers
of the single connector pieces (the pipeline timers, the module's inference timer and the
env step timer stay; the env-to-module timer here also covers adding the step to the
episodes, which RLlib's loop does outside it); ``tests/test_env_runner.py`` pins it to
RLlib's loop. Anything else (sampling whole episodes, random actions, other pieces,
multi-agent, a stateful module, a non-Box space) takes RLlib's ``_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.module_to_env.normalize_and_clip_actions import NormalizeAndClipActions
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.env_runner import ENV_STEP_FAILURE
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_TO_MODULE_CONNECTOR,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT,
    MODULE_TO_ENV_CONNECTOR,
    RLMODULE_INFERENCE_TIMER,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.spaces.space_utils import unbatch

from rllib_trl.connectors.fused import (
    ENV_TO_MODULE_TAIL,
    MODULE_TO_ENV,
    FusedEnvToModulePipeline,
    FusedModuleToEnvPipeline,
    Timed,
    is_default,
    listify_for_env,
    to_module_tensor,
)
from rllib_trl.connectors.mean_std_filter import ExactMeanStdFilter
from rllib_trl.connectors.reward_scaling import DiscountedReturnStats

ENV_TO_MODULE_TIMER_KWARGS = {"metrics_prefix_key": (ENV_TO_MODULE_CONNECTOR,)}
MODULE_TO_ENV_TIMER_KWARGS = {"metrics_prefix_key": (MODULE_TO_ENV_CONNECTOR,)}


@dataclass
class LeanPlan:
    """The pieces the lean loop runs itself, found once per ``sample`` call."""

    obs_filter: ExactMeanStdFilter | None
    return_stats: DiscountedReturnStats | None
    to_tensor: NumpyToTensor
    actions_piece: NormalizeAndClipActions
    step_callbacks: bool


class TRPLEnvRunner(SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` whose timestep sampling takes the lean loop where it applies."""

    @override(SingleAgentEnvRunner)
    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[SingleAgentEpisode]:
        plan = self.lean_plan() if num_timesteps is not None and not random_actions else None
        if plan is None:
            return super()._sample(
                num_timesteps=num_timesteps,
                num_episodes=num_episodes,
                explore=explore,
                random_actions=random_actions,
                force_reset=force_reset,
            )
        return self._sample_lean(plan, num_timesteps=num_timesteps, explore=explore, force_reset=force_reset)

    def lean_plan(self) -> LeanPlan | None:
        """The pieces for the lean loop, or None where RLlib's loop has to run."""
        env_to_module, module_to_env = self._env_to_module, self._module_to_env
        fused = (FusedEnvToModulePipeline, FusedModuleToEnvPipeline)
        if (type(env_to_module), type(module_to_env)) != fused:
            return None
        if self.module is None or isinstance(self.module, MultiRLModule) or self.module.is_stateful():
            return None
        spaces = (self.env.single_observation_space, self.env.single_action_space)
        if not all(isinstance(space, gym.spaces.Box) for space in spaces):
            return None
        head = list(env_to_module.connectors[: -len(ENV_TO_MODULE_TAIL)])
        tail = env_to_module.connectors[-len(ENV_TO_MODULE_TAIL) :]
        if not (is_default(tail, ENV_TO_MODULE_TAIL) and is_default(module_to_env.connectors, MODULE_TO_ENV)):
            return None
        obs_filter = head.pop(0) if head and type(head[0]) is ExactMeanStdFilter else None
        return_stats = head.pop(0) if head and type(head[0]) is DiscountedReturnStats else None
        if head or (obs_filter is not None and not obs_filter.normalizes_rows()):
            return None
        no_op = RLlibCallback.on_episode_step
        step_callbacks = bool(self.config.callbacks_on_episode_step) or any(
            type(callback).on_episode_step is not no_op for callback in self._callbacks
        )
        return LeanPlan(obs_filter, return_stats, tail[-1], module_to_env.connectors[4], step_callbacks)

    def _sample_lean(
        self, plan: LeanPlan, *, num_timesteps: int, explore: bool, force_reset: bool
    ) -> list[SingleAgentEpisode]:
        """RLlib 2.60's ``_sample`` for ``num_timesteps``, step for step, with the lean
        env-to-module and module-to-env passes."""
        ts = 0
        done_episodes: list[SingleAgentEpisode] = []
        if force_reset or self._needs_initial_reset:
            self._reset_envs_and_episodes(explore)
        num_runners = self.config.num_env_runners or 1
        while ts < num_timesteps:
            to_module, self._cached_to_module = self._cached_to_module, None
            with self.metrics.log_time(RLMODULE_INFERENCE_TIMER):
                if explore:
                    t = (self.num_env_steps_sampled_lifetime // num_runners + ts) * num_runners
                    to_env = self.module.forward_exploration(to_module, t=t)
                else:
                    to_env = self.module.forward_inference(to_module)
            to_env = self._lean_module_to_env(plan, to_env, explore)
            actions = to_env.pop(Columns.ACTIONS)
            actions_for_env = to_env.pop(Columns.ACTIONS_FOR_ENV, actions)
            results = self._try_env_step(actions_for_env)
            if results == ENV_STEP_FAILURE:
                ts = 0  # as RLlib's loop does
                self._reset_envs_and_episodes(explore)
                continue
            actions = list(actions) if isinstance(actions, np.ndarray) else unbatch(actions)
            started, stepped = self._lean_env_to_module(plan, results, actions, to_env)
            ts += stepped
            done_episodes.extend(self._finish_step(plan, started))
        return self._return_chunks(done_episodes, ts)

    def _lean_module_to_env(self, plan: LeanPlan, out: dict[str, Any], explore: bool) -> dict[str, Any]:
        """The fused module-to-env pass; without ``GetActions`` where the module sampled."""
        rows = len(self._ongoing_episodes)
        sampled = Columns.ACTIONS in out and all(
            isinstance(col, torch.Tensor) and col.ndim > 0 and len(col) == rows for col in out.values()
        )
        if not sampled or self._shared_data.get("_added_single_ts_time_rank"):
            return self._module_to_env(
                rl_module=self.module,
                batch=out,
                episodes=self._ongoing_episodes,
                explore=explore,
                shared_data=self._shared_data,
                metrics=self.metrics,
                metrics_prefix_key=(MODULE_TO_ENV_CONNECTOR,),
            )
        with Timed(self.metrics, MODULE_TO_ENV_TIMER_KWARGS):
            return listify_for_env(out, plan.actions_piece)

    def _lean_env_to_module(
        self, plan: LeanPlan, results: tuple, actions: list, to_env: dict[str, Any]
    ) -> tuple[set[int], int]:
        """Add one vector step to the episodes, with observations normalised on the
        stacked array, run the return statistics and cache the module's next input.

        Returns the sub-env indices whose episode was reset in this step and the number
        of env steps added (resets do not count)."""
        observations, rewards, terminateds, truncateds, infos = results
        episodes = self._ongoing_episodes
        started, moved = set(), []
        with Timed(self.metrics, ENV_TO_MODULE_TIMER_KWARGS):
            obs = np.asarray(observations)
            if plan.obs_filter is not None:
                obs = plan.obs_filter.normalize_rows(obs)
            # The episodes get the normalised rows directly (RLlib's loop adds the raw ones
            # and overwrites them; only its private `_last_added_observation` differs,
            # which multi-agent episodes alone read).
            for env_index, episode in enumerate(episodes):
                if not episode.is_reset:
                    episode.add_env_reset(observation=obs[env_index], infos=infos[env_index])
                    if plan.obs_filter is not None:
                        episode.observation_space = plan.obs_filter.observation_space
                    started.add(env_index)
                    moved.append(False)
                    continue
                moved.append(True)
                extra_model_outputs = {key: values[env_index] for key, values in to_env.items()}
                extra_model_outputs[WEIGHTS_SEQ_NO] = self._weights_seq_no
                episode.add_env_step(
                    observation=obs[env_index],
                    action=actions[env_index],
                    reward=rewards[env_index],
                    infos=infos[env_index],
                    terminated=terminateds[env_index],
                    truncated=truncateds[env_index],
                    extra_model_outputs=extra_model_outputs,
                )
            length = sum(map(len, episodes))
            self.metrics.log_value(ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN, length)
            if plan.return_stats is not None:
                plan.return_stats.push_step(episodes, rewards, moved)
            self._shared_data["memorized_map_structure"] = [episode.id_ for episode in episodes]
            # A copy where the tensor would share memory with the rows the episodes hold.
            own = obs if obs.dtype == np.float64 else obs.copy()
            self._cached_to_module = {Columns.OBS: to_module_tensor(own, plan.to_tensor)}
            self.metrics.log_value(ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT, length)
        return started, sum(moved)

    def _finish_step(self, plan: LeanPlan, started: set[int]) -> list[SingleAgentEpisode]:
        """The episode callbacks of one vector step, as RLlib makes them; finished
        episodes are replaced by new ones and returned (numpy'd where configured)."""
        episodes, done = self._ongoing_episodes, []
        for env_index in range(self.num_envs):
            if env_index in started:
                self._make_on_episode_callback("on_episode_start", env_index, episodes)
            elif plan.step_callbacks:
                self._make_on_episode_callback("on_episode_step", env_index, episodes)
            if episodes[env_index].is_done:
                self._make_on_episode_callback("on_episode_end", env_index, episodes)
                episode = episodes[env_index]
                done.append(episode.to_numpy() if self.episodes_to_numpy else episode)
                self._new_episode(env_index, episodes)
        return done

    def _return_chunks(self, done_episodes: list[SingleAgentEpisode], ts: int) -> list[SingleAgentEpisode]:
        """The end of RLlib's ``_sample`` for timesteps: keep the done episodes for the
        metrics, cut the ongoing ones (their continuations collect the next call's
        steps), count the steps and return done episodes, then ongoing chunks."""
        self._done_episodes_for_metrics.extend(done_episodes)
        lookback = self.config.episode_lookback_horizon
        continuations = [episode.cut(len_lookback_buffer=lookback) for episode in self._ongoing_episodes]
        ongoing = []
        for episode in self._ongoing_episodes:
            if episode.t == 0:  # just started: no data to return
                continue
            episode.validate()
            self._ongoing_episodes_for_metrics[episode.id_].append(episode)
            ongoing.append(episode.to_numpy() if self.episodes_to_numpy else episode)
        self._ongoing_episodes = continuations
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, len(done_episodes))
        return done_episodes + ongoing
