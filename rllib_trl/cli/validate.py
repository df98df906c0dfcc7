"""Check an experiment before Tune creates anything on disk."""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import Any

from ray.tune.registry import get_trainable_cls

from rllib_trl.cli.errors import UsageError
from rllib_trl.cli.experiment import Experiment
from rllib_trl.cli.search_space import representatives
from rllib_trl.env_check import EnvNotFound, env_action_space, env_class

# Classic config-dict keys that AlgorithmConfig handles without an attribute of that name.
DICT_ONLY_KEYS = {"env", "model", "multiagent", "optimizer", "callbacks_class", "exploration_config"}
# Keys that take a callable; in YAML they are written "package.module:function".
CALLABLE_KEYS = {
    "env_to_module_connector",
    "module_to_env_connector",
    "learner_connector",
    "callbacks_class",
    "learner_class",
    "custom_evaluation_function",
}
# ... of which these are stored under a leading underscore (as is `model_config`).
PRIVATE_KEYS = {
    "env_to_module_connector",
    "module_to_env_connector",
    "learner_connector",
    "model_config",
    "learner_class",
}


def _import_callable(key: str, value: Any) -> Any:
    """``"package.module:function"`` -> the function (other values pass through)."""
    if not isinstance(value, str):
        return value
    module_name, _, attr = value.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise UsageError(
            f"config key '{key}': cannot import {value!r}; write 'package.module:function'"
        ) from None


def resolve_callables(config: dict[str, Any]) -> dict[str, Any]:
    """Import "package.module:function" strings of :data:`CALLABLE_KEYS` and of
    ``multiagent.policy_mapping_fn``."""
    out = {k: (_import_callable(k, v) if k in CALLABLE_KEYS else v) for k, v in config.items()}
    multiagent = out.get("multiagent")
    if isinstance(multiagent, dict) and "policy_mapping_fn" in multiagent:
        fn = _import_callable("multiagent.policy_mapping_fn", multiagent["policy_mapping_fn"])
        out["multiagent"] = {**multiagent, "policy_mapping_fn": fn}
    # The config attributes behind these keys (and `model_config`, a read-only
    # property) carry a leading underscore.
    return {(f"_{k}" if k in PRIVATE_KEYS else k): v for k, v in out.items()}


def resolve_algorithm(run: str) -> type:
    """The Algorithm class for ``run`` (TRPL is registered on import of rllib_trl)."""
    from rllib_trl.trpl import register

    register()  # also after an earlier ray.init/shutdown in this process
    try:
        return get_trainable_cls(run)
    except Exception:
        raise UsageError(
            f"unknown algorithm 'run: {run}'; use TRPL or an RLlib algorithm such as PPO"
        ) from None


def _check_types(default: Any, config: dict[str, Any]) -> None:
    for key, value in config.items():
        if key in DICT_ONLY_KEYS or key.startswith("_"):
            continue
        if not hasattr(default, key):
            raise UsageError(f"unknown config key '{key}'; check the spelling against the algorithm's config")
        current = getattr(default, key)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise UsageError(f"config key '{key}' must be true or false, got {value!r}")
        if (
            isinstance(current, (int, float))
            and not isinstance(current, bool)
            and not isinstance(value, list)
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                if not (isinstance(value, str) and value == "auto"):
                    raise UsageError(f"config key '{key}' must be a number, got {value!r}")


def validate_experiment(exp: Experiment) -> type:
    """Raise :class:`UsageError` for an unknown algorithm, env or key, or a bad value.

    Library warnings (gymnasium's env checker, RLlib deprecations) are silenced here so
    that bad input gives exactly one line.
    """
    rllib_logger = logging.getLogger("ray.rllib")
    level = rllib_logger.level
    rllib_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _validate(exp)
    finally:
        rllib_logger.setLevel(level)


def _validate(exp: Experiment) -> type:
    algo_cls = resolve_algorithm(exp.run)
    if "env" not in exp.config:
        raise UsageError(f"experiment '{exp.name}' sets no env; add 'env: Hopper-v5' (or --env)")
    env = exp.config["env"]
    if isinstance(env, str):
        try:
            env_action_space(env, exp.config.get("env_config"))
        except EnvNotFound as err:
            raise UsageError(f"unknown env {err}") from None
        except Exception as err:  # the env's own constructor rejected its env_config
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(
                f"env {env!r} could not be created with env_config {exp.config.get('env_config')!r}: {first}"
            ) from None
    default = algo_cls.get_default_config()
    exp.config = resolve_callables(exp.config)
    # RLlib 2.60's multi-agent EnvRunner makes a class-path `env` with gym.make and fails;
    # the class itself works on every EnvRunner (and pickles by reference).
    found = env_class(env) if isinstance(env, str) else None
    if found is not None:
        exp.config["env"] = found
    for concrete in representatives(exp.config):
        _check_types(default, concrete)
        config = algo_cls.get_default_config()
        try:
            config.update_from_dict(concrete)
            config.validate()
        except (ValueError, TypeError, KeyError) as err:
            raise UsageError(str(err).strip().splitlines()[0]) from None
    return algo_cls
