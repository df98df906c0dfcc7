"""Closed-form projection along a line, used for the mean (all measures) and for the
Frobenius and Wasserstein-2 covariances."""

from __future__ import annotations

import torch
from torch import Tensor

from rllib_trl.projections.gaussian import batch_where


def interpolate(new: Tensor, old: Tensor, dist: Tensor, bound: float | Tensor) -> tuple[Tensor, Tensor]:
    """Pull ``new`` towards ``old`` so that a squared distance ``dist`` drops to ``bound``.

    With η = sqrt(dist / bound) − 1 the result is (new + η old) / (1 + η)
    = old + (new − old) · sqrt(bound / dist), whose distance to ``old`` is exactly
    ``bound`` for any squared norm. States with ``dist <= bound`` return ``new`` itself
    (identity, gradient identity).

    Args:
        new, old: ``(..., *event)``, the same shape.
        dist: ``(...)`` squared distance between ``new`` and ``old``.
        bound: positive bound on ``dist``.

    Returns:
        ``(projected, active)``: the projected tensor and the ``(...)`` bool mask of
        states that were moved.
    """
    active = dist > bound
    # Inactive states see dist := bound, so the unused branch (and its gradient) is finite.
    safe = torch.where(active, dist, torch.as_tensor(bound, dtype=dist.dtype, device=dist.device))
    shrink = (bound / safe).sqrt()
    while shrink.dim() < new.dim():
        shrink = shrink.unsqueeze(-1)
    return batch_where(active, old + (new - old) * shrink, new), active


def project_mean(
    mean: Tensor, old_mean: Tensor, d_mean: Tensor, mean_bound: float | Tensor
) -> tuple[Tensor, Tensor]:
    """μ̃ = (μ + ω μ_o)/(1 + ω), ω = sqrt(d_mean / ε_μ) − 1, where ``d_mean > mean_bound``.

    Every mean part used here is a squared norm of μ − μ_o, so d_mean(μ̃) = ε_μ exactly.
    Shapes: mean, old_mean ``(..., k)``; d_mean ``(...)``. Returns ``(mean, active)``.
    """
    return interpolate(mean, old_mean, d_mean, mean_bound)
