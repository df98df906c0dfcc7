"""TRPL: PPO-style training with differentiable trust-region projection layers.

``TRPLConfig`` extends ``PPOConfig`` with the projection's settings and MuJoCo defaults
from the paper (64-64 tanh, orthogonal init, GAE λ 0.95, γ 0.99, separate value
network with its own learning rate, no ratio clipping, no value-loss clamp,
observation normalisation). Importing this module registers ``"TRPL"`` with Tune.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import gymnasium as gym
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override
from ray.tune.registry import register_trainable
from ray.util import log_once

from rllib_trl.connectors.eval_sync import sync_eval_observation_filter
from rllib_trl.connectors.fused import use_fused_pipelines
from rllib_trl.connectors.mean_std_filter import ExactMeanStdFilter
from rllib_trl.connectors.reward_scaling import DiscountedReturnStats
from rllib_trl.env_check import EnvNotFound, env_action_space
from rllib_trl.projections import ENTROPY_SCHEDULES, projection_names
from rllib_trl.torch.trpl_rl_module import ACTIVATIONS, MODEL_CHOICES, MODEL_DEFAULTS
from rllib_trl.trpl_defaults import ADVANTAGE_NORMALIZATIONS, TRPL_DEFAULTS


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# RLlib logs once per process "You are running TRPL on the new API stack! This is the new
# default behavior ...": TRPL is built for that stack, so the notice asks nothing of its
# users. Marking the key as logged keeps it off the console.
log_once("TRPL_on_new_api_stack")

RLLIB_DEFAULT_HIDDENS = [256, 256]  # RLlib's ModelV2 default, replaced by 64-64 on the old stack


def old_stack_model(model: dict[str, Any]) -> dict[str, Any]:
    """The old stack's ModelV2 settings for TRPL: RLlib's 256-256 default becomes 64-64,
    one free std, a separate value branch (applied in ``to_dict``, so the new stack does
    not warn about ``model``)."""
    model = dict(model)
    if model.get("fcnet_hiddens") == RLLIB_DEFAULT_HIDDENS:
        model["fcnet_hiddens"] = [64, 64]
    model.update(vf_share_layers=False, free_log_std=True)
    return model


class TRPLConfig(PPOConfig):
    """Configuration for :class:`TRPL`.

    Example::

        config = (
            TRPLConfig()
            .environment("Hopper-v5")
            .training(projection="kl", mean_bound=0.03, cov_bound=0.001)
            .rl_module(model_config={"cov_type": "diag", "contextual_std": False})
        )
        algo = config.build_algo()
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or TRPL)
        for key, value in TRPL_DEFAULTS.items():
            setattr(self, key, value)
        # Paper / CleanRL-style MuJoCo defaults instead of PPO's.
        self.lr = 3e-4
        self.gamma = 0.99
        self.lambda_ = 0.95
        self.num_epochs = 10
        self.minibatch_size = 64
        # The total batch (RLlib's `train_batch_size`, split over `num_learners` unless
        # `train_batch_size_per_learner` is set), so classic YAML's `train_batch_size` applies.
        self.train_batch_size = 2048
        self.use_kl_loss = False
        self.clip_param = None
        self.vf_clip_param = math.inf
        self.vf_loss_coeff = 1.0
        self.entropy_coeff = 0.0
        self.grad_clip = None
        self.num_env_runners = 1
        self.num_envs_per_env_runner = 4
        self.rollout_fragment_length = "auto"
        # Evaluation reports the deterministic (mean-action) policy.
        self.evaluation_config = {"explore": False}

    @override(PPOConfig)
    def training(
        self,
        *,
        projection: str = NotProvided,
        mean_bound: float = NotProvided,
        cov_bound: float = NotProvided,
        trust_region_coeff: float = NotProvided,
        scale_prec: bool = NotProvided,
        entropy_schedule: str | None = NotProvided,
        target_entropy: float | None = NotProvided,
        temperature: float = NotProvided,
        entropy_eq: bool = NotProvided,
        entropy_first: bool = NotProvided,
        entropy_schedule_steps: int = NotProvided,
        vf_lr: float = NotProvided,
        vf_num_epochs: int | None = NotProvided,
        vf_minibatch_size: int | None = NotProvided,
        advantage_normalization: str = NotProvided,
        projection_dtype: str = NotProvided,
        normalize_observations: bool = NotProvided,
        normalize_rewards: bool | None = NotProvided,
        reward_clip: float = NotProvided,
        **kwargs,
    ) -> TRPLConfig:
        """Sets TRPL's training options (and PPO's, passed through ``kwargs``).

        Args:
            projection: "kl", "frobenius", "wasserstein", or "none" (no projection;
                a PPO-like run that still logs the trust-region metrics).
            mean_bound: ε_μ, the bound on the mean part of the measure per state.
            cov_bound: ε_Σ, the bound on the covariance part per state.
            trust_region_coeff: weight of the loss d(π, sg(π̃)) that pulls the
                network output towards its projection.
            scale_prec: Frobenius / W2 only: measure in the old covariance's metric.
            entropy_schedule: None, "linear" or "exp": an entropy bound β that moves
                from the initial policy's entropy to ``target_entropy``.
            target_entropy: final entropy (exp: per action dimension).
            temperature: base of the "exp" schedule, in (0, 1].
            entropy_eq: hold the entropy at β (equality) instead of only above it.
            entropy_first: apply entropy control before the trust-region projection.
            entropy_schedule_steps: env steps over which the schedule runs (T).
            vf_lr: learning rate of the separate value-network optimizer.
            vf_num_epochs: None (default): the value net trains in the policy's
                minibatches. A positive integer: before the policy's epochs, the value
                net trains alone for this many epochs over the train batch (shuffled,
                in minibatches of ``vf_minibatch_size``), and the policy's minibatches
                do not update it (the official TRPL implementation's regime). The
                advantages are computed before either, with the value net that the
                iteration started with.
            vf_minibatch_size: minibatch size of those value epochs (None: ``minibatch_size``).
            advantage_normalization: "batch" (default): the advantages as RLlib's GAE
                leaves them, standardised over the train batch. "minibatch": each policy
                minibatch standardises them again over its own rows, (A − mean) / (std + 1e-8),
                as the official TRPL implementation does.
            projection_dtype: "float64" (default) or "float32" for the projection.
            normalize_observations: normalise observations with running mean/std
                statistics that merge exactly across EnvRunners.
            normalize_rewards: divide rewards by the running std of the discounted
                return and clip them to ±``reward_clip`` before GAE (as SB3's
                VecNormalize); logged episode returns stay in raw units. None (the
                default): on for the new API stack, off on the old one, which does
                not support it.
            reward_clip: clip bound for normalised rewards.
            **kwargs: PPO / AlgorithmConfig ``training()`` options, e.g. ``lr``,
                ``num_epochs``, ``minibatch_size``, ``lambda_``, ``clip_param``
                (None disables ratio clipping, the default), ``grad_clip``.
        """
        super().training(**kwargs)
        given = {
            "projection": projection,
            "mean_bound": mean_bound,
            "cov_bound": cov_bound,
            "trust_region_coeff": trust_region_coeff,
            "scale_prec": scale_prec,
            "entropy_schedule": entropy_schedule,
            "target_entropy": target_entropy,
            "temperature": temperature,
            "entropy_eq": entropy_eq,
            "entropy_first": entropy_first,
            "entropy_schedule_steps": entropy_schedule_steps,
            "vf_lr": vf_lr,
            "vf_num_epochs": vf_num_epochs,
            "vf_minibatch_size": vf_minibatch_size,
            "advantage_normalization": advantage_normalization,
            "projection_dtype": projection_dtype,
            "normalize_observations": normalize_observations,
            "normalize_rewards": normalize_rewards,
            "reward_clip": reward_clip,
        }
        for key, value in given.items():
            if value is not NotProvided:
                setattr(self, key, value)
        return self

    @property
    def rewards_normalized(self) -> bool:
        """``normalize_rewards`` with its default (None) resolved for the API stack."""
        if self.normalize_rewards is None:
            return bool(self.enable_rl_module_and_learner)
        return self.normalize_rewards

    @property
    def observation_filter(self) -> str:
        """RLlib's ``observation_filter``; on the old API stack TRPL's observation
        normalisation is that stack's own filter, so it follows ``normalize_observations``."""
        if not self.__dict__.get("enable_rl_module_and_learner", True):
            return "MeanStdFilter" if self.__dict__.get("normalize_observations", True) else "NoFilter"
        return self.__dict__.get("observation_filter", "NoFilter")

    @observation_filter.setter
    def observation_filter(self, value: str) -> None:
        self.__dict__["observation_filter"] = value

    @property
    def env_runner_cls(self) -> type | None:
        """RLlib's ``env_runner_cls``. Left unset, single-agent runs on the new API stack
        get :class:`~rllib_trl.env_runner.TRPLEnvRunner` where RLlib would pick its
        ``SingleAgentEnvRunner`` (the same samples, a leaner loop); multi-agent, offline
        recording and the old stack keep RLlib's choice. ``to_dict`` keeps the unset
        None; to use RLlib's runner, pass ``env_runner_cls=SingleAgentEnvRunner``."""
        chosen = self.__dict__.get("env_runner_cls")
        if chosen is not None or not self.__dict__.get("enable_env_runner_and_connector_v2", True):
            return chosen
        if self.__dict__.get("output") or self.is_multi_agent:
            return chosen
        from rllib_trl.env_runner import TRPLEnvRunner

        return TRPLEnvRunner

    @env_runner_cls.setter
    def env_runner_cls(self, value: type | None) -> None:
        self.__dict__["env_runner_cls"] = value

    @override(AlgorithmConfig)
    def build_module_to_env_connector(self, env=None, spaces=None):
        """RLlib's pipeline, with its default pieces run as one vectorised pass per env
        step (``connectors/fused.py``, ``connectors/actions.py``; the same numbers)."""
        from rllib_trl.connectors.actions import use_vectorised_actions

        pipeline = super().build_module_to_env_connector(env=env, spaces=spaces)
        return use_fused_pipelines(use_vectorised_actions(pipeline))

    @override(AlgorithmConfig)
    def to_dict(self) -> dict[str, Any]:
        """RLlib's dict form (what old-stack policies and filters read), with the old
        stack's filter and ModelV2 settings resolved for TRPL."""
        config = super().to_dict()
        config["observation_filter"] = self.observation_filter
        if not self.enable_rl_module_and_learner:
            config["model"] = old_stack_model(config["model"])
        return config

    @override(AlgorithmConfig)
    def get_state(self) -> dict[str, Any]:
        # RLlib drops every value equal to its DEPRECATED_VALUE (-1) from the state, so
        # a `mean_bound=-1` would silently become the default instead of failing.
        state = super().get_state()
        state.update({key: getattr(self, key) for key in TRPL_DEFAULTS})
        return state

    @override(PPOConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_trl.torch.trpl_rl_module import TRPLTorchRLModule

        return RLModuleSpec(module_class=TRPLTorchRLModule)

    @override(PPOConfig)
    def get_default_learner_class(self):
        from rllib_trl.torch.trpl_torch_learner import TRPLTorchLearner

        return TRPLTorchLearner

    @override(AlgorithmConfig)
    def build_env_to_module_connector(self, env=None, spaces=None, device=None):
        pipeline = super().build_env_to_module_connector(env=env, spaces=spaces, device=device)
        # Stateful pieces go first: RLlib's pipeline merge pairs the i-th non-empty
        # state with the i-th connector.
        if self.rewards_normalized and not self.in_evaluation:
            pipeline.prepend(DiscountedReturnStats(gamma=self.gamma))
        if self.normalize_observations:
            # Evaluation uses the training statistics as they are (see TRPL._before_evaluate).
            pipeline.prepend(
                ExactMeanStdFilter(multi_agent=self.is_multi_agent, update_stats=not self.in_evaluation)
            )
        return use_fused_pipelines(pipeline)  # RLlib's default pieces in one pass (connectors/fused.py)

    @override(PPOConfig)
    def validate(self) -> None:
        super().validate()
        self._validate_trpl()
        self._validate_old_stack()
        self._validate_model_config()
        self._validate_env()

    def _bad(self, key: str, problem: str, fix: str) -> None:
        self._value_error(f"TRPLConfig: `{key}` {problem}; {fix}")

    def _validate_trpl(self) -> None:
        if self.projection not in projection_names():
            self._bad("projection", f"is {self.projection!r}", f"use one of {list(projection_names())}")
        for key in ("mean_bound", "cov_bound"):
            value = getattr(self, key)
            if not _is_number(value) or not (0 < value < math.inf):
                self._bad(key, f"is {value!r}", "use a positive finite number, e.g. 0.03")
        if not _is_number(self.trust_region_coeff) or not (0 <= self.trust_region_coeff < math.inf):
            self._bad("trust_region_coeff", f"is {self.trust_region_coeff!r}", "use a non-negative number")
        if not isinstance(self.vf_lr, list) and not (_is_number(self.vf_lr) and 0 <= self.vf_lr < math.inf):
            self._bad(
                "vf_lr", f"is {self.vf_lr!r}", "use a non-negative number or a [[step, lr], ...] schedule"
            )
        for key in ("vf_num_epochs", "vf_minibatch_size"):
            value = getattr(self, key)
            positive_int = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1
            if value is not None and not positive_int:
                self._bad(key, f"is {value!r}", "use None or a positive integer")
        if self.vf_num_epochs is not None and self.num_learners > 1:
            self._bad(
                "vf_num_epochs",
                "is not supported with num_learners > 1 (the value-only epochs do not sync gradients)",
                "use vf_num_epochs=None or num_learners <= 1",
            )
        if (self.normalize_observations or self.rewards_normalized) and not self.broadcast_env_runner_states:
            self._bad(
                "broadcast_env_runner_states",
                "is False",
                "normalisation statistics merge exactly only if merged states are broadcast; set it True",
            )
        if self.entropy_schedule not in ENTROPY_SCHEDULES:
            self._bad(
                "entropy_schedule", f"is {self.entropy_schedule!r}", f"use one of {list(ENTROPY_SCHEDULES)}"
            )
        if self.entropy_schedule is not None and self.target_entropy is None:
            self._bad("target_entropy", "is not set", "give a target entropy when `entropy_schedule` is set")
        if not (0 < self.temperature <= 1):
            self._bad("temperature", f"is {self.temperature!r}", "use a value in (0, 1]")
        if self.target_entropy is not None and not _is_number(self.target_entropy):
            self._bad("target_entropy", f"is {self.target_entropy!r}", "use a number (nats)")
        for key in ("scale_prec", "entropy_eq", "entropy_first", "normalize_observations"):
            if not isinstance(getattr(self, key), bool):
                self._bad(key, f"is {getattr(self, key)!r}", "use True or False")
        if not isinstance(self.normalize_rewards, (bool, type(None))):
            self._bad(
                "normalize_rewards",
                f"is {self.normalize_rewards!r}",
                "use True, False or None (on for the new API stack only)",
            )
        if not isinstance(self.entropy_schedule_steps, numbers.Integral) or self.entropy_schedule_steps <= 0:
            self._bad(
                "entropy_schedule_steps", f"is {self.entropy_schedule_steps!r}", "use a positive integer"
            )
        if self.advantage_normalization not in ADVANTAGE_NORMALIZATIONS:
            self._bad(
                "advantage_normalization",
                f"is {self.advantage_normalization!r}",
                f"use one of {list(ADVANTAGE_NORMALIZATIONS)}",
            )
        if self.projection_dtype not in ("float32", "float64"):
            self._bad("projection_dtype", f"is {self.projection_dtype!r}", "use 'float32' or 'float64'")
        if self.clip_param is not None and not (
            isinstance(self.clip_param, (int, float)) and self.clip_param > 0
        ):
            self._bad(
                "clip_param", f"is {self.clip_param!r}", "use None (no ratio clipping) or a positive number"
            )
        if not (isinstance(self.reward_clip, (int, float)) and self.reward_clip > 0):
            self._bad("reward_clip", f"is {self.reward_clip!r}", "use a positive number")
        if self.use_kl_loss:
            self._bad(
                "use_kl_loss", "is True", "TRPL bounds the KL per state by projection; set use_kl_loss=False"
            )

    def _validate_old_stack(self) -> None:
        """The old API stack supports a diagonal Gaussian with a free std only."""
        if self.enable_rl_module_and_learner:
            return
        model = dict(self.model_config or {})
        unsupported = {
            "cov_type": (model.get("cov_type", "diag") != "diag", "use cov_type='diag'"),
            "contextual_std": (bool(model.get("contextual_std", False)), "use contextual_std=False"),
            # RLlib's ModelV2 builds the old stack's network: its own init, a log std
            "weight_init": ("weight_init" in model, "leave weight_init unset"),
            "std_param": ("std_param" in model, "leave std_param unset"),
            "entropy_schedule": (self.entropy_schedule is not None, "use entropy_schedule=None"),
            "normalize_rewards": (self.normalize_rewards is True, "set normalize_rewards=False or None"),
            "vf_num_epochs": (self.vf_num_epochs is not None, "use vf_num_epochs=None"),
            "advantage_normalization": (
                self.advantage_normalization != "batch",
                "use advantage_normalization='batch'",
            ),
        }
        for key, (bad, fix) in unsupported.items():
            if bad:
                self._bad(key, "is not supported on the old API stack", f"{fix}, or use the new API stack")

    def _validate_model_config(self) -> None:
        model = dict(self.model_config or {})
        if "free_log_std" in model:
            self._bad(
                "free_log_std", "is not a TRPL model option", "use `contextual_std` (False = one free std)"
            )
        cov_type = model.get("cov_type", MODEL_DEFAULTS["cov_type"])
        if cov_type not in ("diag", "full"):
            self._bad("cov_type", f"is {cov_type!r}", "use 'diag' or 'full'")
        act = model.get("fcnet_activation", MODEL_DEFAULTS["fcnet_activation"])
        if act not in ACTIVATIONS:
            self._bad("fcnet_activation", f"is {act!r}", f"use one of {list(ACTIVATIONS)}")
        for key, allowed in MODEL_CHOICES.items():
            value = model.get(key, MODEL_DEFAULTS[key])
            if value not in allowed:
                self._bad(key, f"is {value!r}", f"use one of {list(allowed)}")
        init_std = model.get("init_std", MODEL_DEFAULTS["init_std"])
        min_std = model.get("min_std", MODEL_DEFAULTS["min_std"])
        if not (isinstance(min_std, (int, float)) and min_std >= 0):
            self._bad("min_std", f"is {min_std!r}", "use a non-negative number")
        if not (isinstance(init_std, (int, float)) and init_std > min_std):
            self._bad("init_std", f"is {init_std!r}", f"use a number above min_std ({min_std})")

    def _validate_env(self) -> None:
        """Fail at build time, with the key named, for a missing env or discrete actions."""
        space = self.action_space
        if isinstance(self.env, (str, type)) and space is None:
            try:
                space = env_action_space(self.env, self.env_config)
            except EnvNotFound as err:
                self._value_error(f"TRPLConfig: `env` {err}")
                return
        spaces = space.values() if isinstance(space, gym.spaces.Dict) else [space]  # per agent
        if space is not None and not all(isinstance(s, gym.spaces.Box) for s in spaces):
            self._bad("env", f"has action space {space}", "TRPL needs continuous (Box) actions")


class TRPL(PPO):
    """TRPL on RLlib's new API stack (PPO's sampling and learner loop, TRPL's loss)."""

    @classmethod
    @override(PPO)
    def get_default_config(cls) -> TRPLConfig:
        return TRPLConfig()

    @classmethod
    @override(PPO)
    def get_default_policy_class(cls, config):
        """The old API stack's policy (used when the new stack is switched off)."""
        from rllib_trl.torch.trpl_torch_policy import TRPLTorchPolicy

        return TRPLTorchPolicy

    @override(PPO)
    def _training_step_old_api_stack(self):
        """PPO's old-stack step, then the state-independent std is replaced by its
        projection around the std that sampled the data, and the weights re-synced."""
        worker = self.env_runner_group.local_env_runner
        old = {pid: p.free_log_std().detach().clone() for pid, p in worker.policy_map.items()}
        results = super()._training_step_old_api_stack()
        for pid, policy in worker.policy_map.items():
            policy.replace_std_by_projection(old[pid])
        self.env_runner_group.sync_weights(global_vars={"timestep": self._counters["num_env_steps_sampled"]})
        return results

    @override(Algorithm)
    def _before_evaluate(self) -> None:
        """Give the evaluation EnvRunners the training observation statistics."""
        super()._before_evaluate()
        sync_eval_observation_filter(self)


def register() -> None:
    """Register "TRPL" with Tune (again). Tune's registry moves entries into Ray's KV store
    on ``ray.init`` and forgets them on ``ray.shutdown``; call this before a lookup."""
    register_trainable("TRPL", TRPL)


register()
