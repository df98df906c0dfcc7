"""RLlib's classic YAML, as RLlib 2.x users wrote it, translated to Ray 2.60's names.

RLlib's own ``AlgorithmConfig.update_from_dict`` translates its dict keys (``lambda``,
``num_workers``, ``framework``, ``callbacks``, ...) but silently *sets and then ignores*
most PPO-era names that Ray has since renamed (``sgd_minibatch_size: 64`` leaves the
minibatch at its default). Here each renamed key is translated, with one note line, and
what cannot run with this installation stops with one line naming the replacement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

from rllib_trl.cli.errors import UsageError
from rllib_trl.cli.result_keys import ENV_STEPS, EVAL_RETURN, RETURN

# PPO-era config keys -> Ray 2.60 names.
RENAMED_KEYS = {
    "num_workers": "num_env_runners",
    "num_rollout_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "num_gpus_per_worker": "num_gpus_per_env_runner",
    "custom_resources_per_worker": "custom_resources_per_env_runner",
    "evaluation_num_workers": "evaluation_num_env_runners",
    "num_cpus_for_driver": "num_cpus_for_main_process",
    "create_env_on_driver": "create_env_on_local_worker",
    "sgd_minibatch_size": "minibatch_size",
    "num_sgd_iter": "num_epochs",
    "recreate_failed_workers": "restart_failed_env_runners",
    "ignore_worker_failures": "ignore_env_runner_failures",
    "num_consecutive_worker_failures_tolerance": "num_consecutive_env_runner_failures_tolerance",
    "worker_health_probe_timeout_s": "env_runner_health_probe_timeout_s",
    "worker_restore_timeout_s": "env_runner_restore_timeout_s",
}
# RLlib's own dict spellings of attributes (AlgorithmConfig._translate_special_keys):
# still current, so translated without a note.
DICT_SPELLINGS = {
    "lambda": "lambda_",
    "callbacks": "callbacks_class",
    "custom_eval_function": "custom_evaluation_function",
    "input": "input_",
}
# Old result keys in `stop:` -> the keys RLlib 2.60 reports.
RENAMED_STOP_KEYS = {
    "timesteps_total": ENV_STEPS,
    "episode_reward_mean": RETURN,
    "episode_reward_max": "env_runners/episode_return_max",
    "episode_reward_min": "env_runners/episode_return_min",
    "episode_len_mean": "env_runners/episode_len_mean",
    "episodes_total": "env_runners/num_episodes_lifetime",
    "evaluation/episode_reward_mean": EVAL_RETURN,
}
# ModelV2 `model:` keys with a new-stack `model_config` equivalent.
# TRPL's RL module takes these (see trpl_rl_module.MODEL_DEFAULTS); RLlib's own modules
# take every field of DefaultModelConfig.
TRPL_MODEL_KEYS = {"fcnet_hiddens", "fcnet_activation", "vf_share_layers", "free_log_std"}
RLLIB_MODEL_KEYS = {f.name for f in dataclasses.fields(DefaultModelConfig)}
# The filter RLlib 2.60's own MeanStdFilter would be replaced by, for non-TRPL algorithms.
EXACT_FILTER = "rllib_trl.connectors:observation_filter"
EVAL_SYNC = "rllib_trl.connectors.eval_sync:SyncEvalObservationFilter"

Note = Callable[[str], None]


API_STACK_KEYS = ("enable_rl_module_and_learner", "enable_env_runner_and_connector_v2")


def translate_config(config: dict[str, Any], run: str, note: Note) -> dict[str, Any]:
    """Return ``config`` with classic keys in Ray 2.60's names; ``note`` gets one line per
    translation. Raises :class:`UsageError` for what cannot run here."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in RENAMED_KEYS:
            new = RENAMED_KEYS[key]
            note(f"config key '{key}' is '{new}' in Ray 2.60; using {new}: {value!r}")
            key = new
        key = DICT_SPELLINGS.get(key, key)
        if key in out:
            raise UsageError(f"config key '{key}' is given twice (once under an older name); keep one")
        out[key] = value
    _framework(out)
    new_stack = out.get(API_STACK_KEYS[0], out.get(API_STACK_KEYS[1], True))
    if run == "TRPL" or new_stack is not False:  # TRPL sets the old stack's filter itself
        _observation_filter(out, run, note)
    if new_stack is not False:
        _model(out, run, note)
    return out


def _framework(config: dict[str, Any]) -> None:
    framework = config.pop("framework", config.pop("framework_str", "torch"))
    if framework != "torch":
        raise UsageError(f"config key 'framework' is {framework!r}; this installation runs framework: torch")


def _observation_filter(config: dict[str, Any], run: str, note: Note) -> None:
    """``observation_filter`` is old-stack only: map it to the new stack's connectors."""
    name = config.pop("observation_filter", None)
    if name is None:
        return
    if name not in ("MeanStdFilter", "NoFilter"):
        raise UsageError(f"config key 'observation_filter' is {name!r}; use MeanStdFilter or NoFilter")
    if run == "TRPL":
        if "normalize_observations" in config:
            note(f"observation_filter: {name} ignored: normalize_observations is set")
            return
        config["normalize_observations"] = name == "MeanStdFilter"
        note(f"observation_filter: {name} -> normalize_observations: {config['normalize_observations']}")
    elif name == "MeanStdFilter":
        if "env_to_module_connector" in config:
            note("observation_filter: MeanStdFilter ignored: env_to_module_connector is set")
            return
        config["env_to_module_connector"] = EXACT_FILTER
        note(f"observation_filter: MeanStdFilter -> env_to_module_connector: {EXACT_FILTER}")
        if "callbacks_class" in config:
            note(
                f"evaluation normalises with empty statistics unless callbacks_class calls "
                f"rllib_trl.connectors.eval_sync.sync_eval_observation_filter (as {EVAL_SYNC} does)"
            )
        else:
            config["callbacks_class"] = EVAL_SYNC


def _model(config: dict[str, Any], run: str, note: Note) -> None:
    """ModelV2's ``model`` dict -> ``model_config`` (RLlib warns and ignores it otherwise)."""
    model = config.get("model")
    if not isinstance(model, dict) or not model:
        return
    known = TRPL_MODEL_KEYS if run == "TRPL" else RLLIB_MODEL_KEYS
    unknown = sorted(set(model) - known)
    if unknown:
        raise UsageError(
            f"config key 'model.{unknown[0]}' has no equivalent in {run}'s new-stack model_config "
            f"(keys: {sorted(known) if run == 'TRPL' else 'DefaultModelConfig fields'}); "
            "remove it, or switch to the old stack with enable_rl_module_and_learner: false"
        )
    del config["model"]
    translated = dict(model)
    if run == "TRPL":
        # TRPL always has a separate value network; `free_log_std` is its `contextual_std: false`.
        if translated.pop("vf_share_layers", False):
            raise UsageError("config key 'model.vf_share_layers': TRPL's value net is separate; remove it")
        if "free_log_std" in translated:
            translated["contextual_std"] = not translated.pop("free_log_std")
    model_config = {**translated, **dict(config.get("model_config") or {})}
    config["model_config"] = model_config
    note(f"model: {model} -> model_config: {model_config}")


def translate_stop(stop: dict[str, Any], note: Note) -> dict[str, Any]:
    """Old result names in ``stop:`` -> RLlib 2.60's (Tune ignores a key never reported)."""
    out = {}
    for key, value in stop.items():
        if key in RENAMED_STOP_KEYS:
            new = RENAMED_STOP_KEYS[key]
            note(f"stop key '{key}' is '{new}' in Ray 2.60; stopping at {new}: {value!r}")
            key = new
        out[key] = value
    return out
