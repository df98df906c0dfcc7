"""Helpers for Gaussians carried by their scale.

A covariance is carried by its *scale*: a std vector ``(..., k)`` for a diagonal
covariance, or a lower Cholesky factor ``(..., k, k)`` for a full one. Every function
here takes the mean ``(..., k)`` to tell the two forms apart.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def is_full(mean: Tensor, scale: Tensor) -> bool:
    """True if ``scale`` is a Cholesky factor ``(..., k, k)``, False for a std ``(..., k)``."""
    return scale.dim() == mean.dim() + 1


def covariance(scale: Tensor, full: bool) -> Tensor:
    """Σ from its scale: ``std²`` ``(..., k)`` or ``L Lᵀ`` ``(..., k, k)``."""
    if full:
        return scale @ scale.transpose(-1, -2)
    return scale.square()


def log_det(scale: Tensor, full: bool) -> Tensor:
    """log det Σ = 2 Σ_i log scale_ii, shape ``(...)``."""
    diag = torch.diagonal(scale, dim1=-2, dim2=-1) if full else scale
    return 2.0 * diag.log().sum(-1)


def whiten(x: Tensor, old_scale: Tensor, full: bool) -> Tensor:
    """L_o⁻¹ x for a vector ``(..., k)`` or a matrix ``(..., k, m)`` (full), x / std_o (diag)."""
    if not full:
        return x / old_scale
    if x.dim() == old_scale.dim() - 1:
        return torch.linalg.solve_triangular(old_scale, x.unsqueeze(-1), upper=False).squeeze(-1)
    return torch.linalg.solve_triangular(old_scale, x, upper=False)


def maha(mean: Tensor, old_mean: Tensor, old_scale: Tensor, full: bool) -> Tensor:
    """Squared Mahalanobis distance (μ − μ_o)ᵀ Σ_o⁻¹ (μ − μ_o), shape ``(...)``."""
    return whiten(mean - old_mean, old_scale, full).square().sum(-1)


def entropy(scale: Tensor, full: bool) -> Tensor:
    """Differential entropy H = ½ log det(2πe Σ), shape ``(...)``."""
    k = scale.shape[-1]
    return 0.5 * k * (1.0 + math.log(2.0 * math.pi)) + 0.5 * log_det(scale, full)


def cholesky_of(cov: Tensor) -> Tensor:
    """Lower Cholesky factor of a symmetric positive definite ``(..., k, k)``."""
    return torch.linalg.cholesky(0.5 * (cov + cov.transpose(-1, -2)))


def batch_where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.where`` with a per-state mask ``(...)`` broadcast over trailing dims of a, b."""
    while mask.dim() < a.dim():
        mask = mask.unsqueeze(-1)
    return torch.where(mask, a, b)


class _SymSqrt(torch.autograd.Function):
    """Symmetric square root S = Σ^½ of an SPD matrix, with a backward that is
    well defined for repeated eigenvalues.

    Forward: Σ = Q diag(λ) Qᵀ, S = Q diag(√λ) Qᵀ.
    Backward: S² = Σ gives S dS + dS S = dΣ (a Sylvester equation). In the eigenbasis
    dS̄_ij = dΣ̄_ij / (√λ_i + √λ_j), and that map is self-adjoint, so
    ∂L/∂Σ = Q [(Qᵀ G Q) ⊘ (√λ_i + √λ_j)] Qᵀ for the incoming gradient G. The
    denominator is positive for SPD Σ, unlike eigh's 1/(λ_i − λ_j).
    """

    @staticmethod
    def forward(ctx, cov: Tensor) -> Tensor:  # noqa: D102
        evals, evecs = torch.linalg.eigh(cov)
        root = evals.clamp_min(torch.finfo(cov.dtype).tiny).sqrt()
        ctx.save_for_backward(root, evecs)
        return (evecs * root.unsqueeze(-2)) @ evecs.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        root, evecs = ctx.saved_tensors
        inner = evecs.transpose(-1, -2) @ grad @ evecs
        inner = inner / (root.unsqueeze(-1) + root.unsqueeze(-2))
        return evecs @ inner @ evecs.transpose(-1, -2)


def sym_sqrt(cov: Tensor) -> Tensor:
    """Symmetric square root Σ^½ ``(..., k, k)`` of an SPD matrix (not its Cholesky factor)."""
    return _SymSqrt.apply(0.5 * (cov + cov.transpose(-1, -2)))
