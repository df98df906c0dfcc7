"""The deployable policy's stochastic variant samples N(μ, L Lᵀ), before and after
``torch.export`` (full covariance, no action rescaling)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from rllib_trl.deploy import ActionMapping, DeployablePolicy, export_policy
from rllib_trl.torch.distributions import unpack
from rllib_trl.torch.trpl_rl_module import TRPLTorchRLModule

N = 40_000


def _module(k: int = 3) -> TRPLTorchRLModule:
    torch.manual_seed(0)
    module = TRPLTorchRLModule(
        observation_space=gym.spaces.Box(-np.inf, np.inf, (4,), np.float64),
        action_space=gym.spaces.Box(-np.inf, np.inf, (k,), np.float32),
        model_config={"cov_type": "full", "contextual_std": True, "init_std": 0.5},
    )
    with torch.no_grad():  # a mean far from 0 and a correlated covariance
        module.mean_head[-1].bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
        module.scale_head[-1].bias[1] += 0.4
    return module


def _check_samples(actions: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    sample_mean = actions.mean(0)
    stderr = cov.diagonal().sqrt() / np.sqrt(N)
    assert torch.all((sample_mean - mean).abs() < 5 * stderr), (sample_mean, mean)
    torch.testing.assert_close(torch.cov(actions.T), cov, rtol=0.05, atol=0.01)


def test_stochastic_policy_samples_the_gaussian(tmp_path):
    module = _module()
    space = module.action_space
    obs = torch.randn(1, 4, dtype=torch.float64)
    with torch.no_grad():
        mean, scale_tril = unpack(module._forward({"obs": obs})["action_dist_inputs"], True)
    cov = (scale_tril @ scale_tril.transpose(-1, -2))[0]
    assert cov[0, 1].abs() > 0.01  # correlated: a diagonal sampler would fail below
    actions = ActionMapping.of(space, normalize_actions=True, clip_actions=False)
    assert not actions.unsquash  # unbounded: RLlib does not rescale
    policy = DeployablePolicy(module, True, None, actions, stochastic=True)
    with torch.no_grad():
        _check_samples(policy(obs.expand(N, -1)), mean[0], cov)
        deterministic = DeployablePolicy(module, True, None, actions)(obs)
    torch.testing.assert_close(deterministic, mean)

    export_policy(policy, module.observation_space, tmp_path / "policy.pt2")
    loaded = torch.export.load(str(tmp_path / "policy.pt2")).module()
    _check_samples(loaded(obs.expand(N, -1)).detach(), mean[0], cov)
