"""Reward normalisation as Stable-Baselines3's VecNormalize does it: divide rewards by
the running std of the discounted return and clip.

Two pieces:
- :class:`DiscountedReturnStats` (env-to-module, on EnvRunners) keeps, per ongoing
  episode, G ← γ G + r and, per agent, the running statistics of G; it merges exactly across
  EnvRunners (each runner's new samples = its statistics − the base it was last given)
  and stamps the current scale sqrt(Var[G] + 1e-8) into each episode's ``custom_data``.
- :class:`ScaleRewards` (learner connector) divides each episode chunk's rewards in
  the train batch by that scale and clips them, right before GAE. Logged returns stay
  in raw reward units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.annotations import override

from rllib_trl.connectors.running_stats import Stat, combine, stat_of, subtract

REWARD_SCALE_KEY = "reward_scale"
EPSILON = 1e-8


def _empty() -> Stat:
    return 0, np.zeros(()), np.zeros(())


def _encode(stat: Stat) -> list:
    return [int(stat[0]), float(stat[1]), float(stat[2])]


def _decode(data: list) -> Stat:
    return int(data[0]), np.asarray(float(data[1])), np.asarray(float(data[2]))


def scale_of(stat: Stat) -> float:
    """sqrt(Var[G] + ε): the divisor for rewards (1 before any data)."""
    n, _, m2 = stat
    var = float(m2) / n if n > 0 else 1.0
    return float(np.sqrt(var + EPSILON))


class DiscountedReturnStats(ConnectorV2):
    """Running statistics of the discounted return, on EnvRunners (env-to-module).

    One statistic per agent (the key ``None`` in single-agent runs), as RLlib's
    ``MeanStdFilter(multi_agent=True)`` keeps one observation filter per agent.
    """

    def __init__(
        self, input_observation_space=None, input_action_space=None, *, gamma: float = 0.99, **kwargs
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.gamma = gamma
        self._stats: dict[Any, Stat] = {}  # agent id -> statistics of G
        self._bases: dict[Any, Stat] = {}  # agent id -> what this runner was last given
        self._returns: dict[str, float] = {}  # (single-agent) episode id -> G
        self._seen_t: dict[str, int] = {}  # episode id -> last env step counted

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs) -> Any:
        # Called after every env step: Python floats per episode and one statistics
        # update per agent and call, then every episode gets its agent's updated scale
        # (as SB3's VecNormalize updates on all envs' returns, then scales).
        returns: dict[Any, list[float]] = {}
        visited = []
        for top in episodes:  # single-agent episodes, or multi-agent ones holding them
            agent_episodes = list(self.single_agent_episode_iterator([top], agents_that_stepped_only=False))
            for episode in agent_episodes:
                seen = self._seen_t.get(episode.id_, episode.t_started)
                if episode.t > seen:
                    new_rewards = episode.get_rewards(slice(seen - episode.t_started, None))
                    self._advance(episode, new_rewards, returns.setdefault(episode.agent_id, []))
                if episode.is_done:
                    self._returns.pop(episode.id_, None)
                visited.append(episode)
            if top.is_done:
                # Only now: an agent that finished early is still visited while the others
                # play on, and must not be counted again from its start.
                for episode in agent_episodes:
                    self._seen_t.pop(episode.id_, None)
        self._push_and_stamp(returns, visited)
        return batch

    def push_step(self, episodes: list, rewards: np.ndarray, stepped: list[bool]) -> None:
        """``__call__`` for single-agent episodes right after one vector env step, where
        ``episodes[i]`` got the reward ``rewards[i]`` if ``stepped[i]`` and was just reset
        otherwise (``TRPLEnvRunner``'s loop): the same updates, without reading the
        rewards back from the episodes (unless an episode moved more than one step since
        it was last seen: then all its new rewards, as ``__call__`` takes them)."""
        returns: list[float] = []
        for episode, reward, moved in zip(episodes, rewards, stepped, strict=True):
            if moved:
                seen = self._seen_t.get(episode.id_, episode.t_started)
                if seen == episode.t - 1:
                    new = (reward,)
                else:  # moved more than once since last seen: all its new rewards
                    new = episode.get_rewards(slice(seen - episode.t_started, None))
                self._advance(episode, new, returns)
            if episode.is_done:
                self._returns.pop(episode.id_, None)
                self._seen_t.pop(episode.id_, None)
        self._push_and_stamp({None: returns} if returns else {}, episodes)

    def _advance(self, episode, new_rewards, out: list[float]) -> None:
        """G ← γ G + r over the episode's rewards since the last call, each G into ``out``."""
        g = self._returns.get(episode.id_, 0.0)
        for r in new_rewards:
            g = self.gamma * g + float(r)
            out.append(g)
        self._returns[episode.id_], self._seen_t[episode.id_] = g, episode.t

    def _push_and_stamp(self, returns: dict[Any, list[float]], episodes: list) -> None:
        """Add each agent's new returns to its statistics, then give every episode its
        agent's current scale."""
        for agent_id, agent_returns in returns.items():
            self._stats[agent_id] = combine(self._stats.get(agent_id, _empty()), stat_of(agent_returns))
        scales: dict[Any, float] = {}  # once per agent, not per episode (this runs every env step)
        for episode in episodes:
            agent_id = episode.agent_id
            if agent_id not in scales:
                scales[agent_id] = scale_of(self._stats.get(agent_id, _empty()))
            episode.custom_data[REWARD_SCALE_KEY] = scales[agent_id]

    @override(ConnectorV2)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        return {
            "stat": {agent: _encode(stat) for agent, stat in self._stats.items()},
            "base": {agent: _encode(stat) for agent, stat in self._bases.items()},
            "gamma": self.gamma,
        }

    @override(ConnectorV2)
    def set_state(self, state: dict[str, Any]) -> None:
        self._stats = _decode_agents(state["stat"])
        self._bases = dict(self._stats)  # new samples are measured from what we were given

    @override(ConnectorV2)
    def merge_states(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        merged = dict(self._stats)
        for state in states:
            bases = _decode_agents(state["base"])
            for agent, stat in _decode_agents(state["stat"]).items():
                new = subtract(stat, bases.get(agent, _empty()))
                merged[agent] = combine(merged.get(agent, _empty()), new)
        self._stats = merged
        encoded = {agent: _encode(stat) for agent, stat in merged.items()}
        return {"stat": encoded, "base": dict(encoded), "gamma": self.gamma}


def _decode_agents(data: dict | list) -> dict[Any, Stat]:
    """Per-agent statistics; a checkpoint written before they were per agent holds one
    ``[n, mean, m2]`` list, the single agent's (key None)."""
    if isinstance(data, list):
        return {None: _decode(data)}
    return {agent: _decode(stat) for agent, stat in data.items()}


class ScaleRewards(ConnectorV2):
    """Learner connector, placed right before GAE: r ← clip(r / scale, −clip, clip).

    Works on the batch's reward column, not on the episodes, which the EnvRunner may
    still hold for its return metrics. Rows follow the episodes in iteration order,
    ``len(episode)`` rows each, as GAE assumes too.
    """

    def __init__(
        self, input_observation_space=None, input_action_space=None, *, clip: float = 10.0, **kwargs
    ):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.clip = clip

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs) -> Any:
        sa_episodes = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        for module_id, module_batch in batch.items():
            if not isinstance(module_batch, dict) or Columns.REWARDS not in module_batch:
                continue
            scales = [
                np.full(len(e), e.custom_data.get(REWARD_SCALE_KEY, 1.0))
                for e in sa_episodes
                if e.module_id in (None, module_id)
            ]
            rewards = module_batch[Columns.REWARDS]
            scale = torch.as_tensor(np.concatenate(scales), dtype=rewards.dtype, device=rewards.device)
            module_batch[Columns.REWARDS] = (rewards / scale).clamp(-self.clip, self.clip)
        return batch
