"""The diagonal KL projection's one-node forward and written-out backward: the torch
path (other devices) and the NumPy path (CPU) agree, gradients match finite differences
in a batch mixing moved and unmoved states, and unmoved states pass through exactly."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from rllib_trl.projections import kl_diag, kl_projection
from tests.projections.helpers import random_pair


@pytest.fixture(params=["numpy", "torch"])
def path(request, monkeypatch):
    if request.param == "torch":
        monkeypatch.setattr(kl_diag, "_numpy_path", lambda t: False)
    return request.param


def test_gradcheck_mixed_batch(path):
    """Some states move in mean only, some in std only, some in both, some in neither."""
    mean, scale, old_mean, old_scale = random_pair(5, 24, 3, False, shift=0.3, spread=0.3)
    inputs = tuple(t.clone().requires_grad_(True) for t in (mean, scale, old_mean, old_scale))
    fn = lambda m, s, om, os_: kl_projection(m, s, om, os_, mean_bound=0.01, cov_bound=0.005)  # noqa: E731
    p_mean, p_scale = fn(*inputs)
    moved_mean = (p_mean != mean).any(-1)
    moved_std = (p_scale != scale).any(-1)
    assert moved_mean.any() and (~moved_mean).any() and moved_std.any() and (~moved_std).any()
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_unmoved_states_pass_through_exactly(path):
    mean, scale, old_mean, old_scale = random_pair(6, 32, 4, False, shift=0.3, spread=0.3)
    leaves = [t.clone().requires_grad_(True) for t in (mean, scale, old_mean, old_scale)]
    p_mean, p_scale = kl_projection(*leaves, mean_bound=0.02, cov_bound=0.01)
    inside = ((mean - old_mean) / old_scale).square().sum(-1) * 0.5 <= 0.02
    assert inside.any()
    assert torch.equal(p_mean[inside], mean[inside])
    (p_mean.sum() + p_scale.sum()).backward()
    assert torch.equal(leaves[0].grad[inside], torch.ones_like(mean[inside]))
    assert torch.equal(leaves[2].grad[inside], torch.zeros_like(mean[inside]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_and_torch_paths_agree(monkeypatch, dtype):
    mean, scale, old_mean, old_scale = random_pair(7, 64, 6, False, dtype=dtype, shift=2.0, spread=1.0)

    def run():
        leaves = [t.clone().requires_grad_(True) for t in (mean, scale, old_mean, old_scale)]
        p_mean, p_scale = kl_projection(*leaves, mean_bound=0.03, cov_bound=0.001)
        (p_mean.square().sum() + p_scale.square().sum()).backward()
        return [p_mean.detach(), p_scale.detach()] + [t.grad for t in leaves]

    numpy_out = run()
    monkeypatch.setattr(kl_diag, "_numpy_path", lambda t: False)
    torch_out = run()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for a, b in zip(numpy_out, torch_out, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, **tol)


def test_double_backward_raises():
    """The written-out gradient is first order only: asking for more raises, not zeros."""
    mean, scale, old_mean, old_scale = random_pair(8, 6, 3, False, shift=2.0, spread=1.0)
    leaves = [t.clone().requires_grad_(True) for t in (mean, scale)]
    p_mean, p_scale = kl_projection(*leaves, old_mean, old_scale, mean_bound=0.01, cov_bound=0.001)
    (grad,) = torch.autograd.grad(p_scale.square().sum(), leaves[1], create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(grad.sum(), leaves[1])
