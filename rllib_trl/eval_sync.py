"""Moved to :mod:`rllib_trl.connectors.eval_sync`; this name stays for YAML files and
checkpoints that refer to ``rllib_trl.eval_sync:SyncEvalObservationFilter``."""

from rllib_trl.connectors.eval_sync import (  # noqa: F401
    SyncEvalObservationFilter,
    sync_eval_observation_filter,
    training_connector_state,
)
