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


@pytest.mark.parametrize("shape", [(6,), (24, 6), (3, 8, 6)])
def test_any_batch_shape_matches_the_flat_batch(path, shape):
    """The per-state sums run over the last axis whatever the leading shape: a single
    state, a batch, and a (T, B) batch give what the same states give as one flat batch,
    outputs and gradients, also where the std is an expanded (stride-0) parameter."""
    n = int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1
    mean, scale, old_mean, old_scale = random_pair(10, n, shape[-1], False, shift=0.5, spread=0.5)
    free_std = scale[0].clone()

    def run(view):
        leaves = [view(t).clone().requires_grad_(True) for t in (mean, old_mean, old_scale)]
        std = free_std.clone().requires_grad_(True)
        p_mean, p_scale = kl_projection(
            leaves[0], std.expand_as(leaves[0]), leaves[1], leaves[2], mean_bound=0.01, cov_bound=0.001
        )
        (p_mean.square().sum() + (p_scale * torch.arange(1.0, 7.0, dtype=p_scale.dtype)).sum()).backward()
        return [p_mean.detach().reshape(n, -1), p_scale.detach().reshape(n, -1)], [
            *(t.grad.reshape(n, -1) for t in leaves),
            std.grad,
        ]

    shaped_out, shaped_grads = run(lambda t: t.reshape(shape))
    flat_out, flat_grads = run(lambda t: t)
    for a, b in zip(shaped_out + shaped_grads, flat_out + flat_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert (flat_out[0] != mean).any() and (flat_out[1] != free_std).any()  # some states moved
