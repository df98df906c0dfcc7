"""The policy's real step per iteration, measured the same way for TRPL and PPO.

After an update, on the whole training batch: π_next is the policy the EnvRunners sample
with next (the network's own output; for TRPL's state-independent std, the std written
back after the update), π_old the one that sampled the batch (its ``action_dist_inputs``).

    policy_step_kl_{mean,max}          KL(π_next ‖ π_old) over the batch's states
    policy_step_mean_part_{mean,max}   mean part of the bounded measure (½ maha for KL)
    policy_step_cov_part_{mean,max}    covariance part of that measure
    policy_step_outside_frac           fraction of states with a part above its bound

The trust-region metrics of the loss (``kl_max`` etc.) are computed on the *projected*
policy, inside the region by construction; these are not, so they can show a step that
leaves it (PPO, ``projection: none``, or a network that the trust-region loss has not
pulled back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.annotations import override
from torch import Tensor

from rllib_trl.projections import TrustRegion, get_trust_region
from rllib_trl.torch.distributions import unpack
from rllib_trl.trpl_defaults import TRPL_DEFAULTS

POLICY_STEP_KL_MEAN_KEY = "policy_step_kl_mean"
POLICY_STEP_KL_MAX_KEY = "policy_step_kl_max"
POLICY_STEP_MEAN_PART_MEAN_KEY = "policy_step_mean_part_mean"
POLICY_STEP_MEAN_PART_MAX_KEY = "policy_step_mean_part_max"
POLICY_STEP_COV_PART_MEAN_KEY = "policy_step_cov_part_mean"
POLICY_STEP_COV_PART_MAX_KEY = "policy_step_cov_part_max"
POLICY_STEP_OUTSIDE_FRAC_KEY = "policy_step_outside_frac"
# Relative slack for "outside": a state-independent std written back as its projection
# sits on the cov bound, and its float32 rounding can put every state above it by ~1e-5
# relative (seen on HalfCheetah with 1e-6: whole iterations counted as 100% outside).
OUTSIDE_SLACK = 1e-4


def step_settings(config: Any) -> dict[str, Any]:
    """``projection``, ``scale_prec``, ``mean_bound``, ``cov_bound`` that a run's step is
    measured with, from a config object or a dict (a trial's ``params.json``): TRPL's own
    values; for algorithms without them (the PPO baselines), KL with
    ``learner_config_dict``'s bounds, else TRPL's defaults."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)
    settings = {key: TRPL_DEFAULTS[key] for key in ("projection", "scale_prec", "mean_bound", "cov_bound")}
    reference = get("learner_config_dict") or {}
    settings.update({key: reference[key] for key in ("mean_bound", "cov_bound") if key in reference})
    settings.update({key: get(key) for key in settings if get(key) is not None})
    return settings


@dataclass(frozen=True)
class StepMeasure:
    """The measure the step is split in (the projection's registry entry; "none" and the
    PPO baselines measure in KL) and the bounds it is compared with."""

    region: TrustRegion
    mean_bound: float
    cov_bound: float

    @classmethod
    def of(cls, config: Any) -> StepMeasure:
        s = step_settings(config)
        region = get_trust_region(s["projection"], scale_prec=bool(s["scale_prec"]))
        return cls(region, float(s["mean_bound"]), float(s["cov_bound"]))


@torch.no_grad()
def policy_step_metrics(
    new: tuple[Tensor, Tensor], old: tuple[Tensor, Tensor], step: StepMeasure, full: bool
) -> dict[str, Tensor]:
    """The metrics above for ``new`` = (mean ``(B, k)``, std ``(B, k)`` or L ``(B, k, k)``)
    against ``old`` of the same shapes, computed in float64."""
    new, old = ([t.double() for t in pair] for pair in (new, old))
    kl = sum(get_trust_region("kl").split(*new, *old, full=full))
    d_mean, d_cov = step.region.split(*new, *old, full=full)
    outside = (d_mean > step.mean_bound * (1 + OUTSIDE_SLACK)) | (
        d_cov > step.cov_bound * (1 + OUTSIDE_SLACK)
    )
    return {
        POLICY_STEP_KL_MEAN_KEY: kl.mean(),
        POLICY_STEP_KL_MAX_KEY: kl.max(),
        POLICY_STEP_MEAN_PART_MEAN_KEY: d_mean.mean(),
        POLICY_STEP_MEAN_PART_MAX_KEY: d_mean.max(),
        POLICY_STEP_COV_PART_MEAN_KEY: d_cov.mean(),
        POLICY_STEP_COV_PART_MAX_KEY: d_cov.max(),
        POLICY_STEP_OUTSIDE_FRAC_KEY: outside.double().mean(),
    }


class PolicyStepLearner(TorchLearner):
    """Mixin for torch learners with Gaussian policies: keeps each update's train batch
    and logs :func:`policy_step_metrics` per module once the update is done.

    Learners whose ``after_gradient_based_update`` changes the policy further (TRPL's std
    write-back) call :meth:`log_policy_step` themselves after that, and set
    ``logs_policy_step_itself``.
    """

    logs_policy_step_itself = False

    @override(Learner)
    def _make_batch_if_necessary(self, training_data):
        # The only place the whole train batch passes before the minibatch loop.
        batch = super()._make_batch_if_necessary(training_data)
        self._policy_step_batch = batch
        return batch

    @override(Learner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        if not self.logs_policy_step_itself:
            self.log_policy_step()

    @torch.no_grad()
    def log_policy_step(self) -> None:
        batch = getattr(self, "_policy_step_batch", None)
        if batch is None:
            return
        for module_id, module_batch in batch.policy_batches.items():
            module = self.module[module_id]
            module = module.unwrapped() if hasattr(module, "unwrapped") else module
            full = bool(getattr(module, "full", False))
            obs, old_inputs = module_batch[Columns.OBS], module_batch[Columns.ACTION_DIST_INPUTS]
            mask = module_batch.get(Columns.LOSS_MASK)
            if mask is not None:
                # RLlib appends one bootstrap row per episode chunk (the last observation,
                # with the previous row's action_dist_inputs) and masks it out of the loss.
                obs, old_inputs = obs[mask], old_inputs[mask]
            # The distribution inputs the EnvRunners sample from: the inference forward
            # gives them for these Gaussian policies without drawing actions (TRPL's
            # exploration forward also samples, which would use up the global RNG here).
            out = module.forward_inference({Columns.OBS: obs})
            new = unpack(out[Columns.ACTION_DIST_INPUTS], full)
            old = unpack(old_inputs, full)
            step = StepMeasure.of(self.config.get_config_for_module(module_id))
            self.metrics.log_dict(policy_step_metrics(new, old, step, full), key=module_id, window=1)
        self._policy_step_batch = None


class PolicyStepPPOTorchLearner(PolicyStepLearner, PPOTorchLearner):
    """RLlib's PPO torch learner, unchanged, plus the policy-step metrics: the PPO
    baselines' ``learner_class`` (YAML: ``learner_class:
    rllib_trl.torch.policy_step:PolicyStepPPOTorchLearner``)."""
