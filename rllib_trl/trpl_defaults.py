"""The keys TRPL adds to PPO's ``training()``, with their defaults (no Ray import: the
real-step metrics of the PPO baselines and the plot read the bounds from here)."""

from __future__ import annotations

from typing import Any

ADVANTAGE_NORMALIZATIONS = ("batch", "minibatch")

# `training()` keys that TRPL adds to PPO's, with their defaults.
TRPL_DEFAULTS: dict[str, Any] = {
    "projection": "kl",
    "mean_bound": 0.03,
    "cov_bound": 0.001,
    "trust_region_coeff": 8.0,
    "scale_prec": True,
    "entropy_schedule": None,
    "target_entropy": None,
    "temperature": 0.5,
    "entropy_eq": False,
    "entropy_first": False,
    "entropy_schedule_steps": 1_000_000,
    "vf_lr": 3e-4,
    # None: the value net trains in the policy's minibatches. A number: it trains alone
    # first, for that many epochs in minibatches of `vf_minibatch_size` (the official
    # TRPL regime), and the policy's minibatches leave it alone.
    "vf_num_epochs": None,
    "vf_minibatch_size": None,
    # "batch": RLlib's GAE standardises the advantages over the whole train batch.
    # "minibatch": each policy minibatch standardises them again over its own rows, as
    # the official TRPL implementation does.
    "advantage_normalization": "batch",
    "projection_dtype": "float64",
    "normalize_observations": True,
    # None: on for the new API stack, off on the old one (its RolloutWorkers have no
    # reward-statistics connector); see `rewards_normalized`.
    "normalize_rewards": None,
    "reward_clip": 10.0,
}
