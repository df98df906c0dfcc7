"""Split divergences between π = N(μ, Σ) and π_old = N(μ_o, Σ_o), per state.

Each ``*_parts`` returns ``(mean_part, cov_part)``, both of shape ``(...)``, for scales
in std ``(..., k)`` or Cholesky ``(..., k, k)`` form (DESIGN.md §1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rllib_trl.projections.checks import check_gaussians
from rllib_trl.projections.gaussian import covariance, log_det, maha, sym_sqrt, whiten


def mean_distance(mean: Tensor, old_mean: Tensor, old_scale: Tensor, full: bool, scale_prec: bool) -> Tensor:
    """(μ − μ_o)ᵀ Σ_o⁻¹ (μ − μ_o) if ``scale_prec`` else ‖μ − μ_o‖², shape ``(...)``."""
    if scale_prec:
        return maha(mean, old_mean, old_scale, full)
    return (mean - old_mean).square().sum(-1)


def kl_cov_part(scale: Tensor, old_scale: Tensor, full: bool) -> Tensor:
    """½ [tr(Σ_o⁻¹ Σ) − k + log det Σ_o − log det Σ], shape ``(...)``."""
    k = scale.shape[-1]
    trace = whiten(scale, old_scale, full).square().sum((-2, -1) if full else -1)
    return 0.5 * (trace - k + log_det(old_scale, full) - log_det(scale, full))


def frobenius_cov_part(scale: Tensor, old_scale: Tensor, full: bool) -> Tensor:
    """‖Σ − Σ_o‖²_F, shape ``(...)``."""
    diff = covariance(scale, full) - covariance(old_scale, full)
    return diff.square().sum((-2, -1) if full else -1)


def sqrt_cov(scale: Tensor, full: bool) -> Tensor:
    """S = Σ^½: the std itself (diag) or the symmetric square root of L Lᵀ (full)."""
    return sym_sqrt(covariance(scale, True)) if full else scale


def w2_cov_part_from_roots(root: Tensor, old_root: Tensor, full: bool, scale_prec: bool) -> Tensor:
    """W2 covariance part from square roots S, S_o.

    ``scale_prec``: tr(I + S_o⁻¹ Σ S_o⁻¹ − 2 S_o⁻¹ S) = ‖S_o⁻¹ S − I‖²_F;
    otherwise tr(Σ_o + Σ − 2 S_o S) = ‖S − S_o‖²_F. Shape ``(...)``.
    """
    if not scale_prec:
        return (root - old_root).square().sum((-2, -1) if full else -1)
    if not full:
        return (root / old_root - 1.0).square().sum(-1)
    rel = torch.cholesky_solve(root, torch.linalg.cholesky(old_root))
    eye = torch.eye(root.shape[-1], dtype=root.dtype, device=root.device)
    return (rel - eye).square().sum((-2, -1))


def mean_part(
    measure: str, mean: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool, scale_prec: bool = True
) -> Tensor:
    """The mean part of ``measure`` alone (no input checks), shape ``(...)``: ½ maha for
    "kl", :func:`mean_distance` for "frobenius" and "wasserstein"."""
    if measure == "kl":
        return 0.5 * maha(mean, old_mean, old_scale, full)
    return mean_distance(mean, old_mean, old_scale, full, scale_prec)


def split_parts(
    measure: str,
    mean: Tensor,
    scale: Tensor,
    old_mean: Tensor,
    old_scale: Tensor,
    *,
    full: bool,
    scale_prec: bool = True,
) -> tuple[Tensor, Tensor]:
    """(mean_part, cov_part) of ``measure`` ("kl", "frobenius", "wasserstein") without
    input checks, for callers that already validated (the learner's diagnostics)."""
    d_mean = mean_part(measure, mean, old_mean, old_scale, full=full, scale_prec=scale_prec)
    if measure == "kl":
        return d_mean, kl_cov_part(scale, old_scale, full)
    if measure == "frobenius":
        return d_mean, frobenius_cov_part(scale, old_scale, full)
    roots = sqrt_cov(scale, full), sqrt_cov(old_scale, full)
    return d_mean, w2_cov_part_from_roots(*roots, full, scale_prec)


def kl_parts(mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance parts of KL(π ‖ π_old): (½ maha, ½[tr(Σ_o⁻¹Σ) − k + log|Σ_o|/|Σ|])."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return split_parts("kl", mean, scale, old_mean, old_scale, full=full)


def frobenius_parts(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, scale_prec: bool = True
) -> tuple[Tensor, Tensor]:
    """Frobenius split: (maha or ‖μ − μ_o‖², ‖Σ − Σ_o‖²_F)."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return split_parts("frobenius", mean, scale, old_mean, old_scale, full=full, scale_prec=scale_prec)


def wasserstein_parts(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, scale_prec: bool = True
) -> tuple[Tensor, Tensor]:
    """Wasserstein-2 split (commuting form): (maha or ‖μ − μ_o‖², W2 covariance part)."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return split_parts("wasserstein", mean, scale, old_mean, old_scale, full=full, scale_prec=scale_prec)
