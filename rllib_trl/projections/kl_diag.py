"""The KL projection of a diagonal Gaussian as one autograd node: mean and std together,
with the gradient written out.

Mean: with δ = μ − μ_o, w = δ / σ_o and d = ½ Σ w², states with d > ε_μ get
μ̃ = μ_o + c δ, c = sqrt(ε_μ / d). Its gradient, for the incoming g = ∂L/∂μ̃:

    ∂L/∂δ = c g + a w / σ_o,   ∂L/∂σ_o (mean) = −a w² / σ_o,   a = −½ (c / d) (g · δ),

and ∂L/∂μ = ∂L/∂δ, ∂L/∂μ_o = g − ∂L/∂δ.

Std: σ̃ = σ_o sqrt(s(η)), s = (1 + η) λ / (1 + η λ), λ = σ² / σ_o², η from
``kl_solver``. With x = s − 1 = (λ − 1) / D, D = 1 + η λ, the implicit gradient of η
(dη/dλ_j = −(∂f/∂λ_j) / (∂f/∂η), ∂f/∂η = −½ Σ x² / (1 + η)) collapses, for the incoming
h = ∂L/∂σ̃, to

    p = h ⊙ σ̃,   b = −(Σ_i p_i x_i) / (Σ_i x_i²),   T = (p + b x) / D  (= 2 λ ∂L/∂λ),
    ∂L/∂σ = T / σ,   ∂L/∂σ_o (std) = h sqrt(s) − T / σ_o.

States inside a bound are returned unchanged (the identity, gradient identity).

Both passes work on ``(..., k)`` arrays as given: the elementwise work needs no
layout, and each sum over i is a product with a ones vector (on the CPU a BLAS call,
several times faster than NumPy's reduction over a short trailing axis, and no copy to
an entries-first layout and back). Only the multiplier's solve takes λ entries first
(``kl_solver``). On the CPU they run in NumPy, where each op costs a few µs less than in
torch; elsewhere in torch.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rllib_trl.projections.kl_solver import solve_entries_first


def _numpy_path(t: Tensor) -> bool:
    """NumPy on the CPU, torch elsewhere."""
    return t.device.type == "cpu"


def _array(t: Tensor, cpu: bool):
    """The tensor's data without autograd: a NumPy view on the CPU."""
    return t.detach().numpy() if cpu else t.detach()


def _tensor(a, cpu: bool) -> Tensor:
    return torch.from_numpy(a) if cpu else a


def _row_sums(cpu: bool, k: int, dtype):
    """Σ_i over the last axis, keeping it (``(..., k)`` -> ``(..., 1)``)."""
    if cpu:  # as 2-D: np.dot of a 3-D array and a vector is a generic loop, not BLAS
        ones = np.ones(k, dtype=dtype)
        return lambda a: np.dot(a.reshape(-1, k), ones).reshape(*a.shape[:-1], 1)
    return lambda a: a.sum(-1, keepdim=True)


def _entries_first_float64(lam, cpu: bool):
    """λ ``(..., k)`` -> float64 ``(k, ...)`` for the solver."""
    if cpu:
        return np.ascontiguousarray(np.moveaxis(lam, -1, 0), dtype=np.float64)
    return lam.movedim(-1, 0).double()


class KLDiagProjection(torch.autograd.Function):
    """(μ, σ, μ_o, σ_o) ``(..., k)`` each -> (μ̃, σ̃) ``(..., k)`` (see the module docstring).

    Written so that states inside a bound need no mask on the arrays:
    μ̃ = μ + (c − 1) δ with c = 1 there, σ̃ = σ ρ with ρ = sqrt((1 + η) / D) = 1 at η = 0,
    and the backward's per-state coefficients a, b are 0 there. In terms of ρ,

        ∂L/∂σ = h ρ / D + b x / (D σ),   ∂L/∂σ_o (std) = h σ̃ η λ / (D σ_o) − b x / (D σ_o),

    which is the module docstring's T / σ and h sqrt(s) − T / σ_o. The forward keeps
    the factors of h and b, so the backward is a few multiply-adds.
    """

    @staticmethod
    def forward(ctx, mean, scale, old_mean, old_scale, mean_bound: float, cov_bound: float):  # noqa: D102
        cpu = _numpy_path(mean)
        xp = np if cpu else torch
        m, s, mo, so = (_array(t, cpu) for t in (mean, scale, old_mean, old_scale))
        row_sum = _row_sums(cpu, m.shape[-1], m.dtype)
        with np.errstate(all="ignore") if cpu else nullcontext():  # unused lanes of where
            delta = m - mo
            w = delta / so
            d = 0.5 * row_sum(w * w)
            mean_active = d > mean_bound
            c = xp.sqrt(mean_bound / xp.where(mean_active, d, mean_bound))
            proj_mean = m + (c - 1.0) * delta

            ratio = s / so
            lam = ratio * ratio
            eta, cov_active = solve_entries_first(_entries_first_float64(lam, cpu), cov_bound, None, xp)
            eta = (eta.astype(lam.dtype, copy=False) if cpu else eta.to(lam.dtype))[..., None]
            cov_active = cov_active[..., None]
            denom = 1.0 + eta * lam
            rho = xp.sqrt((1.0 + eta) / denom)
            proj_scale = s * rho

        ctx.cpu = cpu
        if not any(ctx.needs_input_grad[:4]):
            return _tensor(proj_mean, cpu), _tensor(proj_scale, cpu)
        with np.errstate(all="ignore") if cpu else nullcontext():
            # factors for the backward (see the class docstring)
            x = (lam - 1.0) / denom
            x_over_d = x / denom
            sum_x2 = row_sum(x * x)
            w_over_so = w / so
            ctx.row_sum = row_sum
            ctx.mean = (delta, w_over_so, c, xp.where(mean_active, -0.5 * c / d, 0.0))
            ctx.cov = (
                proj_scale * x,
                xp.where(cov_active, 1.0 / xp.where(cov_active, sum_x2, 1.0), 0.0),
                rho / denom,
                x_over_d / s,
            )
            # ∂/∂σ_o factors only where σ_o takes a gradient (in a loss it is detached)
            ctx.old = (
                (proj_scale * eta * lam / (denom * so), x_over_d / so, w * w_over_so)
                if ctx.needs_input_grad[3]
                else None
            )
        return _tensor(proj_mean, cpu), _tensor(proj_scale, cpu)

    @staticmethod
    @once_differentiable  # the written-out gradient is not itself differentiable: say so
    def backward(ctx, grad_mean: Tensor, grad_scale: Tensor):  # noqa: D102
        cpu, row_sum = ctx.cpu, ctx.row_sum
        delta, w_over_so, c, a_factor = ctx.mean
        z, inv_sum_x2, dsig_h, dsig_b = ctx.cov
        need_mean, need_scale, need_old_mean, need_old_scale = ctx.needs_input_grad[:4]
        g, h = _array(grad_mean, cpu), _array(grad_scale, cpu)
        a = a_factor * row_sum(g * delta)
        grad_delta = c * g + a * w_over_so
        b = -row_sum(h * z) * inv_sum_x2
        grads = (
            grad_delta if need_mean else None,
            h * dsig_h + b * dsig_b if need_scale else None,
            g - grad_delta if need_old_mean else None,
            h * ctx.old[0] - b * ctx.old[1] - a * ctx.old[2] if need_old_scale else None,
        )
        return (*(None if v is None else _tensor(v, cpu) for v in grads), None, None)


def kl_diag_projection(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, mean_bound: float, cov_bound: float
) -> tuple[Tensor, Tensor]:
    """The KL projection for std ``(..., k)`` inputs (checked by the caller); returns
    ``(mean, scale)`` ``(..., k)``."""
    if not torch.is_grad_enabled():  # no backward: let forward skip its factors
        mean, scale, old_mean, old_scale = (t.detach() for t in (mean, scale, old_mean, old_scale))
    return KLDiagProjection.apply(mean, scale, old_mean, old_scale, float(mean_bound), float(cov_bound))
