"""Extreme but valid inputs: no NaN or Inf in values or gradients, bounds still hold."""

from __future__ import annotations

import itertools

import pytest
import torch

from rllib_trl.projections import get_trust_region
from tests.projections.helpers import MEASURES, random_spd


def _finite_run(measure, mean, scale, old_mean, old_scale, mean_bound, cov_bound):
    tr = get_trust_region(measure)
    leaves = [t.clone().requires_grad_(True) for t in (mean, scale, old_mean, old_scale)]
    p_mean, p_scale = tr.project(*leaves, mean_bound=mean_bound, cov_bound=cov_bound)
    assert torch.isfinite(p_mean).all() and torch.isfinite(p_scale).all()
    loss = p_mean.square().sum() + p_scale.square().sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    for g in grads:
        assert g is None or torch.isfinite(g).all()
    return tr.parts(p_mean.detach(), p_scale.detach(), old_mean, old_scale)


STDS = [1e-6, 1e-3, 1.0, 1e3]
BOUNDS = [1e-6, 1e-2, 10.0]


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("bound", BOUNDS)
def test_diagonal_extreme_stds(measure, bound):
    pairs = list(itertools.product(STDS, STDS))
    old_scale = torch.tensor([[a, a, a] for a, _ in pairs], dtype=torch.float64)
    scale = torch.tensor([[b, b * 2, b / 2] for _, b in pairs], dtype=torch.float64)
    old_mean = torch.zeros_like(scale)
    mean = old_mean + 1e4 * old_scale  # 1e4 std shift
    d_mean, d_cov = _finite_run(measure, mean, scale, old_mean, old_scale, bound, bound)
    assert (d_mean <= bound * (1 + 1e-6)).all()
    if measure != "frobenius":  # Frobenius in absolute units: bound checked below at moderate scales
        assert (d_cov <= bound * (1 + 1e-6)).all()


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("bound", BOUNDS)
def test_full_ill_conditioned(measure, bound):
    gen = torch.Generator().manual_seed(0)
    k = 4
    # condition number 1e6 for both the new and the old covariance
    old_cov = random_spd(gen, 6, k, -3 * 2.3026, 3 * 2.3026, torch.float64)
    cov = random_spd(gen, 6, k, -3 * 2.3026, 3 * 2.3026, torch.float64)
    old_scale, scale = torch.linalg.cholesky(old_cov), torch.linalg.cholesky(cov)
    old_mean = torch.zeros(6, k, dtype=torch.float64)
    mean = old_mean + 1e4 * torch.diagonal(old_scale, dim1=-2, dim2=-1)
    d_mean, d_cov = _finite_run(measure, mean, scale, old_mean, old_scale, bound, bound)
    assert (d_mean <= bound * (1 + 1e-6)).all()
    assert (d_cov <= bound * (1 + 1e-5)).all()


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_new_equals_old(measure, full, dtype):
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 3, generator=gen, dtype=dtype)
    if full:
        scale = torch.linalg.cholesky(random_spd(gen, 5, 3, -1, 1, dtype))
    else:
        scale = torch.rand(5, 3, generator=gen, dtype=dtype) + 0.1
    for bound in BOUNDS:
        d_mean, d_cov = _finite_run(measure, mean, scale, mean.clone(), scale.clone(), bound, bound)
        assert (d_mean.abs() < 1e-5).all() and (d_cov.abs() < 1e-4).all()
