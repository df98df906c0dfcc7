"""TRPL on RLlib's old API stack: a ``TorchPolicyV2`` (via PPO's torch policy) whose loss
applies the same projection code as the new-stack learner (``trpl_loss.py``).

Supported there: a diagonal Gaussian with one state-independent std (RLlib's
``free_log_std`` model), every projection, the trust-region metrics. Not supported on the
old stack (rejected by ``TRPLConfig.validate``): full covariances, a state-dependent std,
entropy control, reward normalisation, ratio-clipping off/on is as on the new stack.
"""

from __future__ import annotations

import torch
from ray.rllib.algorithms.ppo.ppo_torch_policy import PPOTorchPolicy
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import SampleBatch
from ray.rllib.utils.annotations import override
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.torch_utils import explained_variance

from rllib_trl.torch.distributions import unpack
from rllib_trl.torch.trpl_loss import (
    KL_MEAN_KEY,
    METRIC_KEYS,
    TRUST_REGION_LOSS_KEY,
    VF_EXPLAINED_VAR_KEY,
    TRPLSettings,
    diagnostics,
    policy_terms,
    projected_free_scale,
)

STAT_KEYS = METRIC_KEYS


class TRPLTorchPolicy(PPOTorchPolicy):
    """PPO's old-stack torch policy with TRPL's loss."""

    @override(PPOTorchPolicy)
    def loss(self, model, dist_class, train_batch: SampleBatch):
        settings = TRPLSettings.from_config(self.config)
        logits, _ = model(train_batch)
        raw = unpack(logits, full=False)  # RLlib's diagonal Gaussian layout: [mean, log std]
        old = unpack(train_batch[SampleBatch.ACTION_DIST_INPUTS], full=False)
        terms = policy_terms(
            settings,
            raw,
            old,
            actions=train_batch[SampleBatch.ACTIONS],
            action_logp=train_batch[SampleBatch.ACTION_LOGP],
            advantages=train_batch[Postprocessing.ADVANTAGES],
            full=False,
            contextual_std=False,
            beta=None,
            mean_of=torch.mean,
        )
        values = model.value_function()
        vf_loss = (values - train_batch[Postprocessing.VALUE_TARGETS]).square().mean()
        total = terms["policy_loss"] + terms[TRUST_REGION_LOSS_KEY] + self.config["vf_loss_coeff"] * vf_loss
        stats = model.tower_stats
        stats.update(diagnostics(settings, raw, terms["projected"], old, torch.mean, torch.max, False))
        stats.update(
            {
                "total_loss": total,
                POLICY_LOSS_KEY: terms["policy_loss"],
                TRUST_REGION_LOSS_KEY: terms[TRUST_REGION_LOSS_KEY],
                VF_LOSS_KEY: vf_loss,
                VF_EXPLAINED_VAR_KEY: explained_variance(train_batch[Postprocessing.VALUE_TARGETS], values),
                ENTROPY_KEY: terms["entropy"],
                # PPO's KL-coefficient update reads these
                "mean_kl_loss": torch.zeros((), device=total.device),
                "mean_entropy": terms["entropy"],
                "mean_policy_loss": terms["policy_loss"],
                "mean_vf_loss": vf_loss,
            }
        )
        return total

    @override(PPOTorchPolicy)
    def stats_fn(self, train_batch: SampleBatch) -> dict:
        stats = {key: torch.mean(torch.stack(self.get_tower_stats(key))) for key in STAT_KEYS}
        stats["total_loss"] = torch.mean(torch.stack(self.get_tower_stats("total_loss")))
        stats["cur_lr"] = self.cur_lr
        stats["kl"] = stats[KL_MEAN_KEY]
        return convert_to_numpy(stats)

    def free_log_std(self) -> torch.nn.Parameter:
        """The state-independent log std of RLlib's ``free_log_std`` model."""
        return self.model._append_free_log_std.log_std

    @torch.no_grad()
    def replace_std_by_projection(self, old_log_std: torch.Tensor) -> None:
        """Once per iteration: std ← its projection around the std that sampled the data."""
        settings = TRPLSettings.from_config(self.config)
        param = self.free_log_std()
        p_std = projected_free_scale(settings, param.exp(), old_log_std.exp(), None)
        param.copy_(p_std.log())
