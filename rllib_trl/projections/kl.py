"""KL projection: precision interpolation Σ̃⁻¹ = (Σ⁻¹ + η Σ_o⁻¹) / (1 + η) with the
multiplier η ≥ 0 found per state by a batched safeguarded Newton solve.

Whitening with Σ_o = L_o L_oᵀ, let λ_i be the eigenvalues of W = L_o⁻¹ Σ L_o⁻ᵀ
(λ_i = σ_i² / σ_o,i² for a diagonal covariance). The whitened projected covariance has
eigenvalues s_i(η) = (1 + η) λ_i / (1 + η λ_i) = 1 + x_i, x_i = (λ_i − 1) / (1 + η λ_i), and

    f(η) = d_cov(Σ̃(η), Σ_o) = ½ Σ_i (x_i − log(1 + x_i)),

strictly decreasing from f(0) = d_cov(Σ, Σ_o) to 0, so f(η) = ε_Σ has one root.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rllib_trl.projections.checks import check_projection_args
from rllib_trl.projections.divergences import kl_cov_part
from rllib_trl.projections.gaussian import batch_where, cholesky_of, maha, whiten
from rllib_trl.projections.mean import project_mean

MAX_NEWTON_STEPS = 60


def _f_and_slope(eta: Tensor, lam: Tensor, log_lam: Tensor) -> tuple[Tensor, Tensor]:
    """f(η) ``(...)`` and f'(η) = −½ Σ_i λ_i x_i² / (s_i (1 + η λ_i)) ``(...)`` from λ ``(..., k)``.

    log s_i is log1p(x_i) where that is accurate, and log(1 + η) + log λ_i − log(1 + η λ_i)
    where s_i is far below 1 (λ_i − 1 rounds to −1 for tiny λ_i).
    """
    e = eta.unsqueeze(-1)
    denom = 1.0 + e * lam
    x = (lam - 1.0) / denom
    s = 1.0 + x
    near_one = x > -0.5
    if bool(near_one.all()):
        log_s = torch.log1p(x)
    else:
        far = torch.log1p(e) + log_lam - torch.log1p(e * lam)
        log_s = torch.where(near_one, torch.log1p(torch.where(near_one, x, 0.0)), far)
        s = torch.where(near_one, s, torch.exp(far))
    f = 0.5 * (x - log_s).sum(-1)
    slope = -0.5 * (lam * x.square() / (s * denom)).sum(-1)
    return f, slope


@torch.no_grad()
def solve_multiplier(lam: Tensor, cov_bound: float, active: Tensor) -> Tensor:
    """η* ``(...)`` with f(η*) ≈ ε_Σ for active states (0 elsewhere), from λ ``(..., k)``.

    Newton's method on g(u) = log f(η) − log ε_Σ in u = log(1 + η): near Σ_o,
    f ≈ f(0)/(1 + η)², so g is almost linear in u and the start u₀ = ½ log(f(0)/ε_Σ)
    is nearly exact. A bracket [lo, hi] on the root (lo = 0 since f(0) > ε_Σ) catches
    steps that leave it, which then bisect (or expand while hi is unknown).
    The tolerance is loose on purpose: the caller takes one more Newton step in η
    (the implicit-gradient step), which squares the remaining error.
    """
    tol = 1e-7 if lam.dtype == torch.float64 else 1e-5
    # float32 cannot always reach tol (x − log1p(x) cancels): stop when u stops moving.
    step_tol = 1e-13 if lam.dtype == torch.float64 else 1e-6
    log_bound = math.log(cov_bound)
    log_lam = lam.log()
    f0, _ = _f_and_slope(torch.zeros_like(lam[..., 0]), lam, log_lam)
    u = torch.where(active, 0.5 * (f0.clamp_min(cov_bound).log() - log_bound), 0.0)
    lo = torch.zeros_like(u)
    hi = torch.full_like(u, math.inf)
    for _ in range(MAX_NEWTON_STEPS):
        eta = torch.expm1(u)
        f, slope = _f_and_slope(eta, lam, log_lam)
        g = f.log() - log_bound
        done = ~active | (g.abs() <= tol)
        if bool(done.all()):
            break
        lo = torch.where(g > 0, u, lo)
        hi = torch.where(g < 0, u, hi)
        newton = u - g * f / (slope * (1.0 + eta))
        outside = ~((newton > lo) & (newton < hi))
        fallback = torch.where(torch.isfinite(hi), 0.5 * (lo + hi), 2.0 * u + 1.0)
        new_u = torch.where(done, u, torch.where(outside, fallback, newton))
        if bool(((new_u - u).abs() <= step_tol * (1.0 + u.abs())).all()):
            u = new_u
            break
        u = new_u
    return torch.where(active, torch.expm1(u), 0.0)


def _interpolated_std(eta: Tensor, lam: Tensor, old_scale: Tensor) -> Tensor:
    """σ̃ = σ_o sqrt(s(η)), s = (1 + η) λ / (1 + η λ), ``(..., k)``."""
    e = eta.unsqueeze(-1)
    return old_scale * torch.sqrt((1.0 + e) * lam / (1.0 + e * lam))


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
    eta_star = solve_multiplier(lam, cov_bound, active)

    # Implicit gradient: one Newton step with grad, η = η* − (f(η*; θ) − ε) / f'(η*),
    # whose value is η* and whose gradient is −(∂f/∂θ) / (∂f/∂η) at the root.
    b, log_det_w = _whitened_projection(white, eta_star)
    f = 0.5 * (b.square().sum((-2, -1)) - k - log_det_w)
    _, slope = _f_and_slope(eta_star, lam, lam.log())
    slope = torch.where(active, slope, -1.0)
    eta = torch.where(active, eta_star - (f - cov_bound) / slope, 0.0)

    b, _ = _whitened_projection(white, eta)
    root = old_scale @ b  # (..., k, k), root rootᵀ = Σ̃
    return cholesky_of(root @ root.transpose(-1, -2))


def _kl_cov_diag(scale: Tensor, old_scale: Tensor, cov_bound: float, active: Tensor) -> Tensor:
    """Projected std ``(..., k)`` for diagonal covariances."""
    lam = (scale / old_scale).square()  # (..., k)
    eta_star = solve_multiplier(lam.detach(), cov_bound, active)
    f, slope = _f_and_slope(eta_star, lam, lam.log())  # f carries ∂f/∂θ
    slope = torch.where(active, slope.detach(), -1.0)
    eta = torch.where(active, eta_star - (f - cov_bound) / slope, 0.0)
    return _interpolated_std(eta, lam, old_scale)


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
    proj_mean, _ = project_mean(mean, old_mean, 0.5 * maha(mean, old_mean, old_scale, full), mean_bound)

    active = kl_cov_part(scale.detach(), old_scale.detach(), full) > cov_bound
    if not bool(active.any()):
        return proj_mean, scale
    cov_fn = _kl_cov_full if full else _kl_cov_diag
    return proj_mean, batch_where(active, cov_fn(scale, old_scale, float(cov_bound), active), scale)
