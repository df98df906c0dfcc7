"""The end-of-training report reads a trial's last finite metric (RLlib leaves the
episode return NaN in iterations where no episode ended)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd

from rllib_trl.cli.train import last_reported

METRIC = "env_runners/episode_return_mean"


def _trial(values, steps):
    frame = pd.DataFrame({METRIC: values, "num_env_steps_sampled_lifetime": steps})
    return SimpleNamespace(metrics_dataframe=frame)


def test_last_finite_value_and_its_steps():
    trial = _trial([math.nan, 10.0, 12.5, math.nan, math.inf, math.nan], [256, 512, 768, 1024, 1280, 1536])
    assert last_reported(trial, METRIC) == (12.5, 768)


def test_never_reported():
    assert last_reported(_trial([math.nan, math.nan], [256, 512]), METRIC) is None
    assert last_reported(SimpleNamespace(metrics_dataframe=pd.DataFrame({"x": [1]})), METRIC) is None
    assert last_reported(SimpleNamespace(metrics_dataframe=None), METRIC) is None
