"""The projections by name: one entry per projection, read by the loss, the learner's
diagnostics, the real-step metrics, the plot and the benchmarks.

Adding a divergence is one :func:`register_trust_region` call (a builder that returns its
:class:`TrustRegion` for a ``scale_prec`` setting); ``projection="<name>"`` then works in
``TRPLConfig``, the loss, the metrics and ``rllib-trl plot``. Register it in a module that
every process imports (EnvRunners and learners run in their own processes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from torch import Tensor

from rllib_trl.projections.checks import check_gaussians, check_projection_args
from rllib_trl.projections.divergences import (
    frobenius_split,
    kl_mean_part,
    kl_split,
    scaled_mean_part,
    wasserstein_split,
)
from rllib_trl.projections.frobenius import frobenius_projection
from rllib_trl.projections.kl import kl_projection
from rllib_trl.projections.wasserstein import wasserstein_projection

Pair = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class TrustRegion:
    """A projection and the split divergence its bounds are stated in.

    ``project(mean, scale, old_mean, old_scale, *, mean_bound, cov_bound) -> (mean, scale)``
        (checks its inputs);
    ``split(mean, scale, old_mean, old_scale, *, full) -> (mean_part, cov_part)``, each
        ``(...)``, on checked inputs;
    ``mean_part(mean, old_mean, old_scale, *, full) -> (...)``: the split's mean part alone
        (the trust-region loss of a state-independent std needs only this);
    ``measure``: the name of that divergence ("kl" for "none", which does not project).
    """

    name: str
    project: Callable[..., Pair]
    split: Callable[..., Pair]
    mean_part: Callable[..., Tensor]
    measure: str

    def parts(self, mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor) -> Pair:
        """:attr:`split` with input checks (scale ``(..., k)`` std or ``(..., k, k)`` Cholesky)."""
        full = check_gaussians(mean, scale, old_mean, old_scale)
        return self.split(mean, scale, old_mean, old_scale, full=full)


Builder = Callable[[bool], TrustRegion]  # scale_prec -> the resolved entry
_REGISTRY: dict[str, Builder] = {}


def register_trust_region(name: str, builder: Builder) -> None:
    """Make ``projection=name`` available; ``builder(scale_prec)`` returns its entry."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a trust region needs a non-empty name, got {name!r}")
    _REGISTRY[name] = builder


def projection_names() -> tuple[str, ...]:
    """The registered projection names, built-in ones first."""
    return tuple(_REGISTRY)


def get_trust_region(name: str, *, scale_prec: bool = True) -> TrustRegion:
    """The trust region called ``name``; an unknown name raises ``ValueError``."""
    builder = _REGISTRY.get(name)
    if builder is None:
        raise ValueError(f"projection must be one of {list(_REGISTRY)}, got {name!r}")
    return builder(scale_prec)


def no_projection(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, *, mean_bound: float, cov_bound: float
) -> Pair:
    """Identity "projection" (a PPO-like run that still logs the trust-region metrics)."""
    check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    return mean, scale


def _kl(scale_prec: bool) -> TrustRegion:
    return TrustRegion("kl", kl_projection, kl_split, kl_mean_part, measure="kl")


def _scaled(name: str, project: Callable[..., Pair], split: Callable[..., Pair]) -> Builder:
    def build(scale_prec: bool) -> TrustRegion:
        return TrustRegion(
            name,
            partial(project, scale_prec=scale_prec),
            partial(split, scale_prec=scale_prec),
            partial(scaled_mean_part, scale_prec=scale_prec),
            measure=name,
        )

    return build


register_trust_region("kl", _kl)
register_trust_region("frobenius", _scaled("frobenius", frobenius_projection, frobenius_split))
register_trust_region("wasserstein", _scaled("wasserstein", wasserstein_projection, wasserstein_split))
register_trust_region("none", lambda scale_prec: replace(_kl(scale_prec), name="none", project=no_projection))
