"""Split divergences between π = N(μ, Σ) and π_old = N(μ_o, Σ_o), per state.

Each ``*_parts`` returns ``(mean_part, cov_part)``, both of shape ``(...)``, for scales
in std ``(..., k)`` or Cholesky ``(..., k, k)`` form (DESIGN.md §1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rllib_trl.projections.checks import check_gaussians
from rllib_trl.projections.gaussian import covariance, log_det, maha, sym_sqrt, whiten

Pair = tuple[Tensor, Tensor]


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


def kl_mean_part(mean: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool) -> Tensor:
    """½ (μ − μ_o)ᵀ Σ_o⁻¹ (μ − μ_o), the mean part of KL, shape ``(...)``."""
    return 0.5 * maha(mean, old_mean, old_scale, full)


def scaled_mean_part(
    mean: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool, scale_prec: bool = True
) -> Tensor:
    """Frobenius / W2 mean part: :func:`mean_distance`, shape ``(...)``."""
    return mean_distance(mean, old_mean, old_scale, full, scale_prec)


# The `*_split` functions take checked inputs (the projections, the learner's diagnostics):
# (mean_part, cov_part), each ``(...)``.


def kl_split(mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool) -> Pair:
    """KL(π ‖ π_old) split: (½ maha, ½[tr(Σ_o⁻¹Σ) − k + log|Σ_o|/|Σ|])."""
    return kl_mean_part(mean, old_mean, old_scale, full=full), kl_cov_part(scale, old_scale, full)


def frobenius_split(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool, scale_prec: bool = True
) -> Pair:
    """Frobenius split: (maha or ‖μ − μ_o‖², ‖Σ − Σ_o‖²_F)."""
    d_mean = scaled_mean_part(mean, old_mean, old_scale, full=full, scale_prec=scale_prec)
    return d_mean, frobenius_cov_part(scale, old_scale, full)


def wasserstein_split(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, *, full: bool, scale_prec: bool = True
) -> Pair:
    """Wasserstein-2 split (commuting form): (maha or ‖μ − μ_o‖², W2 covariance part)."""
    d_mean = scaled_mean_part(mean, old_mean, old_scale, full=full, scale_prec=scale_prec)
    roots = sqrt_cov(scale, full), sqrt_cov(old_scale, full)
    return d_mean, w2_cov_part_from_roots(*roots, full, scale_prec)


def kl_parts(mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor) -> Pair:
    """:func:`kl_split` with input checks."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return kl_split(mean, scale, old_mean, old_scale, full=full)


def frobenius_parts(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, scale_prec: bool = True
) -> Pair:
    """:func:`frobenius_split` with input checks."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return frobenius_split(mean, scale, old_mean, old_scale, full=full, scale_prec=scale_prec)


def wasserstein_parts(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, scale_prec: bool = True
) -> Pair:
    """:func:`wasserstein_split` with input checks."""
    full = check_gaussians(mean, scale, old_mean, old_scale)
    return wasserstein_split(mean, scale, old_mean, old_scale, full=full, scale_prec=scale_prec)
