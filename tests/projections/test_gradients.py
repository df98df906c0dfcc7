"""gradcheck in float64 through every projection, active and inactive, w.r.t. new and
old parameters (the KL multiplier's implicit gradient included)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from rllib_trl.projections import entropy_projection, get_trust_region
from tests.projections.helpers import random_pair


def _lower(x: torch.Tensor) -> torch.Tensor:
    """gradcheck perturbs every entry: keep the factor lower triangular inside the function."""
    return torch.tril(x)


MEASURE_OPTIONS = [("kl", True)] + [(m, p) for m in ("frobenius", "wasserstein") for p in (True, False)]


@pytest.mark.parametrize("measure, scale_prec", MEASURE_OPTIONS)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("case", ["active", "inactive"])
def test_gradcheck(measure, full, case, scale_prec):
    big = case == "active"
    mean, scale, old_mean, old_scale = random_pair(
        21, 4, 3, full, shift=3.0 if big else 1e-3, spread=2.0 if big else 1e-3
    )
    bound = 1e-3 if big else 10.0
    tr = get_trust_region(measure, scale_prec=scale_prec)
    _, d_cov = tr.parts(mean, scale, old_mean, old_scale)
    assert bool((d_cov > bound).all()) == big and bool((d_cov <= bound).all()) != big

    def fn(m, s, om, os_):
        if full:
            s, os_ = _lower(s), _lower(os_)
        return tr.project(m, s, om, os_, mean_bound=bound, cov_bound=bound)

    inputs = tuple(t.clone().requires_grad_(True) for t in (mean, scale, old_mean, old_scale))
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("equality", [False, True])
def test_entropy_projection_gradcheck(full, equality):
    mean, scale, _, _ = random_pair(2, 4, 3, full)

    def fn(s):
        return entropy_projection(mean, _lower(s) if full else s, entropy_bound=4.0, equality=equality)[1]

    assert gradcheck(fn, (scale.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)
