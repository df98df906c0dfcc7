"""TRPL's torch learner: per-minibatch loss, per-iteration std copy and entropy bound.

Per minibatch (terms in ``trpl_loss.py``): project π onto the trust region around
π_old (the batch's ``action_dist_inputs``), then

    policy_loss       = −E[ A · π̃(a|s) / π_old(a|s) ]          (optionally ratio-clipped)
    trust_region_loss = trust_region_coeff · E[ d(π, sg(π̃)) ]  (mean part only for a
                                                              state-independent std)
    vf_loss           = vf_loss_coeff · E[ (V(s) − V_target)² ] (own network, optimizer)

Per iteration (``before_/after_gradient_based_update``): resolve the settings, remember
the std that sampled the batch and the entropy bound β; afterwards log the last
minibatch's metrics, write the projected state-independent std back, and log the real
step (``policy_step.py``). Speed-ups that reach into RLlib live in
``learner_fast_paths.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY, Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.torch_utils import explained_variance
from ray.rllib.utils.typing import ModuleID
from torch import Tensor

from rllib_trl.connectors.reward_scaling import ScaleRewards
from rllib_trl.projections import entropy, entropy_bound
from rllib_trl.torch.critic_fit import fit_critic
from rllib_trl.torch.distributions import unpack
from rllib_trl.torch.learner_fast_paths import FastPathsTorchLearner, adam
from rllib_trl.torch.policy_step import PolicyStepLearner
from rllib_trl.torch.trpl_loss import (
    ENTROPY_BOUND_KEY,
    TRUST_REGION_LOSS_KEY,
    VF_EXPLAINED_VAR_KEY,
    Pair,
    Reduce,
    TRPLSettings,
    diagnostics,
    policy_terms,
    projected_free_scale,
    standardized,
)


def masked_reductions(mask: Tensor | None) -> tuple[Reduce, Reduce]:
    """Mean and max over the valid rows of a minibatch (``mask`` ``(B,)`` bool, or None
    for all rows). Multiplies instead of boolean indexing: no nonzero() + gather; plain
    ones where every row is valid (the usual case: two fewer autograd nodes per term)."""
    if mask is None or bool(mask.all()):
        return torch.mean, torch.max
    weight = mask.to(torch.float32)
    num_valid = weight.sum()

    def mean_of(x: Tensor) -> Tensor:
        return (x * weight.to(x.dtype)).sum() / num_valid

    def max_of(x: Tensor) -> Tensor:
        return torch.where(mask, x, -torch.inf).max()

    return mean_of, max_of


@dataclass
class _LastMinibatch:
    """Detached tensors of one module's last minibatch in an update, for its metrics."""

    settings: TRPLSettings
    raw: Pair
    projected: Pair
    old: Pair
    mask: Tensor | None
    full: bool
    values: Callable[[], Tensor]  # V(s) of the minibatch (computed only if not kept from the loss)
    value_targets: Tensor
    losses: dict[str, Tensor]

    @torch.no_grad()
    def metrics(self) -> dict[str, Tensor]:
        mean_of, max_of = masked_reductions(self.mask)
        values = self.values()
        return {
            **self.losses,
            VF_LOSS_KEY: mean_of((values - self.value_targets).square()),
            ENTROPY_KEY: mean_of(entropy(self.projected[1], self.full)),
            VF_EXPLAINED_VAR_KEY: explained_variance(self.value_targets, values),
            **diagnostics(self.settings, self.raw, self.projected, self.old, mean_of, max_of, self.full),
        }


def shares_optimizer(config) -> bool:
    """One Adam over policy and value net makes the same steps as two when both use one
    learning rate (schedule) and no global-norm clipping couples their gradients (Adam's
    state is per parameter); it halves RLlib's per-optimizer work in every minibatch."""
    global_clip = config.grad_clip is not None and config.grad_clip_by == "global_norm"
    return config.vf_lr == config.lr and not global_clip and config.vf_num_epochs is None


class TRPLTorchLearner(PolicyStepLearner, FastPathsTorchLearner, PPOTorchLearner):
    """PPO's learner machinery (GAE connector, epochs, minibatches) with TRPL's loss;
    the policy's real step logged after each update (``policy_step.py``)."""

    logs_policy_step_itself = True  # after the std write-back below

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.rewards_normalized:
            self._learner_connector.insert_before(
                GeneralAdvantageEstimation, ScaleRewards(clip=self.config.reward_clip)
            )
        self._settings: dict[ModuleID, TRPLSettings] = {}
        self._old_scale: dict[ModuleID, Tensor] = {}
        self._entropy_bound: dict[ModuleID, float | None] = {}
        self._last_minibatch: dict[ModuleID, _LastMinibatch] = {}

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        """The value net gets its own Adam and ``vf_lr`` (one Adam where that is the same)."""
        module = self._module[module_id]
        vf_params = list(module.unwrapped().vf.parameters())
        vf_ids = {id(p) for p in vf_params}
        pi_params = [p for p in module.parameters() if id(p) not in vf_ids]
        groups = [("policy", pi_params, config.lr), ("value", vf_params, config.vf_lr)]
        if shares_optimizer(config):
            groups = [("default", pi_params + vf_params, config.lr)]
        for name, params, lr in groups:
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=adam(params),
                params=params,
                lr_or_lr_schedule=lr,
            )

    def settings(self, module_id: ModuleID) -> TRPLSettings:
        """The module's TRPL settings, resolved once per iteration."""
        if module_id not in self._settings:
            self._settings[module_id] = TRPLSettings.from_config(self.config.get_config_for_module(module_id))
        return self._settings[module_id]

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: dict[str, Any], fwd_out: dict[str, Tensor]
    ) -> Tensor:
        module = self.module[module_id].unwrapped()
        settings = self.settings(module_id)
        raw = unpack(fwd_out[Columns.ACTION_DIST_INPUTS], module.full)
        old = unpack(batch[Columns.ACTION_DIST_INPUTS], module.full)
        mask = batch.get(Columns.LOSS_MASK)
        mean_of, _ = masked_reductions(mask)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        advantages = batch[Postprocessing.ADVANTAGES]
        if config.advantage_normalization == "minibatch":
            advantages = standardized(advantages, mask)
        terms = policy_terms(
            settings,
            raw,
            old,
            actions=batch[Columns.ACTIONS],
            action_logp=batch[Columns.ACTION_LOGP],
            advantages=advantages,
            full=module.full,
            contextual_std=module.contextual_std,
            beta=self._entropy_bound.get(module_id),
            mean_of=mean_of,
            with_entropy=entropy_coeff != 0,  # else only a metric: once, in metrics()
        )
        total = terms["policy_loss"] + terms[TRUST_REGION_LOSS_KEY]
        if config.vf_num_epochs is None:
            values = module.compute_values(batch)
            total = total + config.vf_loss_coeff * mean_of(
                (values - batch[Postprocessing.VALUE_TARGETS]).square()
            )
            kept = values.detach()
            values_of_minibatch = lambda: kept  # noqa: E731
        else:  # trained alone, before the policy: unchanged here; its metrics from the last minibatch
            values_of_minibatch = lambda: module.compute_values(batch)  # noqa: E731
        if "entropy" in terms:
            total = total - entropy_coeff * terms["entropy"]
        # RLlib reports these with window=1, i.e. the update's last minibatch: keep its
        # tensors (no copies) and compute the metrics once, in after_gradient_based_update.
        detached = lambda pair: tuple(t.detach() for t in pair)  # noqa: E731
        self._last_minibatch[module_id] = _LastMinibatch(
            settings=settings,
            raw=detached(raw),
            projected=detached(terms["projected"]),
            old=old,
            mask=mask,
            full=module.full,
            values=values_of_minibatch,
            value_targets=batch[Postprocessing.VALUE_TARGETS],
            losses={
                POLICY_LOSS_KEY: terms["policy_loss"].detach(),
                TRUST_REGION_LOSS_KEY: terms[TRUST_REGION_LOSS_KEY].detach(),
            },
        )
        return total

    @override(Learner)
    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        self._settings.clear()
        for module_id, module in self._trpl_modules():
            config = self.config.get_config_for_module(module_id)
            if not module.contextual_std:
                # π_old's std is the parameter now: EnvRunners sampled with these weights.
                self._old_scale[module_id] = module.scale_from_raw(module.scale_param.detach()).clone()
            beta = entropy_bound(
                config.entropy_schedule,
                initial_entropy=float(
                    entropy(torch.full((module.k,), module.init_std, dtype=torch.float64), False)
                ),
                target_entropy=config.target_entropy if config.target_entropy is not None else 0.0,
                temperature=config.temperature,
                step=int(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) or 0),
                total_steps=config.entropy_schedule_steps,
                action_dim=module.k,
            )
            self._entropy_bound[module_id] = beta
            if beta is not None:
                self.metrics.log_value((module_id, ENTROPY_BOUND_KEY), beta, window=1)

    @override(Learner)
    def _make_batch_if_necessary(self, training_data):
        batch = super()._make_batch_if_necessary(training_data)
        for module_id, module_batch in batch.policy_batches.items() if batch is not None else ():
            config = self.config.get_config_for_module(module_id)
            trains = module_id in self.module and self.should_module_be_updated(module_id, batch)
            if config.vf_num_epochs is not None and trains:
                self._fit_critic(module_id, module_batch, config)
        return batch

    def _fit_critic(self, module_id: ModuleID, module_batch, config) -> None:
        """``vf_num_epochs`` of value-only training on the train batch (``critic_fit.py``)."""
        module = self.module[module_id].unwrapped()
        obs = module_batch[Columns.OBS]
        fit_critic(
            lambda o: module.compute_values({Columns.OBS: o}),
            list(module.vf.parameters()),
            self.get_optimizer(module_id, "value"),
            obs,
            module_batch[Postprocessing.VALUE_TARGETS],
            module_batch.get(Columns.LOSS_MASK),
            num_epochs=config.vf_num_epochs,
            minibatch_size=config.vf_minibatch_size or config.minibatch_size or len(obs),
            grad_clip=config.grad_clip,
            grad_clip_by=config.grad_clip_by,
        )

    @override(PPOTorchLearner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        for module_id, last in self._last_minibatch.items():
            self.metrics.log_dict(last.metrics(), key=module_id, window=1)
        self._last_minibatch.clear()
        for module_id, module in self._trpl_modules():
            if not module.contextual_std and module_id in self._old_scale:
                self._copy_projected_scale(module_id, module)
        self.log_policy_step()  # of the policy the EnvRunners get next

    def _trpl_modules(self):
        """(module_id, unwrapped module) pairs (under DDP the module is wrapped)."""
        for module_id, module in self.module.items():
            yield module_id, module.unwrapped() if hasattr(module, "unwrapped") else module

    @torch.no_grad()
    def _copy_projected_scale(self, module_id: ModuleID, module) -> None:
        """A state-independent std is not pulled back by the trust-region loss: write
        its projection (around the std that sampled this iteration's data) into it."""
        scale = module.scale_from_raw(module.scale_param)
        beta = self._entropy_bound.get(module_id)
        p_scale = projected_free_scale(self.settings(module_id), scale, self._old_scale[module_id], beta)
        module.scale_param.copy_(module.raw_from_scale(p_scale))
