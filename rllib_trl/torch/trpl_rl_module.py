"""TRPL's RL module: an MLP Gaussian policy and a separate MLP value function.

Model config keys (``config.rl_module(model_config={...})``):
    fcnet_hiddens (list[int], default [64, 64]), fcnet_activation ("tanh"),
    vf_hiddens (default: fcnet_hiddens), cov_type ("diag" | "full"),
    contextual_std (bool, default False: one state-independent std / Cholesky factor),
    init_std (float, 1.0), min_std (float, 1e-4),
    weight_init ("orthogonal": hidden gain √2, mean head 0.01, value head 1, zero biases;
        "torch_default": PyTorch's own ``nn.Linear`` init, as RLlib's default PPO module;
        with ``contextual_std`` the std then starts at ``init_std`` only where the scale
        head's weighted input is zero, elsewhere within a state-dependent factor),
    std_param ("softplus": std = min_std + softplus(raw); "exp": std = min_std + exp(raw),
        raw clamped to ±20, as RLlib's PPO module with ``free_log_std: true``).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override
from ray.util import log_once
from torch import Tensor, nn

from rllib_trl.torch.distributions import TorchFullGaussian, pack

MODEL_DEFAULTS: dict[str, Any] = {
    "fcnet_hiddens": [64, 64],
    "fcnet_activation": "tanh",
    "vf_hiddens": None,
    "cov_type": "diag",
    "contextual_std": False,
    "init_std": 1.0,
    "min_std": 1e-4,
    "weight_init": "orthogonal",
    "std_param": "softplus",
}
# the allowed values of the model options that take one of a few names
MODEL_CHOICES: dict[str, tuple[str, ...]] = {
    "weight_init": ("orthogonal", "torch_default"),
    "std_param": ("softplus", "exp"),
}
LOG_STD_CLIP = 20.0  # RLlib's default `log_std_clip_param`
# RLlib 2.60's RLModule constructor builds a deprecated `RLModuleConfig` for every module
# (its own PPO modules too) and logs "`RLModule(config=[RLModuleConfig object])` has been
# deprecated" once per process although no user code passes one. Marked as logged here,
# in every process that builds a TRPL module.
log_once("RLModule(config=[RLModuleConfig object])")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def mlp(
    in_dim: int,
    hiddens: list[int],
    activation: str,
    out_dim: int,
    out_gain: float,
    weight_init: str = "orthogonal",
) -> nn.Sequential:
    """MLP ``in_dim → hiddens → out_dim``. ``weight_init="orthogonal"``: orthogonal weights
    (hidden gain √2, output gain ``out_gain``) and zero biases; ``"torch_default"``: the
    ``nn.Linear`` init as constructed (``out_gain`` unused)."""
    layers: list[nn.Module] = []
    for width in hiddens:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    if weight_init == "torch_default":
        return nn.Sequential(*layers)
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=out_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def inv_softplus(x: Tensor) -> Tensor:
    """softplus⁻¹(x) = log(expm1(x)), stable for large x."""
    return torch.where(x > 20.0, x, torch.log(torch.expm1(x.clamp_max(20.0))))


class TRPLTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Gaussian policy N(μ(s), Σ) with Σ diagonal or full, state-dependent or not.

    The std (diagonal entries of L) is ``min_std + softplus(raw)`` (or ``+ exp(raw)``,
    model config ``std_param``); off-diagonal
    entries of L are unconstrained. EnvRunners carry an inference-only copy without
    the value network.
    """

    @override(RLModule)
    def setup(self) -> None:
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(
                f"TRPL needs a continuous (Box) action space, got {self.action_space}; "
                "use an env with continuous actions"
            )
        cfg = {
            **MODEL_DEFAULTS,
            **{k: v for k, v in dict(self.model_config or {}).items() if k in MODEL_DEFAULTS},
        }
        for key, allowed in MODEL_CHOICES.items():
            if cfg[key] not in allowed:
                raise ValueError(f"model_config `{key}` is {cfg[key]!r}; use one of {list(allowed)}")
        self.full = cfg["cov_type"] == "full"
        self.contextual_std = bool(cfg["contextual_std"])
        self.min_std = float(cfg["min_std"])
        self.init_std = float(cfg["init_std"])
        obs_dim = int(np.prod(self.observation_space.shape))
        self.k = k = int(np.prod(self.action_space.shape))
        hiddens, act = list(cfg["fcnet_hiddens"]), cfg["fcnet_activation"]
        self.n_scale = k * (k + 1) // 2 if self.full else k
        self.tril_rows, self.tril_cols = (t.tolist() for t in torch.tril_indices(k, k))
        self.std_exp = cfg["std_param"] == "exp"
        init_raw = float(self.positive_inverse(torch.tensor(cfg["init_std"] - self.min_std)))
        init = cfg["weight_init"]

        self.pi_trunk = (
            mlp(obs_dim, hiddens[:-1], act, hiddens[-1], math.sqrt(2), init) if hiddens else nn.Identity()
        )
        feat = hiddens[-1] if hiddens else obs_dim
        self.pi_act = ACTIVATIONS[act]() if hiddens else nn.Identity()
        self.mean_head = mlp(feat, [], act, k, 0.01, init)
        init_scale = torch.zeros(self.n_scale)
        diag_idx = (
            [i for i, (r, c) in enumerate(zip(self.tril_rows, self.tril_cols, strict=False)) if r == c]
            if self.full
            else list(range(k))
        )
        init_scale[diag_idx] = init_raw
        if self.contextual_std:
            self.scale_head = mlp(feat, [], act, self.n_scale, 0.01, init)
            with torch.no_grad():
                self.scale_head[-1].bias.copy_(init_scale)
        else:
            self.scale_param = nn.Parameter(init_scale)
        self._diag_idx = diag_idx
        if not self.inference_only:
            vf_hiddens = cfg["vf_hiddens"] if cfg["vf_hiddens"] is not None else hiddens
            self.vf = mlp(obs_dim, list(vf_hiddens), act, 1, 1.0, init)

    def positive(self, raw: Tensor) -> Tensor:
        """The std's positive map of the unconstrained entries: softplus, or exp of the
        entries clamped to ±20 (RLlib's log-std clip)."""
        return raw.clamp(-LOG_STD_CLIP, LOG_STD_CLIP).exp() if self.std_exp else nn.functional.softplus(raw)

    def positive_inverse(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`positive`, for ``x > 0``."""
        return x.log() if self.std_exp else inv_softplus(x)

    def scale_from_raw(self, raw: Tensor) -> Tensor:
        """std ``(..., k)`` or L ``(..., k, k)`` from the unconstrained entries ``(..., n_scale)``."""
        if not self.full:
            return self.min_std + self.positive(raw)
        diag_mask = torch.zeros(self.n_scale, dtype=torch.bool, device=raw.device)
        diag_mask[self._diag_idx] = True
        # the map sees zeros off the diagonal: exp of a large unused entry would give inf,
        # and torch.where's backward 0 * inf = NaN
        diag = self.min_std + self.positive(torch.where(diag_mask, raw, torch.zeros_like(raw)))
        entries = torch.where(diag_mask, diag, raw)
        scale = raw.new_zeros(*raw.shape[:-1], self.k, self.k)
        scale[..., self.tril_rows, self.tril_cols] = entries
        return scale

    def raw_from_scale(self, scale: Tensor) -> Tensor:
        """Inverse of :meth:`scale_from_raw` (used to copy a projected std into the parameter)."""
        if not self.full:
            return self.positive_inverse((scale - self.min_std).clamp_min(1e-8))
        entries = scale[..., self.tril_rows, self.tril_cols].clone()
        entries[..., self._diag_idx] = self.positive_inverse(
            (entries[..., self._diag_idx] - self.min_std).clamp_min(1e-8)
        )
        return entries

    def mean_and_scale(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Policy parameters: mean ``(B, k)`` and std ``(B, k)`` or L ``(B, k, k)``."""
        feat = self.pi_act(self.pi_trunk(obs.flatten(1).float()))
        mean = self.mean_head(feat)
        raw = self.scale_head(feat) if self.contextual_std else self.scale_param.expand(mean.shape[0], -1)
        return mean, self.scale_from_raw(raw)

    # TorchRLModule switches the module to eval() and back to train() around every
    # exploration / inference call (two recursive walks over its submodules per env step),
    # and to train() before every training forward (once per minibatch). Where no
    # submodule behaves differently in the two modes (no dropout, no batch norm: this
    # module's own layers), the switches are skipped.
    def _mode_free(self) -> bool:
        if not hasattr(self, "_mode_free_cache"):
            moded = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)
            self._mode_free_cache = not any(isinstance(m, moded) for m in self.modules())
        return self._mode_free_cache

    @override(TorchRLModule)
    def forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if not self._mode_free():
            return super().forward_exploration(batch, **kwargs)
        return self._forward_exploration(batch, **kwargs)

    @override(TorchRLModule)
    def forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if not self._mode_free():
            return super().forward_inference(batch, **kwargs)
        return self._forward_inference(batch, **kwargs)

    @override(TorchRLModule)
    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """``action_dist_inputs`` ``(B, 2k)``, and for a diagonal covariance also the
        sampled ``actions`` ``(B, k)`` and their ``action_logp`` ``(B,)``.

        RLlib's ``GetActions`` connector builds a ``TorchDiagGaussian`` from the packed
        inputs, samples and takes the sample's log-prob. The same operations run here on
        the same tensors (the same random draws and numbers,
        ``tests/torch/test_distributions.py``) without the distribution objects, whose
        construction and argument checks cost more than the draw; ``GetActions`` then
        passes the actions through. A full covariance, and inputs that are not finite
        (where the checked distribution raises, as before), are left to ``GetActions``."""
        with torch.no_grad():
            out = self._forward(batch, **kwargs)
            inputs = out[Columns.ACTION_DIST_INPUTS]
            if self.full or not bool(torch.isfinite(inputs).all()):
                return out
            loc, log_std = inputs.chunk(2, dim=-1)  # TorchDiagGaussian.from_logits
            scale = log_std.exp()
            actions = torch.normal(loc, scale)  # torch.distributions.Normal.sample
            log_prob = (
                -((actions - loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))
            )
            out[Columns.ACTIONS] = actions
            out[Columns.ACTION_LOGP] = log_prob.sum(-1)  # Normal.log_prob, summed as TorchDiagGaussian.logp
        return out

    @override(TorchRLModule)
    def forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """RLlib's training forward, without the ``train()`` walk where it changes nothing."""
        if not self._mode_free():
            return super().forward_train(batch, **kwargs)
        return RLModule.forward_train(self, batch, **kwargs)

    @override(RLModule)
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        mean, scale = self.mean_and_scale(batch[Columns.OBS])
        return {Columns.ACTION_DIST_INPUTS: pack(mean, scale, self.full)}

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> Tensor:
        return self.vf(batch[Columns.OBS].flatten(1).float()).squeeze(-1)

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> list[str]:
        return ["vf"]

    def _dist_cls(self):
        return TorchFullGaussian if self.full else TorchDiagGaussian

    @override(TorchRLModule)
    def get_inference_action_dist_cls(self):
        return self._dist_cls()

    @override(TorchRLModule)
    def get_exploration_action_dist_cls(self):
        return self._dist_cls()

    @override(TorchRLModule)
    def get_train_action_dist_cls(self):
        return self._dist_cls()
