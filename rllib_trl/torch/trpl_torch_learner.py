"""TRPL's torch learner: the loss, and the per-iteration std copy.

Per minibatch: project π onto the trust region around π_old (the batch's
``action_dist_inputs``), then

    policy_loss       = −E[ A · π̃(a|s) / π_old(a|s) ]          (optionally ratio-clipped)
    trust_region_loss = trust_region_coeff · E[ d(π, sg(π̃)) ]  (mean part only for a
                                                              state-independent std)
    vf_loss           = vf_loss_coeff · E[ (V(s) − V_target)² ] (own network, optimizer)
"""

from __future__ import annotations

import math
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
from rllib_trl.projections import entropy_bound, entropy_projection, get_trust_region, kl_parts
from rllib_trl.torch.distributions import make_distribution, unpack

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
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def initial_entropy(action_dim: int, init_std: float) -> float:
    """H₀ of the initial policy N(·, init_std² I): the start of the entropy schedule."""
    return 0.5 * action_dim * (1.0 + math.log(2.0 * math.pi)) + action_dim * math.log(init_std)


class TRPLTorchLearner(PPOTorchLearner):
    """PPO's learner machinery (GAE connector, epochs, minibatches) with TRPL's loss."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.normalize_rewards:
            self._learner_connector.insert_before(
                GeneralAdvantageEstimation, ScaleRewards(clip=self.config.reward_clip)
            )
        self._old_scale: dict[ModuleID, Tensor] = {}
        self._entropy_bound: dict[ModuleID, float | None] = {}

    def _trust_region(self, config):
        return get_trust_region(config.projection, scale_prec=config.scale_prec)

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        module = self._module[module_id]
        vf_params = list(module.unwrapped().vf.parameters())
        vf_ids = {id(p) for p in vf_params}
        pi_params = [p for p in module.parameters() if id(p) not in vf_ids]
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="policy",
            optimizer=torch.optim.Adam(pi_params),
            params=pi_params,
            lr_or_lr_schedule=config.lr,
        )
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="value",
            optimizer=torch.optim.Adam(vf_params),
            params=vf_params,
            lr_or_lr_schedule=config.vf_lr,
        )

    def project(self, config, module, mean: Tensor, scale: Tensor, old_mean: Tensor, old_scale: Tensor, beta):
        """π̃ = entropy/trust-region projection of π around π_old, in ``projection_dtype``."""
        dtype = DTYPES[config.projection_dtype]
        args = [t.to(dtype) for t in (mean, scale, old_mean, old_scale)]
        p_mean, p_scale = args[0], args[1]
        use_entropy = beta is not None
        if use_entropy and config.entropy_first:
            p_mean, p_scale = entropy_projection(
                p_mean, p_scale, entropy_bound=beta, equality=config.entropy_eq
            )
        p_mean, p_scale = self._trust_region(config).project(
            p_mean, p_scale, args[2], args[3], mean_bound=config.mean_bound, cov_bound=config.cov_bound
        )
        if use_entropy and not config.entropy_first:
            p_mean, p_scale = entropy_projection(
                p_mean, p_scale, entropy_bound=beta, equality=config.entropy_eq
            )
        return p_mean.to(mean.dtype), p_scale.to(scale.dtype)

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: dict[str, Any], fwd_out: dict[str, Tensor]
    ) -> Tensor:
        module = self.module[module_id].unwrapped()
        full = module.full
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            num_valid = mask.sum()

            def masked_mean(x: Tensor) -> Tensor:
                return x[mask].sum() / num_valid

            def masked_max(x: Tensor) -> Tensor:
                return x[mask].max()
        else:
            masked_mean, masked_max = torch.mean, torch.max

        mean, scale = unpack(fwd_out[Columns.ACTION_DIST_INPUTS], full)
        old_mean, old_scale = unpack(batch[Columns.ACTION_DIST_INPUTS], full)
        beta = self._entropy_bound.get(module_id)
        p_mean, p_scale = self.project(config, module, mean, scale, old_mean, old_scale, beta)
        proj_dist = make_distribution(p_mean, p_scale, full)

        advantages = batch[Postprocessing.ADVANTAGES]
        ratio = torch.exp(proj_dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
        surrogate = advantages * ratio
        if config.clip_param is not None:
            clipped = advantages * ratio.clamp(1 - config.clip_param, 1 + config.clip_param)
            surrogate = torch.min(surrogate, clipped)
        policy_loss = -masked_mean(surrogate)

        trust_region = self._trust_region(config)
        tr_mean, tr_cov = trust_region.parts(mean, scale, p_mean.detach(), p_scale.detach())
        tr_dist = tr_mean + tr_cov if module.contextual_std else tr_mean
        trust_region_loss = config.trust_region_coeff * masked_mean(tr_dist)

        proj_entropy = proj_dist.entropy()
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        values = module.compute_values(batch)
        vf_loss = masked_mean((values - batch[Postprocessing.VALUE_TARGETS]).square())
        total = (
            policy_loss
            + trust_region_loss
            + config.vf_loss_coeff * vf_loss
            - entropy_coeff * masked_mean(proj_entropy)
        )

        with torch.no_grad():
            self._log_diagnostics(
                module_id,
                config,
                (mean, scale),
                (p_mean, p_scale),
                (old_mean, old_scale),
                masked_mean,
                masked_max,
            )
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: policy_loss,
                TRUST_REGION_LOSS_KEY: trust_region_loss,
                VF_LOSS_KEY: vf_loss,
                VF_EXPLAINED_VAR_KEY: explained_variance(batch[Postprocessing.VALUE_TARGETS], values),
                ENTROPY_KEY: masked_mean(proj_entropy),
            },
            key=module_id,
            window=1,
        )
        return total

    def _log_diagnostics(self, module_id, config, raw, projected, old, masked_mean, masked_max) -> None:
        """KL of π̃ to π_old, the constraint values of π̃ in the projection's measure, and
        the fraction of states the projection moved."""
        dtype = DTYPES[config.projection_dtype]
        raw, projected, old = ([t.to(dtype) for t in pair] for pair in (raw, projected, old))
        kl_mean_part, kl_cov_part = kl_parts(*projected, *old)
        kl = kl_mean_part + kl_cov_part
        trust_region = self._trust_region(config)
        d_mean, d_cov = trust_region.parts(*projected, *old)
        raw_mean, raw_cov = trust_region.parts(*raw, *old)
        self.metrics.log_dict(
            {
                KL_MEAN_KEY: masked_mean(kl),
                KL_MAX_KEY: masked_max(kl),
                MEAN_CONSTRAINT_KEY: masked_mean(d_mean),
                MEAN_CONSTRAINT_MAX_KEY: masked_max(d_mean),
                COV_CONSTRAINT_KEY: masked_mean(d_cov),
                COV_CONSTRAINT_MAX_KEY: masked_max(d_cov),
                MEAN_PROJECTED_FRAC_KEY: masked_mean((raw_mean > config.mean_bound).to(dtype)),
                COV_PROJECTED_FRAC_KEY: masked_mean((raw_cov > config.cov_bound).to(dtype)),
            },
            key=module_id,
            window=1,
        )

    @override(Learner)
    def before_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        for module_id, module in self.module._rl_modules.items():
            config = self.config.get_config_for_module(module_id)
            module = module.unwrapped() if hasattr(module, "unwrapped") else module
            if not module.contextual_std:
                # π_old's std is the parameter now: EnvRunners sampled with these weights.
                self._old_scale[module_id] = module.scale_from_raw(module.scale_param.detach()).clone()
            beta = entropy_bound(
                config.entropy_schedule,
                initial_entropy=initial_entropy(module.k, config.model_config.get("init_std", 1.0)),
                target_entropy=config.target_entropy if config.target_entropy is not None else 0.0,
                temperature=config.temperature,
                step=int(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) or 0),
                total_steps=config.entropy_schedule_steps,
                action_dim=module.k,
            )
            self._entropy_bound[module_id] = beta
            if beta is not None:
                self.metrics.log_value((module_id, ENTROPY_BOUND_KEY), beta, window=1)

    @override(PPOTorchLearner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        for module_id, module in self.module._rl_modules.items():
            module = module.unwrapped() if hasattr(module, "unwrapped") else module
            if module.contextual_std or module_id not in self._old_scale:
                continue
            self._copy_projected_scale(module_id, module)

    @torch.no_grad()
    def _copy_projected_scale(self, module_id: ModuleID, module) -> None:
        """A state-independent std is not pulled back by the trust-region loss: write
        its projection (around the std that sampled this iteration's data) into it."""
        config = self.config.get_config_for_module(module_id)
        old_scale = self._old_scale[module_id].unsqueeze(0)
        scale = module.scale_from_raw(module.scale_param).unsqueeze(0)
        zeros = scale.new_zeros(1, module.k)
        _, p_scale = self.project(
            config, module, zeros, scale, zeros, old_scale, self._entropy_bound.get(module_id)
        )
        module.scale_param.copy_(module.raw_from_scale(p_scale[0]))
