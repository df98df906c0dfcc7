"""Invalid input is rejected with a ValueError naming the argument."""

from __future__ import annotations

import pytest
import torch

from rllib_trl.projections import entropy_bound, get_trust_region, kl_parts
from tests.projections.helpers import MEASURES, random_pair

ARGS = random_pair(0, 4, 3, False)
FULL_ARGS = random_pair(0, 4, 3, True)


@pytest.mark.parametrize("measure", MEASURES + ("none",))
@pytest.mark.parametrize("bound_name", ["mean_bound", "cov_bound"])
@pytest.mark.parametrize("value", [0.0, -0.1, float("nan"), float("inf")])
def test_non_positive_bound(measure, bound_name, value):
    bounds = {"mean_bound": 0.1, "cov_bound": 0.1, bound_name: value}
    with pytest.raises(ValueError, match=bound_name):
        get_trust_region(measure).project(*ARGS, **bounds)


@pytest.mark.parametrize("measure", MEASURES)
def test_mismatched_mean_shape(measure):
    mean, scale, old_mean, old_scale = ARGS
    with pytest.raises(ValueError, match="old_mean"):
        get_trust_region(measure).project(
            mean, scale, old_mean[:, :2], old_scale, mean_bound=0.1, cov_bound=0.1
        )


@pytest.mark.parametrize("measure", MEASURES)
def test_wrong_scale_shape(measure):
    mean, scale, old_mean, old_scale = ARGS
    with pytest.raises(ValueError, match="scale"):
        get_trust_region(measure).project(
            mean, scale[:, :2], old_mean, old_scale, mean_bound=0.1, cov_bound=0.1
        )


def test_mixed_forms():
    mean, scale, old_mean, _ = ARGS
    with pytest.raises(ValueError, match="old_scale"):
        kl_parts(mean, scale, old_mean, FULL_ARGS[3])


@pytest.mark.parametrize("measure", MEASURES)
def test_non_positive_std(measure):
    mean, scale, old_mean, old_scale = ARGS
    bad = scale.clone()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="scale must be a std"):
        get_trust_region(measure).project(mean, bad, old_mean, old_scale, mean_bound=0.1, cov_bound=0.1)
    with pytest.raises(ValueError, match="old_scale must be a std"):
        get_trust_region(measure).project(mean, scale, old_mean, bad, mean_bound=0.1, cov_bound=0.1)


@pytest.mark.parametrize("measure", MEASURES)
def test_not_a_cholesky_factor(measure):
    mean, scale, old_mean, old_scale = FULL_ARGS
    upper = scale.clone()
    upper[:, 0, 2] = 0.5
    with pytest.raises(ValueError, match="scale must be lower triangular"):
        get_trust_region(measure).project(mean, upper, old_mean, old_scale, mean_bound=0.1, cov_bound=0.1)
    neg = old_scale.clone()
    neg[:, 1, 1] = -neg[:, 1, 1]
    with pytest.raises(ValueError, match="old_scale must be a lower Cholesky factor"):
        get_trust_region(measure).project(mean, scale, old_mean, neg, mean_bound=0.1, cov_bound=0.1)


def test_unknown_projection_name():
    with pytest.raises(ValueError, match="projection must be one of"):
        get_trust_region("kll")


def test_unknown_entropy_schedule():
    with pytest.raises(ValueError, match="entropy_schedule"):
        entropy_bound(
            "cosine",
            initial_entropy=1.0,
            target_entropy=0.0,
            temperature=0.5,
            step=1,
            total_steps=2,
            action_dim=3,
        )


def test_integer_tensors_rejected():
    mean = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="floating"):
        kl_parts(mean, torch.ones(2, 3, dtype=torch.int64), mean, torch.ones(2, 3, dtype=torch.int64))
