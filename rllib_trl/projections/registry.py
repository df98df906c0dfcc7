"""The projections by name, for the algorithm's config (``projection="kl"`` etc.)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import Tensor

from rllib_trl.projections.checks import check_projection_args
from rllib_trl.projections.divergences import frobenius_parts, kl_parts, wasserstein_parts
from rllib_trl.projections.frobenius import frobenius_projection
from rllib_trl.projections.kl import kl_projection
from rllib_trl.projections.wasserstein import wasserstein_projection

PROJECTION_NAMES = ("kl", "frobenius", "wasserstein", "none")

Pair = tuple[Tensor, Tensor]


def no_projection(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, *, mean_bound: float, cov_bound: float
) -> Pair:
    """Identity "projection" (a PPO-like run that still logs the trust-region metrics)."""
    check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    return mean, scale


@dataclass(frozen=True)
class TrustRegion:
    """A projection and the split divergence it bounds.

    ``project(mean, scale, old_mean, old_scale, *, mean_bound, cov_bound) -> (mean, scale)``;
    ``parts(mean, scale, old_mean, old_scale) -> (mean_part, cov_part)``, each ``(...)``.
    """

    name: str
    project: Callable[..., Pair]
    parts: Callable[..., Pair]


def get_trust_region(name: str, *, scale_prec: bool = True) -> TrustRegion:
    """The trust region called ``name``; ``"none"`` measures with the KL parts."""
    if name == "kl":
        return TrustRegion(name, kl_projection, kl_parts)
    if name == "frobenius":
        return TrustRegion(
            name,
            partial(frobenius_projection, scale_prec=scale_prec),
            partial(frobenius_parts, scale_prec=scale_prec),
        )
    if name == "wasserstein":
        return TrustRegion(
            name,
            partial(wasserstein_projection, scale_prec=scale_prec),
            partial(wasserstein_parts, scale_prec=scale_prec),
        )
    if name == "none":
        return TrustRegion(name, no_projection, kl_parts)
    raise ValueError(f"projection must be one of {PROJECTION_NAMES}, got {name!r}")
