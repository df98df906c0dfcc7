"""Every projected state satisfies its bounds; inside states are untouched; outside
states land on the boundary."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rllib_trl.projections import get_trust_region
from tests.projections.helpers import MEASURES, random_pair

KS = [1, 2, 3, 6, 17]


@settings(max_examples=int(os.environ.get("TRPL_HYPOTHESIS_EXAMPLES", "40")), deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.sampled_from(KS),
    full=st.booleans(),
    measure=st.sampled_from(MEASURES),
    scale_prec=st.booleans(),
    mean_bound=st.floats(1e-4, 1.0),
    cov_bound=st.floats(1e-4, 1.0),
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
def test_bounds_hold(seed, k, full, measure, scale_prec, mean_bound, cov_bound, dtype):
    tr = get_trust_region(measure, scale_prec=scale_prec)
    mean, scale, old_mean, old_scale = random_pair(seed, 16, k, full, dtype=dtype, shift=2.0, spread=2.0)
    d_mean, d_cov = tr.parts(mean, scale, old_mean, old_scale)
    p_mean, p_scale = tr.project(mean, scale, old_mean, old_scale, mean_bound=mean_bound, cov_bound=cov_bound)
    assert p_mean.shape == mean.shape and p_scale.shape == scale.shape and p_scale.dtype == dtype
    # Measure in float64: a float32 KL of two nearby Gaussians cancels to ~0.3% error,
    # which would hide how close the float32 projection itself lands.
    pd_mean, pd_cov = tr.parts(*(t.double() for t in (p_mean, p_scale, old_mean, old_scale)))
    # float32 resolves a KL of ~1e-4 between full covariances to ~0.5% only (its terms
    # are O(1) and cancel); projection_dtype defaults to float64 for this reason.
    rtol = 1e-6 if dtype == torch.float64 else 1e-2
    assert (pd_mean <= mean_bound * (1 + rtol)).all()
    assert (pd_cov <= cov_bound * (1 + rtol)).all()

    inside_mean = d_mean <= mean_bound
    assert torch.equal(p_mean[inside_mean], mean[inside_mean])
    inside_cov = d_cov <= cov_bound
    assert torch.equal(p_scale[inside_cov], scale[inside_cov])
    # outside states land on the boundary
    assert torch.allclose(
        pd_mean[~inside_mean], torch.full_like(pd_mean[~inside_mean], mean_bound), rtol=rtol
    )
    assert torch.allclose(
        pd_cov[~inside_cov], torch.full_like(pd_cov[~inside_cov], cov_bound), rtol=rtol * 10
    )


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("k", KS)
def test_kl_lands_on_boundary_float64(full, k):
    mean, scale, old_mean, old_scale = random_pair(k, 64, k, full, spread=3.0)
    tr = get_trust_region("kl")
    cov_bound = 1e-3
    _, d_cov = tr.parts(mean, scale, old_mean, old_scale)
    _, p_scale = tr.project(mean, scale, old_mean, old_scale, mean_bound=1.0, cov_bound=cov_bound)
    _, pd_cov = tr.parts(mean, p_scale, old_mean, old_scale)
    outside = d_cov > cov_bound
    assert outside.sum() > 10
    assert ((pd_cov[outside] - cov_bound).abs() <= 1e-8 * cov_bound).all()


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("full", [False, True])
def test_inside_states_have_identity_gradient(measure, full):
    mean, scale, old_mean, old_scale = random_pair(3, 8, 3, full, shift=1e-3, spread=1e-3)
    mean.requires_grad_(True)
    scale.requires_grad_(True)
    tr = get_trust_region(measure)
    p_mean, p_scale = tr.project(mean, scale, old_mean, old_scale, mean_bound=10.0, cov_bound=10.0)
    w_mean, w_scale = torch.randn_like(mean), torch.randn_like(scale)
    g_mean, g_scale = torch.autograd.grad((p_mean * w_mean).sum() + (p_scale * w_scale).sum(), (mean, scale))
    assert torch.equal(g_mean, w_mean)
    assert torch.equal(g_scale, w_scale)


@pytest.mark.parametrize("measure", MEASURES)
def test_leading_batch_shape(measure):
    mean, scale, old_mean, old_scale = random_pair(5, 24, 4, True, spread=2.0)
    tr = get_trust_region(measure)
    flat = tr.project(mean, scale, old_mean, old_scale, mean_bound=0.01, cov_bound=0.01)
    shaped = tr.project(
        mean.reshape(2, 3, 4, 4),
        scale.reshape(2, 3, 4, 4, 4),
        old_mean.reshape(2, 3, 4, 4),
        old_scale.reshape(2, 3, 4, 4, 4),
        mean_bound=0.01,
        cov_bound=0.01,
    )
    assert torch.allclose(shaped[0].reshape(24, 4), flat[0])
    assert torch.allclose(shaped[1].reshape(24, 4, 4), flat[1])


def test_none_is_identity():
    mean, scale, old_mean, old_scale = random_pair(0, 8, 3, False, shift=5.0, spread=3.0)
    p_mean, p_scale = get_trust_region("none").project(
        mean, scale, old_mean, old_scale, mean_bound=0.01, cov_bound=0.01
    )
    assert p_mean is mean and p_scale is scale
