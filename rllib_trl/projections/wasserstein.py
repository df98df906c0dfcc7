"""Wasserstein-2 projection (commuting form): S̃ = (S + η S_o) / (1 + η) for the
symmetric square roots S = Σ^½, η = sqrt(d_cov / ε_Σ) − 1."""

from __future__ import annotations

from torch import Tensor

from rllib_trl.projections.checks import check_projection_args
from rllib_trl.projections.divergences import mean_distance, sqrt_cov, w2_cov_part_from_roots
from rllib_trl.projections.gaussian import batch_where, cholesky_of
from rllib_trl.projections.mean import interpolate, project_mean


def wasserstein_projection(
    mean: Tensor,
    scale: Tensor,
    old_mean: Tensor,
    old_scale: Tensor,
    *,
    mean_bound: float,
    cov_bound: float,
    scale_prec: bool = True,
) -> tuple[Tensor, Tensor]:
    """Project N(μ, Σ) onto the W2 trust region around N(μ_o, Σ_o).

    d_cov is ‖S_o⁻¹ S − I‖²_F with ``scale_prec`` and ‖S − S_o‖²_F without; both are
    squared norms of S − S_o, so the line interpolation lands on the boundary exactly.
    Full covariances use the symmetric square root (not the Cholesky factor).

    Args:
        mean, old_mean: ``(..., k)``.
        scale, old_scale: std ``(..., k)`` or lower Cholesky factor ``(..., k, k)``.
        mean_bound, cov_bound: ε_μ, ε_Σ.
        scale_prec: scale both parts by the old covariance (True) or not.

    Returns:
        ``(mean, scale)`` of the projected policy, in the input's form.
    """
    full = check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    d_mean = mean_distance(mean, old_mean, old_scale, full, scale_prec)
    proj_mean, _ = project_mean(mean, old_mean, d_mean, mean_bound)

    root, old_root = sqrt_cov(scale, full), sqrt_cov(old_scale, full)
    d_cov = w2_cov_part_from_roots(root, old_root, full, scale_prec)
    proj_root, active = interpolate(root, old_root, d_cov, cov_bound)
    proj_scale = cholesky_of(proj_root @ proj_root) if full else proj_root
    return proj_mean, batch_where(active, proj_scale, scale)
