"""Evaluation EnvRunners must normalise observations with the training statistics.

RLlib 2.60 skips the connector-state sync when evaluation runs on the local EnvRunner
only (``evaluation_num_env_runners=0``, the default), so the evaluation filter starts
from empty statistics. ``TRPL`` calls :func:`sync_eval_observation_filter` before every
evaluation; other algorithms (e.g. the PPO baselines) get the same through the callback
:class:`SyncEvalObservationFilter` (YAML: ``callbacks_class:
rllib_trl.connectors.eval_sync:SyncEvalObservationFilter``).
"""

from __future__ import annotations

import copy

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core import COMPONENT_ENV_TO_MODULE_CONNECTOR
from ray.rllib.utils.annotations import override


def training_connector_state(algorithm) -> dict:
    """The env-to-module state (observation statistics) of all training EnvRunners, merged
    now: RLlib merges them at the end of an iteration, after evaluation has run."""
    group = algorithm.env_runner_group
    local = group.local_env_runner
    if group.num_healthy_remote_workers() == 0 or local is None:
        return local.get_state(components=COMPONENT_ENV_TO_MODULE_CONNECTOR) if local else {}
    states = group.foreach_env_runner(
        lambda runner: runner.get_state(components=COMPONENT_ENV_TO_MODULE_CONNECTOR)[
            COMPONENT_ENV_TO_MODULE_CONNECTOR
        ],
        local_env_runner=False,
    )
    # Merge on a copy: the local pipeline holds the reference statistics of the next sync.
    reference = copy.deepcopy(local._env_to_module)
    return {COMPONENT_ENV_TO_MODULE_CONNECTOR: reference.merge_states(states)}


def sync_eval_observation_filter(algorithm) -> None:
    """Give the evaluation EnvRunners the training EnvRunners' merged statistics."""
    if algorithm.eval_env_runner_group is None or algorithm.env_runner_group is None:
        return
    state = training_connector_state(algorithm)
    if state:
        algorithm.eval_env_runner_group.foreach_env_runner(
            lambda runner: runner.set_state(state), local_env_runner=True
        )


class SyncEvalObservationFilter(RLlibCallback):
    """Runs :func:`sync_eval_observation_filter` at the start of every evaluation."""

    @override(RLlibCallback)
    def on_evaluate_start(self, *, algorithm, metrics_logger=None, **kwargs) -> None:
        sync_eval_observation_filter(algorithm)
