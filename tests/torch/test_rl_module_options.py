"""The RL module's ``weight_init`` and ``std_param`` options: what each builds, and that
the std's map and its inverse agree (the learner writes projected stds back through it)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rllib_trl.torch.trpl_rl_module import TRPLTorchRLModule

OBS, K = 11, 3


def _module(**model_config) -> TRPLTorchRLModule:
    torch.manual_seed(0)
    return TRPLTorchRLModule(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float64),
        action_space=gym.spaces.Box(-1.0, 1.0, (K,), np.float32),
        model_config={"fcnet_hiddens": [64, 64], **model_config},
    )


def _linears(module: TRPLTorchRLModule) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_orthogonal_init_is_the_default():
    module = _module()
    mean_w = module.mean_head[-1].weight  # (K, 64), orthogonal rows with gain 0.01
    torch.testing.assert_close(mean_w @ mean_w.T, 1e-4 * torch.eye(K), atol=1e-9, rtol=1e-5)
    assert all(int(torch.count_nonzero(layer.bias.detach())) == 0 for layer in _linears(module))


def test_torch_default_init_is_pytorchs_linear_init():
    """Same seed, same layers in the same order: the weights are nn.Linear's own."""
    module = _module(weight_init="torch_default")
    torch.manual_seed(0)
    shapes = [(layer.in_features, layer.out_features) for layer in _linears(module)]
    fresh = [nn.Linear(i, o) for i, o in shapes]
    for ours, ref in zip(_linears(module), fresh, strict=True):
        torch.testing.assert_close(ours.weight, ref.weight, atol=0, rtol=0)
        torch.testing.assert_close(ours.bias, ref.bias, atol=0, rtol=0)
    # not the orthogonal 0.01 head: PyTorch's U(±1/√fan_in)
    assert float(module.mean_head[-1].weight.detach().abs().max()) > 0.05


@pytest.mark.parametrize("std_param", ["softplus", "exp"])
@pytest.mark.parametrize("cov_type", ["diag", "full"])
def test_std_starts_at_init_std_and_round_trips(std_param, cov_type):
    module = _module(std_param=std_param, cov_type=cov_type, init_std=0.7)
    _, scale = module.mean_and_scale(torch.zeros(2, OBS))
    diag = scale if cov_type == "diag" else torch.diagonal(scale, dim1=-2, dim2=-1)
    torch.testing.assert_close(diag, torch.full((2, K), 0.7), atol=1e-6, rtol=1e-6)
    raw = torch.randn(5, module.n_scale, dtype=torch.float64)
    torch.testing.assert_close(module.raw_from_scale(module.scale_from_raw(raw)), raw)


def test_exp_std_is_min_std_plus_exp():
    module = _module(std_param="exp", min_std=1e-3)
    raw = torch.tensor([[-3.0, 0.0, 2.0]], dtype=torch.float64)
    expected = 1e-3 + torch.exp(raw)
    torch.testing.assert_close(module.scale_from_raw(raw), expected)
    # its gradient is the std's own size (RLlib's log-std parameterisation), not softplus's sigmoid
    raw.requires_grad_(True)
    module.scale_from_raw(raw).sum().backward()
    torch.testing.assert_close(raw.grad, torch.exp(raw.detach()))
    assert math.isclose(float(module.scale_from_raw(torch.zeros(1, K)).mean()), 1.001, rel_tol=1e-6)


def test_exp_full_covariance_gradient_is_finite_for_large_off_diagonal_entries():
    """exp of an unused off-diagonal entry must not reach the backward (0 * inf = NaN)."""
    module = _module(std_param="exp", cov_type="full")
    raw = torch.zeros(1, module.n_scale)
    off = [i for i in range(module.n_scale) if i not in module._diag_idx]
    raw[0, off] = 200.0
    raw.requires_grad_(True)
    module.scale_from_raw(raw).sum().backward()
    assert bool(torch.isfinite(raw.grad).all())


def test_exp_std_is_clamped_as_rllib_clamps_log_std():
    module = _module(std_param="exp")
    std = module.scale_from_raw(torch.tensor([[100.0, -100.0, 0.0]]))
    assert bool(torch.isfinite(std).all())
    torch.testing.assert_close(std[0, :2], torch.tensor([1e-4 + math.exp(20.0), 1e-4 + math.exp(-20.0)]))


def test_module_rejects_unknown_options_without_validate():
    with pytest.raises(ValueError, match="`weight_init`"):
        _module(weight_init="xavier")
