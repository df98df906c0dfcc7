"""The projections on a CUDA device: the same result as on the CPU, bounds held, and
gradients that match finite differences. Skipped where PyTorch sees no CUDA device."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from rllib_trl.projections import entropy_projection, get_trust_region
from tests.projections.helpers import MEASURES, random_pair

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def _on(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in tensors)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("full", [False, True])
def test_cuda_matches_cpu_float64(measure, full):
    """The same batch of 256 states, projected on each device, agrees to float64 rounding."""
    tr = get_trust_region(measure)
    pair = random_pair(5, 256, 6, full, shift=2.0, spread=2.0)
    cpu_mean, cpu_scale = tr.project(*pair, mean_bound=0.03, cov_bound=0.001)
    gpu_mean, gpu_scale = tr.project(*_on(CUDA, *pair), mean_bound=0.03, cov_bound=0.001)
    assert gpu_mean.device.type == "cuda" and gpu_scale.device.type == "cuda"
    torch.testing.assert_close(gpu_mean.cpu(), cpu_mean, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gpu_scale.cpu(), cpu_scale, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("full", [False, True])
def test_cuda_float32_bounds_hold(measure, full):
    """float32 inputs on CUDA (the policy's dtype): every projected state within its
    bounds, measured in float64."""
    tr = get_trust_region(measure)
    pair = _on(CUDA, *random_pair(9, 2048, 6, full, dtype=torch.float32, shift=2.0, spread=2.0))
    p_mean, p_scale = tr.project(*pair, mean_bound=0.03, cov_bound=0.001)
    assert p_mean.dtype == torch.float32 and p_mean.device.type == "cuda"
    d_mean, d_cov = tr.parts(p_mean.double(), p_scale.double(), pair[2].double(), pair[3].double())
    assert bool((d_mean <= 0.03 * (1 + 1e-2)).all()) and bool((d_cov <= 0.001 * (1 + 1e-2)).all())
    _, d_cov_before = tr.parts(*(t.double() for t in pair))
    assert bool((d_cov_before > 0.001).any())  # the batch does need projecting


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("full", [False, True])
def test_cuda_gradcheck(measure, full):
    """Gradients through an active projection on CUDA match finite differences (float64)."""
    tr = get_trust_region(measure)
    pair = _on(CUDA, *random_pair(21, 4, 3, full, shift=3.0, spread=2.0))

    def fn(m, s, om, os_):
        if full:
            s, os_ = torch.tril(s), torch.tril(os_)
        return tr.project(m, s, om, os_, mean_bound=1e-3, cov_bound=1e-3)

    inputs = tuple(t.clone().requires_grad_(True) for t in pair)
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("full", [False, True])
def test_cuda_entropy_projection(full):
    """Entropy control on CUDA gives the CPU's result (β between the states' entropies,
    so some states are raised and some are not)."""
    mean, scale, _, _ = random_pair(2, 64, 3, full)
    _, cpu_scale = entropy_projection(mean, scale, entropy_bound=4.3)
    _, gpu_scale = entropy_projection(*_on(CUDA, mean, scale), entropy_bound=4.3)
    changed = (cpu_scale != scale).flatten(1).any(-1)
    assert bool(changed.any()) and not bool(changed.all())
    torch.testing.assert_close(gpu_scale.cpu(), cpu_scale, rtol=1e-9, atol=1e-10)
