"""Flat Tune result keys the CLI reads (RLlib's own constants, joined with "/")."""

from __future__ import annotations

from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    EPISODE_RETURN_MEAN,
    EVALUATION_RESULTS,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
)
from ray.tune.result import TRAINING_ITERATION

ENV_STEPS = NUM_ENV_STEPS_SAMPLED_LIFETIME
ITERATION = TRAINING_ITERATION
RETURN = f"{ENV_RUNNER_RESULTS}/{EPISODE_RETURN_MEAN}"
EVAL_RETURN = f"{EVALUATION_RESULTS}/{RETURN}"
