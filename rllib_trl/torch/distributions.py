"""Gaussian action distributions and the layout of their ``action_dist_inputs``.

Layout (last dim of ``action_dist_inputs``):
- diagonal: ``[mean (k), log std (k)]``, the same as RLlib's ``TorchDiagGaussian``;
- full:     ``[mean (k), packed lower triangle of L (k(k+1)/2)]``, row-major
  (``torch.tril_indices``), with the diagonal entries stored as their logarithm.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchDeterministic,
    TorchDiagGaussian,
    TorchDistribution,
)
from ray.rllib.utils.annotations import override
from torch import Tensor


def dist_inputs_dim(k: int, full: bool) -> int:
    """Width of ``action_dist_inputs`` for action dimension k."""
    return k + (k * (k + 1) // 2 if full else k)


def action_dim_from_inputs(width: int, full: bool) -> int:
    """Inverse of :func:`dist_inputs_dim`."""
    if not full:
        return width // 2
    # width = k + k(k+1)/2  ->  k² + 3k − 2·width = 0
    return int(round((-3 + (9 + 8 * width) ** 0.5) / 2))


def pack(mean: Tensor, scale: Tensor, full: bool) -> Tensor:
    """``(mean (..., k), scale)`` -> ``action_dist_inputs (..., dist_inputs_dim)``."""
    if not full:
        return torch.cat([mean, scale.log()], dim=-1)
    k = mean.shape[-1]
    rows, cols = torch.tril_indices(k, k, device=mean.device)
    entries = scale[..., rows, cols]
    entries = torch.where(rows == cols, entries.clamp_min(1e-30).log(), entries)
    return torch.cat([mean, entries], dim=-1)


def unpack(inputs: Tensor, full: bool) -> tuple[Tensor, Tensor]:
    """``action_dist_inputs`` -> ``(mean (..., k), std (..., k) or L (..., k, k))``."""
    k = action_dim_from_inputs(inputs.shape[-1], full)
    mean, rest = inputs[..., :k], inputs[..., k:]
    if not full:
        return mean, rest.exp()
    rows, cols = torch.tril_indices(k, k, device=inputs.device)
    diag = rows == cols
    # exp only of the diagonal entries: an overflowing unused branch would make NaN gradients
    rest = torch.where(diag, torch.where(diag, rest, 0.0).exp(), rest)
    scale = inputs.new_zeros(*inputs.shape[:-1], k, k)
    scale[..., rows, cols] = rest
    return mean, scale


class TorchFullGaussian(TorchDistribution):
    """N(loc, L Lᵀ) with a lower Cholesky factor ``scale_tril`` ``(..., k, k)``."""

    @override(TorchDistribution)
    def __init__(self, loc: Tensor, scale_tril: Tensor):
        self.loc = loc
        self.scale_tril = scale_tril
        super().__init__(loc=loc, scale_tril=scale_tril)

    @override(TorchDistribution)
    def _get_torch_distribution(self, loc: Tensor, scale_tril: Tensor) -> torch.distributions.Distribution:
        return torch.distributions.MultivariateNormal(loc, scale_tril=scale_tril, validate_args=False)

    @staticmethod
    @override(Distribution)
    def required_input_dim(space: gym.Space, **kwargs) -> int:
        k = int(np.prod(space.shape))
        return dist_inputs_dim(k, True)

    @classmethod
    @override(Distribution)
    def from_logits(cls, logits: Tensor, **kwargs) -> TorchFullGaussian:
        loc, scale_tril = unpack(logits, True)
        return cls(loc=loc, scale_tril=scale_tril)

    def to_deterministic(self) -> TorchDeterministic:
        """The mean action (evaluation with ``explore=False``)."""
        return TorchDeterministic(loc=self.loc)


def make_distribution(mean: Tensor, scale: Tensor, full: bool) -> TorchDistribution:
    """The RLlib distribution for ``(mean, scale)`` in either covariance form."""
    if full:
        return TorchFullGaussian(loc=mean, scale_tril=scale)
    return TorchDiagGaussian(loc=mean, scale=scale)
