"""Training the value net alone, before the policy's epochs (``vf_num_epochs``).

    for each of num_epochs epochs, over a fresh np.random permutation of the batch:
        for each of the B // minibatch_size full minibatches (one of all B rows if fewer):
            vf_loss = E[(V(s) − V_target)²] over the valid rows; one step of the value
            net's own optimizer (gradients clipped as the learner clips them)

The advantages were computed before this, with the value net the iteration started with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from ray.rllib.utils.torch_utils import clip_gradients
from torch import Tensor


def fit_critic(
    values_of: Callable[[Tensor], Tensor],
    parameters: list[Tensor],
    optimizer: torch.optim.Optimizer,
    obs: Tensor,
    value_targets: Tensor,
    mask: Tensor | None,
    *,
    num_epochs: int,
    minibatch_size: int,
    grad_clip: float | None,
    grad_clip_by: str,
) -> Tensor:
    """Fit V to ``value_targets`` ``(B,)`` from ``obs`` ``(B, ...)`` (rows with a False
    ``mask`` ``(B,)`` do not count); returns the last minibatch's loss (detached).

    ``values_of(obs)`` gives V ``(b,)``; ``parameters`` are the value net's, the only
    ones ``optimizer`` steps.
    """
    n = len(obs)
    loss = torch.zeros(())
    for _ in range(num_epochs):
        order = torch.from_numpy(np.random.permutation(n)).to(obs.device)
        size = min(minibatch_size, n)
        for start in range(0, n - size + 1, size):  # full minibatches only, as RLlib's
            rows = order[start : start + size]
            error = (values_of(obs[rows]) - value_targets[rows]).square()
            if mask is not None:
                weight = mask[rows].to(error.dtype)
                loss = (error * weight).sum() / weight.sum().clamp_min(1.0)
            else:
                loss = error.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:  # as RLlib's postprocess_gradients: None and 0 do not clip
                grads = {i: p.grad for i, p in enumerate(parameters) if p.grad is not None}
                clip_gradients(grads, grad_clip=grad_clip, grad_clip_by=grad_clip_by)
                for i, grad in grads.items():  # "value" clipping returns new tensors
                    parameters[i].grad = grad
            optimizer.step()
    return loss.detach()
