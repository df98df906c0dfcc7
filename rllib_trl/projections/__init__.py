"""Differentiable trust-region projections for Gaussian policies (pure PyTorch, no Ray).

A covariance is given by its scale: a std ``(..., k)`` (diagonal) or a lower Cholesky
factor ``(..., k, k)`` (full). See DESIGN.md §1 for the equations.
"""

from rllib_trl.projections.divergences import frobenius_parts, kl_parts, wasserstein_parts
from rllib_trl.projections.entropy import ENTROPY_SCHEDULES, entropy_bound, entropy_projection
from rllib_trl.projections.frobenius import frobenius_projection
from rllib_trl.projections.gaussian import covariance, entropy, is_full
from rllib_trl.projections.kl import kl_projection
from rllib_trl.projections.registry import (
    TrustRegion,
    get_trust_region,
    no_projection,
    projection_names,
    register_trust_region,
)
from rllib_trl.projections.wasserstein import wasserstein_projection

__all__ = [
    "ENTROPY_SCHEDULES",
    "TrustRegion",
    "covariance",
    "entropy",
    "entropy_bound",
    "entropy_projection",
    "frobenius_parts",
    "frobenius_projection",
    "get_trust_region",
    "is_full",
    "kl_parts",
    "kl_projection",
    "no_projection",
    "projection_names",
    "register_trust_region",
    "wasserstein_parts",
    "wasserstein_projection",
]
