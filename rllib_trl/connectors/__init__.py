"""Connector pieces: observation filter and reward scaling with exact cross-EnvRunner merges,
and the evaluation EnvRunners' copy of the training observation statistics (eval_sync)."""

from rllib_trl.connectors.mean_std_filter import ExactMeanStdFilter
from rllib_trl.connectors.reward_scaling import DiscountedReturnStats, ScaleRewards

__all__ = ["DiscountedReturnStats", "ExactMeanStdFilter", "ScaleRewards", "observation_filter"]


def observation_filter(env=None, spaces=None, device=None) -> ExactMeanStdFilter:
    """``env_to_module_connector`` factory for other algorithms (e.g. the PPO baseline):
    in YAML, ``env_to_module_connector: rllib_trl.connectors:observation_filter``."""
    return ExactMeanStdFilter()
