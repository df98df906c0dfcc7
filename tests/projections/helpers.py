"""Random Gaussian pairs for projection tests."""

from __future__ import annotations

import torch
from torch import Tensor

MEASURES = ("kl", "frobenius", "wasserstein")


def random_spd(gen: torch.Generator, batch: int, k: int, log_lo: float, log_hi: float, dtype) -> Tensor:
    """SPD matrices ``(batch, k, k)`` with log-eigenvalues uniform in [log_lo, log_hi]."""
    q, _ = torch.linalg.qr(torch.randn(batch, k, k, generator=gen, dtype=dtype))
    evals = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(batch, k, generator=gen, dtype=dtype))
    return (q * evals.unsqueeze(-2)) @ q.transpose(-1, -2)


def random_pair(
    seed: int,
    batch: int,
    k: int,
    full: bool,
    dtype=torch.float64,
    shift: float = 1.0,
    spread: float = 1.0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(mean, scale, old_mean, old_scale); per state, the new policy is moved from the old
    by a random amount up to ``shift`` old stds and a covariance change up to e^±spread,
    so a batch mixes states inside and outside a small trust region."""
    gen = torch.Generator().manual_seed(seed)
    old_mean = torch.randn(batch, k, generator=gen, dtype=dtype)
    size = torch.rand(batch, 1, generator=gen, dtype=dtype) ** 2
    if full:
        old_cov = random_spd(gen, batch, k, -1.0, 1.0, dtype)
        old_scale = torch.linalg.cholesky(old_cov)
        change = random_spd(gen, batch, k, -spread, spread, dtype)
        mix = size.unsqueeze(-1)
        eye = torch.eye(k, dtype=dtype)
        factor = torch.linalg.cholesky((1 - mix) * eye + mix * change)
        scale = torch.linalg.cholesky(
            old_scale @ factor @ factor.transpose(-1, -2) @ old_scale.transpose(-1, -2)
        )
        std = torch.diagonal(old_scale, dim1=-2, dim2=-1)
    else:
        old_scale = torch.exp(torch.rand(batch, k, generator=gen, dtype=dtype) - 0.5)
        scale = old_scale * torch.exp(
            spread * size * (2 * torch.rand(batch, k, generator=gen, dtype=dtype) - 1)
        )
        std = old_scale
    mean = old_mean + shift * size * std * torch.randn(batch, k, generator=gen, dtype=dtype)
    return mean, scale, old_mean, old_scale


def to_full(std: Tensor) -> Tensor:
    """Diagonal Cholesky factor ``(..., k, k)`` from a std ``(..., k)``."""
    return torch.diag_embed(std)
