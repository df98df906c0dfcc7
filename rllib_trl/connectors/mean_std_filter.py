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
from ray.rllib.utils.annotations import override
from ray.rllib.utils.filter import RunningStat

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


class ExactMeanStdFilter(MeanStdFilter):
    """``MeanStdFilter`` with an exact cross-EnvRunner merge; same options and state."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._base: dict[Any, list[Stat]] = {}

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
