"""Entropy control: keep H(π̃) at or above (or exactly at) a scheduled bound β.

H(π) = ½ log det(2πe Σ). Scaling the std / Cholesky factor by c adds k log c to H, so
c = exp((β − H) / k) moves the entropy to β exactly.
"""

from __future__ import annotations

from torch import Tensor

from rllib_trl.projections.gaussian import batch_where, entropy, is_full

ENTROPY_SCHEDULES = (None, "linear", "exp")


def entropy_projection(
    mean: Tensor, scale: Tensor, *, entropy_bound: float | Tensor, equality: bool = False
) -> tuple[Tensor, Tensor]:
    """Rescale the covariance so that H ≥ β (inequality) or H = β (``equality``).

    Args:
        mean: ``(..., k)``, returned unchanged (it fixes the covariance form).
        scale: std ``(..., k)`` or lower Cholesky factor ``(..., k, k)``.
        entropy_bound: β, a float or a tensor broadcastable to ``(...)``.
        equality: always move H to β instead of only raising it.

    Returns:
        ``(mean, scale)``; states already above β are unchanged in the inequality case.
    """
    full = is_full(mean, scale)
    k = mean.shape[-1]
    ent = entropy(scale, full)  # (...)
    factor = ((entropy_bound - ent) / k).exp()
    factor = factor.unsqueeze(-1).unsqueeze(-1) if full else factor.unsqueeze(-1)
    scaled = scale * factor
    if equality:
        return mean, scaled
    return mean, batch_where(ent < entropy_bound, scaled, scale)


def entropy_bound(
    schedule: str | None,
    *,
    initial_entropy: float,
    target_entropy: float,
    temperature: float,
    step: int,
    total_steps: int,
    action_dim: int,
) -> float | None:
    """β at ``step`` of ``total_steps`` (None when no schedule is set).

    linear: H₀ + t (target − H₀) / T.
    exp:    k·target + (H₀ − k·target) · temperature^(10 t / T)  (target per action dim).
    """
    if schedule is None:
        return None
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    if schedule == "linear":
        return initial_entropy + frac * (target_entropy - initial_entropy)
    if schedule == "exp":
        total_target = action_dim * target_entropy
        return total_target + (initial_entropy - total_target) * temperature ** (10.0 * frac)
    raise ValueError(f"entropy_schedule must be one of {ENTROPY_SCHEDULES}, got {schedule!r}")
