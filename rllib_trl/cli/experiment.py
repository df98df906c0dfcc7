"""RLlib's classic YAML experiment format, parsed and checked before anything runs.

my-experiment:
    run: TRPL                # or any RLlib algorithm, e.g. PPO
    env: Hopper-v5
    stop: {num_env_steps_sampled_lifetime: 1000000}
    num_samples: 3
    checkpoint_config: {checkpoint_frequency: 10, checkpoint_at_end: true}
    tune_config:             # rllib-trl extension: scheduler / metric / mode
        scheduler: {type: ASHA, time_attr: num_env_steps_sampled_lifetime,
                    max_t: 1000000, grace_period: 200000}
        metric: env_runners/episode_return_mean
        mode: max
    config: {...}            # AlgorithmConfig keys; grid_search and samplers allowed
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rllib_trl.cli.classic import API_STACK_KEYS, Note, translate_config, translate_stop
from rllib_trl.cli.errors import UsageError
from rllib_trl.cli.result_keys import RETURN
from rllib_trl.cli.search_space import is_search_space

EXPERIMENT_KEYS = {
    "run",
    "env",
    "stop",
    "config",
    "checkpoint_config",
    "num_samples",
    "storage_path",
    "tune_config",
    "description",
}
DEFAULT_METRIC = RETURN


@dataclass
class Experiment:
    """One experiment of a YAML file, with command-line overrides applied."""

    name: str
    run: str
    config: dict[str, Any]
    stop: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    checkpoint_config: dict[str, Any] = field(default_factory=dict)
    storage_path: str | None = None
    tune_config: dict[str, Any] = field(default_factory=dict)


def parse_json_arg(flag: str, text: str | None) -> dict[str, Any]:
    """``--config '{"a": 1}'`` -> dict, with a clear error for bad JSON."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{flag} is not valid JSON ({err.msg} at column {err.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag} must be a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


def load_yaml(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"experiment file not found: {path}")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise UsageError(f"{path} is not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{path} must map an experiment name to its spec (run, env, stop, config)")
    return data


def experiment_from_spec(name: str, spec: Any, source: str) -> Experiment:
    """Check one experiment's spec and build an :class:`Experiment`."""
    if not isinstance(spec, dict):
        raise UsageError(f"{source}: experiment '{name}' must be a mapping with run, env and config")
    unknown = sorted(set(spec) - EXPERIMENT_KEYS)
    if unknown:
        raise UsageError(
            f"{source}: unknown key '{unknown[0]}' in experiment '{name}'; allowed: {sorted(EXPERIMENT_KEYS)}"
        )
    if "run" not in spec:
        raise UsageError(f"{source}: experiment '{name}' has no 'run' (the algorithm, e.g. run: TRPL)")
    config = dict(spec.get("config") or {})
    if not isinstance(config, dict):
        raise UsageError(f"{source}: 'config' of '{name}' must be a mapping")
    if "env" in spec:
        config["env"] = spec["env"]
    for key, kind in (
        ("stop", dict),
        ("checkpoint_config", dict),
        ("tune_config", dict),
        ("num_samples", int),
    ):
        if key in spec and not isinstance(spec[key], kind):
            raise UsageError(f"{source}: '{key}' of '{name}' must be a {kind.__name__}, got {spec[key]!r}")
    return Experiment(
        name=str(name),
        run=str(spec["run"]),
        config=config,
        stop=dict(spec.get("stop") or {}),
        num_samples=int(spec.get("num_samples", 1)),
        checkpoint_config=dict(spec.get("checkpoint_config") or {}),
        storage_path=spec.get("storage_path"),
        tune_config=dict(spec.get("tune_config") or {}),
    )


def load_experiments(path: str) -> list[Experiment]:
    return [experiment_from_spec(name, spec, path) for name, spec in load_yaml(path).items()]


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base``, recursively: ``{"model_config": {"init_std": 0.5}}``
    changes one key of the file's ``model_config`` and keeps the others. A value that is
    not a dict on either side, or is a search space (``grid_search`` or a sampler), replaces
    the file's value whole. Neither argument is modified."""
    out = dict(base)
    for key, value in override.items():
        old = out.get(key)
        if (
            isinstance(value, dict)
            and isinstance(old, dict)
            and not is_search_space(value)
            and not is_search_space(old)
        ):
            out[key] = merge_config(old, value)
        else:
            out[key] = value
    return out


def apply_overrides(
    exp: Experiment,
    *,
    config: dict[str, Any],
    stop: dict[str, Any],
    num_samples: int | None,
    storage_path: str | None,
    note: Note,
) -> Experiment:
    """Command-line values win over the file's (``--config`` merges keys, into nested
    dicts too: see :func:`merge_config`). The file's classic keys and then the command
    line's are first put in Ray 2.60's names (``num_workers`` -> ``num_env_runners``, ...),
    so that either spelling overrides."""
    exp.config = translate_config(exp.config, exp.run, note)
    exp.stop = translate_stop(exp.stop, note)
    # the override is translated for the file's API stack unless it names one itself
    stack = {key: exp.config[key] for key in API_STACK_KEYS if key in exp.config}
    exp.config = merge_config(exp.config, translate_config({**stack, **config}, exp.run, note))
    if stop:
        exp.stop = translate_stop(stop, note)
    if num_samples is not None:
        if num_samples < 1:
            raise UsageError(f"--num-samples must be >= 1, got {num_samples}")
        exp.num_samples = num_samples
    if storage_path is not None:
        exp.storage_path = storage_path
    return exp
