"""KL projection: precision interpolation Σ̃⁻¹ = (Σ⁻¹ + η Σ_o⁻¹) / (1 + η) with the
multiplier η ≥ 0 found per state by a batched Newton solve (``kl_solver``). The diagonal
case is one autograd node (``kl_diag``); the full one is here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rllib_trl.projections.checks import check_projection_args
from rllib_trl.projections.divergences import kl_cov_part
from rllib_trl.projections.gaussian import batch_where, cholesky_of, maha, whiten
from rllib_trl.projections.kl_diag import kl_diag_projection
from rllib_trl.projections.kl_solver import f_and_slope, log_det_of, solve_multiplier
from rllib_trl.projections.mean import project_mean


def _whitened_projection(white: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
    """For A = L_o⁻¹ L ``(..., k, k)`` return B ``(..., k, k)`` with B Bᵀ = Σ̃_w(η), the
    whitened projected covariance, and log det Σ̃_w ``(...)``.

    Σ̃_w = (1 + η)(W⁻¹ + η I)⁻¹ = (1 + η) A C⁻¹ Aᵀ with C = I + η AᵀA = R Rᵀ, so
    B = sqrt(1 + η) A R⁻ᵀ and log det Σ̃_w = k log(1 + η) + 2 log|det A| − 2 log det R.
    C ⪰ I is well conditioned, and no eigen-decomposition is differentiated.
    """
    k = white.shape[-1]
    eye = torch.eye(k, dtype=white.dtype, device=white.device)
    e = eta[..., None, None]
    chol = torch.linalg.cholesky(eye + e * (white.transpose(-1, -2) @ white))
    # (R⁻¹ Aᵀ)ᵀ = A R⁻ᵀ
    b = torch.linalg.solve_triangular(chol, white.transpose(-1, -2), upper=False).transpose(-1, -2)
    b = b * (1.0 + e).sqrt()
    log_det_w = (
        k * torch.log1p(eta)
        + 2.0 * torch.diagonal(white, dim1=-2, dim2=-1).abs().log().sum(-1)
        - 2.0 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
    )
    return b, log_det_w


def _kl_cov_full(scale: Tensor, old_scale: Tensor, cov_bound: float, active: Tensor) -> Tensor:
    """Projected Cholesky factor ``(..., k, k)`` for full covariances."""
    k = scale.shape[-1]
    white = whiten(scale, old_scale, True)  # A = L_o⁻¹ L, (..., k, k)
    lam = torch.linalg.eigvalsh(white.detach() @ white.detach().transpose(-1, -2))
    eta_star, _ = solve_multiplier(lam, cov_bound, active)

    # Implicit gradient: one Newton step with grad, η = η* − (f(η*; θ) − ε) / f'(η*),
    # whose value is η* and whose gradient is −(∂f/∂θ) / (∂f/∂η) at the root.
    b, log_det_w = _whitened_projection(white, eta_star)
    f = 0.5 * (b.square().sum((-2, -1)) - k - log_det_w)
    lam_t = lam.movedim(-1, 0)
    _, slope = f_and_slope(eta_star, lam_t, log_det_of(lam_t))
    slope = torch.where(active, slope, -1.0)
    eta = torch.where(active, eta_star - (f - cov_bound) / slope, 0.0)

    b, _ = _whitened_projection(white, eta)
    root = old_scale @ b  # (..., k, k), root rootᵀ = Σ̃
    return cholesky_of(root @ root.transpose(-1, -2))


def kl_projection(
    mean: Tensor,
    scale: Tensor,
    old_mean: Tensor,
    old_scale: Tensor,
    *,
    mean_bound: float,
    cov_bound: float,
) -> tuple[Tensor, Tensor]:
    """Project N(μ, Σ) onto {½ maha ≤ ε_μ, KL_cov ≤ ε_Σ} around N(μ_o, Σ_o).

    Args:
        mean, old_mean: ``(..., k)``.
        scale, old_scale: std ``(..., k)`` or lower Cholesky factor ``(..., k, k)``.
        mean_bound: ε_μ on the mean part ½ (μ − μ_o)ᵀ Σ_o⁻¹ (μ − μ_o).
        cov_bound: ε_Σ on the covariance part of KL(π ‖ π_old).

    Returns:
        ``(mean, scale)`` of the projected policy, in the input's form; states inside
        the region are returned unchanged.
    """
    full = check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    if not full:
        return kl_diag_projection(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    proj_mean, _ = project_mean(mean, old_mean, 0.5 * maha(mean, old_mean, old_scale, full), mean_bound)
    active = kl_cov_part(scale.detach(), old_scale.detach(), full) > cov_bound
    if not bool(active.any()):
        return proj_mean, scale
    # Full covariances always run in float64: in float32 the KL of k O(1) terms cancels
    # to a few % of a small bound (measured: +2.8% at k=17, cov_bound=1e-4).
    proj_scale = _kl_cov_full(scale.double(), old_scale.double(), float(cov_bound), active).to(scale.dtype)
    return proj_mean, batch_where(active, proj_scale, scale)
