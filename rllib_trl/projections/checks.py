"""Input checks shared by every projection: one ValueError naming the argument."""

from __future__ import annotations

import torch
from torch import Tensor


def check_bound(name: str, value: float | Tensor) -> None:
    """Reject a non-positive or non-finite trust-region bound."""
    bad = (
        (~torch.isfinite(value) | (value <= 0)).any()
        if torch.is_tensor(value)
        else not (value > 0 and value < float("inf"))
    )
    if bad:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def check_scale(name: str, mean: Tensor, scale: Tensor) -> bool:
    """Check that ``scale`` is a std ``(..., k)`` or a lower Cholesky factor
    ``(..., k, k)`` matching ``mean`` ``(..., k)``; return True for the full form."""
    k = mean.shape[-1]
    if scale.shape == mean.shape:
        if (scale <= 0).any():
            raise ValueError(f"{name} must be a std with positive entries (diagonal covariance)")
        return False
    if scale.shape == (*mean.shape, k):
        diag = torch.diagonal(scale, dim1=-2, dim2=-1)
        if (diag <= 0).any():
            raise ValueError(f"{name} must be a lower Cholesky factor with a positive diagonal")
        if torch.triu(scale, diagonal=1).any():
            raise ValueError(f"{name} must be lower triangular (a Cholesky factor), not a full matrix")
        return True
    raise ValueError(
        f"{name} has shape {tuple(scale.shape)}; expected {tuple(mean.shape)} (std) or "
        f"{(*mean.shape, k)} (Cholesky factor) for mean of shape {tuple(mean.shape)}"
    )


def check_gaussians(mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor) -> bool:
    """Validate a new/old Gaussian pair; return True for full covariances."""
    if mean.dim() < 1:
        raise ValueError(f"mean must have shape (..., k), got {tuple(mean.shape)}")
    if old_mean.shape != mean.shape:
        raise ValueError(f"old_mean has shape {tuple(old_mean.shape)}, but mean has {tuple(mean.shape)}")
    full = check_scale("scale", mean, scale)
    if check_scale("old_scale", old_mean, old_scale) != full:
        raise ValueError("old_scale must have the same form as scale (both std or both Cholesky)")
    if not (mean.dtype == scale.dtype == old_mean.dtype == old_scale.dtype):
        raise ValueError("mean, scale, old_mean and old_scale must share one floating dtype")
    if not mean.is_floating_point():
        raise ValueError(f"mean must be a floating point tensor, got {mean.dtype}")
    return full


def check_projection_args(
    mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, mean_bound, cov_bound
) -> bool:
    """All checks of a projection call; returns True for full covariances."""
    check_bound("mean_bound", mean_bound)
    check_bound("cov_bound", cov_bound)
    return check_gaussians(mean, scale, old_mean, old_scale)
