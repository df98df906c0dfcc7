"""Connector pieces: observation filter with an exact cross-EnvRunner merge."""

from rllib_trl.connectors.mean_std_filter import ExactMeanStdFilter

__all__ = ["ExactMeanStdFilter"]
