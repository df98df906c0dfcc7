"""A trained policy as one PyTorch module that needs neither Ray nor this package.

:class:`DeployablePolicy` maps a raw observation batch to the env's action exactly as an
EnvRunner does with ``explore=False`` (or ``True`` for the stochastic variant):

    x = clip((o − mean) / (std + 1e-6), −c, c)     observation filter, frozen statistics
    μ, Σ = module(x)                                the policy head (``action_dist_inputs``)
    a = μ            (or μ + L ε, ε ~ N(0, I))      deterministic / stochastic
    a_env = clip(low + (a + 1)(high − low)/2, low, high)    RLlib's action unsquashing

:func:`export_policy` writes it with ``torch.export`` (batch size dynamic); load it with
``torch.export.load(path).module()``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rllib_trl.torch.distributions import unpack

FILTER_EPSILON = 1e-6  # RLlib's SMALL_NUMBER in MeanStdFilter: x / (std + 1e-6)


@dataclass
class ObservationStats:
    """Frozen observation-filter statistics (RLlib's ``MeanStdFilter`` semantics)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float | None
    demean: bool = True
    destd: bool = True


@dataclass
class ActionMapping:
    """How RLlib's module-to-env pipeline turns a module action into an env action."""

    low: np.ndarray
    high: np.ndarray
    unsquash: bool  # config.normalize_actions and the Box is bounded
    clip: bool  # config.clip_actions

    dtype: np.dtype = np.dtype(np.float32)

    @classmethod
    def of(cls, space: gym.spaces.Box, normalize_actions: bool, clip_actions: bool) -> ActionMapping:
        """RLlib's NormalizeAndClipActions: with ``normalize_actions`` it unsquashes (a
        bounded float Box only) and never clips; otherwise it clips if ``clip_actions``."""
        bounded = bool(np.all(space.bounded_below) and np.all(space.bounded_above))
        return cls(
            low=np.asarray(space.low, dtype=np.float64),
            high=np.asarray(space.high, dtype=np.float64),
            unsquash=normalize_actions and bounded and space.dtype in (np.float32, np.float64),
            clip=clip_actions and not normalize_actions,
            dtype=np.dtype(space.dtype),
        )


class DeployablePolicy(nn.Module):
    """Raw observations ``(B, *obs_shape)`` -> env actions ``(B, k)`` (see module doc)."""

    def __init__(
        self,
        module: nn.Module,
        full: bool,
        obs_stats: ObservationStats | None,
        actions: ActionMapping,
        stochastic: bool = False,
    ):
        super().__init__()
        self.module = module
        self.full = full
        self.stochastic = stochastic
        self.normalize = obs_stats is not None
        stats = obs_stats or ObservationStats(np.zeros(1), np.ones(1), None)
        self.register_buffer("obs_mean", torch.as_tensor(stats.mean if stats.demean else 0 * stats.mean))
        divisor = stats.std + FILTER_EPSILON if stats.destd else np.ones_like(stats.std)
        self.register_buffer("obs_divisor", torch.as_tensor(divisor, dtype=torch.float64))
        self.obs_clip = stats.clip
        self.register_buffer("low", torch.as_tensor(actions.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(actions.high, dtype=torch.float32))
        self.unsquash = actions.unsquash
        self.clip = actions.clip
        self.action_dtype = torch.from_numpy(np.zeros(0, dtype=actions.dtype)).dtype

    def forward(self, obs: Tensor) -> Tensor:
        x = obs
        if self.normalize:
            x = (x.double() - self.obs_mean) / self.obs_divisor
            if self.obs_clip:
                x = x.clamp(-self.obs_clip, self.obs_clip)
        # RLlib's NumpyToTensor hands modules float32 (the filter's float64 output too)
        inputs = self.module._forward({"obs": x.to(torch.float32)})["action_dist_inputs"]
        mean, scale = unpack(inputs, self.full)
        action = mean
        if self.stochastic:
            noise = torch.randn_like(mean)
            action = mean + ((scale @ noise.unsqueeze(-1)).squeeze(-1) if self.full else scale * noise)
        if self.unsquash:
            action = self.low + (action + 1.0) * (self.high - self.low) / 2.0
            action = torch.minimum(torch.maximum(action, self.low), self.high)
        elif self.clip:
            action = torch.minimum(torch.maximum(action, self.low), self.high)
        return action.to(self.action_dtype)


def export_policy(policy: DeployablePolicy, obs_space: gym.spaces.Box, path: Path) -> None:
    """Write ``policy`` with ``torch.export`` for observations of ``obs_space``'s dtype
    and shape, with a dynamic batch dimension."""
    dtype = torch.from_numpy(np.zeros(0, dtype=obs_space.dtype)).dtype
    example = torch.zeros(2, *obs_space.shape, dtype=dtype)
    batch = torch.export.Dim("batch", min=1)
    policy = copy.deepcopy(policy).eval().requires_grad_(False)  # acting needs no autograd
    program = torch.export.export(policy, (example,), dynamic_shapes={"obs": {0: batch}})
    torch.export.save(program, str(path))
