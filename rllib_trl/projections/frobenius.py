"""Frobenius projection: Σ̃ = (Σ + η Σ_o) / (1 + η), η = sqrt(‖Σ − Σ_o‖²_F / ε_Σ) − 1."""

from __future__ import annotations

from torch import Tensor

from rllib_trl.projections.checks import check_projection_args
from rllib_trl.projections.divergences import frobenius_cov_part, mean_distance
from rllib_trl.projections.gaussian import batch_where, cholesky_of, covariance
from rllib_trl.projections.mean import interpolate, project_mean


def frobenius_projection(
    mean: Tensor,
    scale: Tensor,
    old_mean: Tensor,
    old_scale: Tensor,
    *,
    mean_bound: float,
    cov_bound: float,
    scale_prec: bool = True,
) -> tuple[Tensor, Tensor]:
    """Project N(μ, Σ) onto {d_mean ≤ ε_μ, ‖Σ̃ − Σ_o‖²_F ≤ ε_Σ} around N(μ_o, Σ_o).

    Args:
        mean, old_mean: ``(..., k)``.
        scale, old_scale: std ``(..., k)`` or lower Cholesky factor ``(..., k, k)``.
        mean_bound: ε_μ on the Mahalanobis (``scale_prec``) or Euclidean mean distance.
        cov_bound: ε_Σ on the squared Frobenius norm of Σ̃ − Σ_o.
        scale_prec: measure the mean distance in Σ_o⁻¹ (True) or Euclidean.

    Returns:
        ``(mean, scale)`` of the projected policy, in the input's form.
    """
    full = check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    d_mean = mean_distance(mean, old_mean, old_scale, full, scale_prec)
    proj_mean, _ = project_mean(mean, old_mean, d_mean, mean_bound)

    d_cov = frobenius_cov_part(scale, old_scale, full)
    cov, active = interpolate(covariance(scale, full), covariance(old_scale, full), d_cov, cov_bound)
    proj_scale = cholesky_of(cov) if full else cov.sqrt()
    return proj_mean, batch_where(active, proj_scale, scale)
