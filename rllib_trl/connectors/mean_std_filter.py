"""Observation normalisation whose statistics merge exactly across EnvRunners.

RLlib 2.60's ``MeanStdFilter.merge_states`` combines each EnvRunner's *delta*
accumulators, whose mean is not the mean of the new samples; after every broadcast the
merged mean drifts towards 0 and the variance grows by about mean² (DESIGN.md §2).

Here every EnvRunner remembers the statistics it was last given (its *base*). On a
merge, each runner's new samples are recovered exactly as ``full − base`` and combined
into the reference statistics with Chan's parallel formula.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import tree
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.filter import RunningStat
from ray.rllib.utils.numpy import SMALL_NUMBER

from rllib_trl.connectors.running_stats import Stat, combine, subtract
from rllib_trl.deploy import ObservationStats

BASE_KEY = "base_running_stats"


def _to_stat(rs: RunningStat) -> Stat:
    """A copy: RunningStat.push updates its arrays in place."""
    return (
        rs.num_pushes,
        np.array(rs.mean_array, dtype=np.float64),
        np.array(rs.sum_sq_diff_array, dtype=np.float64),
    )


def _set_stat(rs: RunningStat, stat: Stat) -> None:
    n, mean, m2 = stat
    rs.num_pushes = int(n)
    rs.mean_array = np.array(mean, dtype=np.float64)
    rs.sum_sq_diff_array = np.array(m2, dtype=np.float64)
    rs.num_pushes_delta = 0
    rs.mean_delta_array = np.zeros_like(rs.mean_array)
    rs.sum_sq_diff_delta_array = np.zeros_like(rs.mean_array)


def push_all(
    rs: RunningStat, x: np.ndarray, *, with_std: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``rs.push(x_i)`` for each row of ``x`` ``(N, *shape)`` at once; returns the mean
    and std ``(N, *shape)`` that ``rs`` has right after each push (std None without
    ``with_std``).

    Welford's sequential updates m_i = m_{i−1} + (x_i − m_{i−1})/n_i and
    S_i = S_{i−1} + (x_i − m_{i−1})(x_i − m_i) in closed form: m_i = (n_0 m_0 + Σ_{j≤i} x_j)/n_i,
    and S_i as a cumulative sum of those products (equal up to float rounding). The delta
    accumulators move by the same amounts, as ``push`` moves them; the std is
    ``RunningStat.std``'s (float32, 0 while n <= 1).
    """
    n0 = rs.num_pushes
    counts = n0 + np.arange(1, len(x) + 1, dtype=np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    x = x.astype(np.float64, copy=False)
    means = (n0 * rs.mean_array + np.cumsum(x, axis=0)) / counts
    previous = np.concatenate([rs.mean_array[None], means[:-1]], axis=0)
    sq_diffs = rs.sum_sq_diff_array + np.cumsum((x - previous) * (x - means), axis=0)
    mean_change, sq_change = means[-1] - rs.mean_array, sq_diffs[-1] - rs.sum_sq_diff_array
    rs.mean_array = means[-1].copy()
    rs.sum_sq_diff_array = sq_diffs[-1].copy()
    rs.mean_delta_array = rs.mean_delta_array + mean_change
    rs.sum_sq_diff_delta_array = rs.sum_sq_diff_delta_array + sq_change
    rs.num_pushes += len(x)
    rs.num_pushes_delta += len(x)
    if not with_std:
        return means, None
    var = np.where(counts > 1, sq_diffs / np.maximum(counts - 1.0, 1.0), 0.0).astype(np.float32)
    return means, np.sqrt(np.maximum(0, var))


class ExactMeanStdFilter(MeanStdFilter):
    """``MeanStdFilter`` with an exact cross-EnvRunner merge; same options and state.

    For single-agent episodes with a Box observation, one call normalises every
    episode's last observation with vectorised updates (``push_all``), where RLlib's
    filter pushes them one by one (two ``RunningStat`` pushes per observation: about a
    sixth of an EnvRunner's time per env step here). Each observation is still
    normalised with the statistics that include it and those before it, in episode
    order, as RLlib's does.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._base: dict[Any, list[Stat]] = {}

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, explore=None, persistent_data=None, **kwargs) -> Any:
        single_agent = episodes and all(isinstance(e, SingleAgentEpisode) for e in episodes)
        if not single_agent or not self.normalizes_rows():
            return super().__call__(
                rl_module=rl_module, batch=batch, episodes=episodes, explore=explore, **kwargs
            )
        obs = np.stack([np.asarray(e.get_observations(indices=-1)) for e in episodes])
        normalized = self.normalize_rows(obs)
        for episode, new in zip(episodes, normalized, strict=True):
            episode.set_observations(at_indices=-1, new_data=new)
            episode.observation_space = self.observation_space
        return batch

    def normalizes_rows(self) -> bool:
        """One agent with one flat statistic (a Box observation): ``normalize_rows`` applies."""
        if self._filters is None:
            self._init_new_filters()
        agent_filter = None if self._multi_agent else self._filters.get(None)
        return agent_filter is not None and isinstance(agent_filter.running_stats, RunningStat)

    def normalize_rows(self, obs: np.ndarray) -> np.ndarray:
        """Push the single agent's observations ``(N, *shape)``, in row order, and return
        each normalised with the statistics right after its own push ``(N, *shape)``, same
        dtype (frozen statistics where ``update_stats`` is off). What ``__call__`` does to
        the episodes' last observations; ``TRPLEnvRunner`` calls it on the env's array."""
        agent_filter = self._filters[None]
        if self._update_stats:
            mean, std = push_all(agent_filter.running_stats, obs)
            push_all(agent_filter.buffer, obs, with_std=False)
        else:
            mean, std = agent_filter.running_stats.mean, agent_filter.running_stats.std
        normalized = obs
        if agent_filter.demean:
            normalized = normalized - mean
        if agent_filter.destd:
            normalized = normalized / (std + SMALL_NUMBER)
        if agent_filter.clip:
            normalized = np.clip(normalized, -agent_filter.clip, agent_filter.clip)
        return normalized.astype(obs.dtype)

    def _flat_stats(self, agent_id: Any) -> list[RunningStat]:
        return list(tree.flatten(self._filters[agent_id].running_stats))

    @override(ConnectorV2)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        for agent_id, agent_state in state.items():
            base = self._base.get(agent_id)
            if base is None:
                base = [_to_stat(RunningStat(rs.shape)) for rs in self._flat_stats(agent_id)]
            agent_state[BASE_KEY] = [(n, m.tolist(), s.tolist()) for n, m, s in base]
        return state

    @override(ConnectorV2)
    def set_state(self, state: dict[str, Any]) -> None:
        # Copy: RunningStat.from_state keeps the given arrays, and a local EnvRunner may
        # share one state object with the reference filter.
        super().set_state(copy.deepcopy(state))
        # What we were just given is the base our new samples will be measured from.
        self._base = {agent_id: [_to_stat(rs) for rs in self._flat_stats(agent_id)] for agent_id in state}

    @override(ConnectorV2)
    def merge_states(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        if self._filters is None:
            self._init_new_filters()
        for agent_id, ref in self._filters.items():
            merged = [_to_stat(rs) for rs in tree.flatten(ref.running_stats)]
            for state in states:
                agent_state = state.get(agent_id)
                if agent_state is None:
                    continue
                full = [_to_stat(RunningStat.from_state(s)) for s in agent_state["running_stats"]]
                base = agent_state.get(BASE_KEY)
                base = [(n, np.asarray(m), np.asarray(s)) for n, m, s in base] if base else None
                for i, stat in enumerate(full):
                    new = subtract(stat, base[i]) if base else stat
                    merged[i] = combine(merged[i], new)
            for rs, stat in zip(tree.flatten(ref.running_stats), merged, strict=False):
                _set_stat(rs, stat)
        out = MeanStdFilter._get_state_from_filters(self._filters)
        return copy.deepcopy(out)


def filter_stats(obs_filter: MeanStdFilter | None, agent_id: Any = None) -> ObservationStats | None:
    """The statistics ``obs_filter`` normalises ``agent_id``'s observations with, frozen
    (None: no filter, or no statistics yet). Raises ``ValueError`` for a nested
    observation space (several running statistics per agent)."""
    if obs_filter is None or obs_filter._filters is None:
        return None
    agent_filter = obs_filter._filters[agent_id]
    stats = tree.flatten(agent_filter.running_stats)
    if len(stats) != 1:
        raise ValueError("only Box observations are supported; these are a nested space")
    (stat,) = stats
    return ObservationStats(
        mean=np.asarray(stat.mean),
        std=np.asarray(stat.std),
        clip=agent_filter.clip,
        demean=agent_filter.demean,
        destd=agent_filter.destd,
    )
