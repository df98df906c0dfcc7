"""TRPL's loss terms and diagnostics, shared by the new-stack learner and the
old-stack policy (framework plumbing stays in those two; the math lives here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from torch import Tensor

from rllib_trl.projections import TrustRegion, entropy_projection, get_trust_region
from rllib_trl.torch.distributions import make_distribution

TRUST_REGION_LOSS_KEY = "trust_region_loss"
VF_EXPLAINED_VAR_KEY = "vf_explained_var"
KL_MEAN_KEY = "kl_mean"
KL_MAX_KEY = "kl_max"
MEAN_CONSTRAINT_KEY = "mean_constraint"
MEAN_CONSTRAINT_MAX_KEY = "mean_constraint_max"
COV_CONSTRAINT_KEY = "cov_constraint"
COV_CONSTRAINT_MAX_KEY = "cov_constraint_max"
MEAN_PROJECTED_FRAC_KEY = "mean_projected_frac"
COV_PROJECTED_FRAC_KEY = "cov_projected_frac"
ENTROPY_BOUND_KEY = "entropy_bound"
# The keys `diagnostics` returns, in one place for the old stack's stats.
DIAGNOSTIC_KEYS = (
    KL_MEAN_KEY,
    KL_MAX_KEY,
    MEAN_CONSTRAINT_KEY,
    MEAN_CONSTRAINT_MAX_KEY,
    COV_CONSTRAINT_KEY,
    COV_CONSTRAINT_MAX_KEY,
    MEAN_PROJECTED_FRAC_KEY,
    COV_PROJECTED_FRAC_KEY,
)
# Every metric the loss reports per module (learner, and the old stack's stats).
METRIC_KEYS = (
    *DIAGNOSTIC_KEYS,
    TRUST_REGION_LOSS_KEY,
    POLICY_LOSS_KEY,
    VF_LOSS_KEY,
    VF_EXPLAINED_VAR_KEY,
    ENTROPY_KEY,
)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
Reduce = Callable[[Tensor], Tensor]
Pair = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class TRPLSettings:
    """The config values the loss reads, from a TRPLConfig or an old-stack config dict,
    with the projection's registry entry resolved once (``trust_region``)."""

    projection: str
    mean_bound: float
    cov_bound: float
    trust_region_coeff: float
    scale_prec: bool
    projection_dtype: str
    entropy_eq: bool
    entropy_first: bool
    clip_param: float | None
    trust_region: TrustRegion = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        region = get_trust_region(self.projection, scale_prec=self.scale_prec)
        object.__setattr__(self, "trust_region", region)

    @classmethod
    def from_config(cls, config: Any) -> TRPLSettings:
        get = config.get if isinstance(config, dict) else lambda key: getattr(config, key)
        names = [name for name, spec in cls.__dataclass_fields__.items() if spec.init]
        return cls(**{name: get(name) for name in names})


def project(s: TRPLSettings, mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, beta) -> Pair:
    """π̃: entropy control (optional, before or after) and the trust-region projection of
    π around π_old, computed in ``projection_dtype`` and cast back."""
    dtype = DTYPES[s.projection_dtype]
    p_mean, p_scale, o_mean, o_scale = (t.to(dtype) for t in (mean, scale, old_mean, old_scale))
    if beta is not None and s.entropy_first:
        p_mean, p_scale = entropy_projection(p_mean, p_scale, entropy_bound=beta, equality=s.entropy_eq)
    p_mean, p_scale = s.trust_region.project(
        p_mean, p_scale, o_mean, o_scale, mean_bound=s.mean_bound, cov_bound=s.cov_bound
    )
    if beta is not None and not s.entropy_first:
        p_mean, p_scale = entropy_projection(p_mean, p_scale, entropy_bound=beta, equality=s.entropy_eq)
    return p_mean.to(mean.dtype), p_scale.to(scale.dtype)


def standardized(advantages: Tensor, mask: Tensor | None = None) -> Tensor:
    """(A − mean) / (std + 1e-8) ``(B,)`` over the minibatch's valid rows (``mask``
    ``(B,)`` bool, or None for all), std with Bessel's correction as ``torch.std``:
    ``advantage_normalization="minibatch"``. With fewer than 2 valid rows there is no
    std: the advantages are only centred (and left as they are with none)."""
    valid = advantages if mask is None or bool(mask.all()) else advantages[mask]
    if len(valid) < 2:
        return advantages - valid.mean() if len(valid) else advantages
    return (advantages - valid.mean()) / (valid.std() + 1e-8)


def policy_terms(
    s: TRPLSettings,
    raw: Pair,
    old: Pair,
    *,
    actions: Tensor,
    action_logp: Tensor,
    advantages: Tensor,
    full: bool,
    contextual_std: bool,
    beta: float | None,
    mean_of: Reduce,
    with_entropy: bool = True,
) -> dict[str, Tensor]:
    """policy_loss = −E[A π̃(a|s)/π_old(a|s)] (ratio-clipped if ``clip_param``);
    trust_region_loss = coeff · E[d(π, sg(π̃))] (mean part only for a state-independent
    std); the projected policy and (``with_entropy``) its entropy."""
    p_mean, p_scale = project(s, *raw, *old, beta)
    proj_dist = make_distribution(p_mean, p_scale, full)
    ratio = torch.exp(proj_dist.logp(actions) - action_logp)
    surrogate = advantages * ratio
    if s.clip_param is not None:
        surrogate = torch.min(surrogate, advantages * ratio.clamp(1 - s.clip_param, 1 + s.clip_param))
    # d(π, sg(π̃)); the projection has checked these tensors. A state-independent std
    # takes no gradient from it, so then only the mean part is computed.
    target = (p_mean.detach(), p_scale.detach())
    region = s.trust_region
    if contextual_std:
        distance = sum(region.split(*raw, *target, full=full))
    else:
        distance = region.mean_part(raw[0], *target, full=full)
    terms = {
        "policy_loss": -mean_of(surrogate),
        TRUST_REGION_LOSS_KEY: s.trust_region_coeff * mean_of(distance),
        "projected": (p_mean, p_scale),
    }
    if with_entropy:
        terms["entropy"] = mean_of(proj_dist.entropy())
    return terms


@torch.no_grad()
def diagnostics(
    s: TRPLSettings, raw: Pair, projected: Pair, old: Pair, mean_of: Reduce, max_of: Reduce, full: bool
) -> dict:
    """KL(π̃ ‖ π_old), π̃'s constraint values in the projection's own measure, and the
    fraction of states whose network output the projection moved (no input checks: the
    projection has checked these tensors)."""
    dtype = DTYPES[s.projection_dtype]
    raw, projected, old = ([t.to(dtype) for t in pair] for pair in (raw, projected, old))
    kl = sum(get_trust_region("kl").split(*projected, *old, full=full))
    d_mean, d_cov = s.trust_region.split(*projected, *old, full=full)
    raw_mean, raw_cov = s.trust_region.split(*raw, *old, full=full)
    return {
        KL_MEAN_KEY: mean_of(kl),
        KL_MAX_KEY: max_of(kl),
        MEAN_CONSTRAINT_KEY: mean_of(d_mean),
        MEAN_CONSTRAINT_MAX_KEY: max_of(d_mean),
        COV_CONSTRAINT_KEY: mean_of(d_cov),
        COV_CONSTRAINT_MAX_KEY: max_of(d_cov),
        MEAN_PROJECTED_FRAC_KEY: mean_of((raw_mean > s.mean_bound).to(dtype)),
        COV_PROJECTED_FRAC_KEY: mean_of((raw_cov > s.cov_bound).to(dtype)),
    }


@torch.no_grad()
def projected_free_scale(s: TRPLSettings, scale: Tensor, old_scale: Tensor, beta) -> Tensor:
    """The projection of a state-independent std / Cholesky factor around the one that
    sampled the data (it is not pulled back by the trust-region loss, so it is replaced
    by this once per iteration). Shapes: ``(k,)`` or ``(k, k)``."""
    k = scale.shape[0]
    zeros = scale.new_zeros(1, k)
    _, p_scale = project(s, zeros, scale.unsqueeze(0), zeros, old_scale.unsqueeze(0), beta)
    return p_scale[0]
