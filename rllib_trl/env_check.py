"""Make an env the way RLlib resolves its ``env`` setting, outside any EnvRunner: to find
its action space before any actor starts (clear config errors), and to evaluate a
checkpoint on it."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.tune.registry import ENV_CREATOR, _global_registry

from rllib_trl.mujoco_log import route_mujoco_warnings


class EnvNotFound(ValueError):
    """The env id is neither a Tune-registered env, an env class nor a gymnasium id that
    can be made here."""


def newest_version(env: str) -> str | None:
    """The newest registered ``Name-vN`` of ``env``'s name (``HalfCheetah-v2`` ->
    ``HalfCheetah-v5``), or None if gymnasium knows no version of it."""
    name, sep, _ = env.rpartition("-v")
    if not sep:
        return None
    versions = [
        (int(v), key)
        for key in gym.registry
        for n, s, v in [key.rpartition("-v")]
        if s and n == name and v.isdigit()
    ]
    return max(versions)[1] if versions else None


def env_class(path: str) -> type | None:
    """``"package.module.EnvClass"`` (RLlib's class-path form of ``env``), or None."""
    module_name, _, attr = path.rpartition(".")
    if not module_name or "/" in path or ":" in path:
        return None
    try:
        found = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def make_env(env: Any, env_config: dict[str, Any] | None = None, **gym_kwargs: Any) -> gym.Env:
    """An instance of ``env``: a Tune-registered name, an env class, a class path, or a
    gymnasium id (``gym_kwargs``, e.g. ``render_mode``, go to gymnasium envs only)."""
    route_mujoco_warnings()  # no MUJOCO_LOG.TXT in the caller's working directory
    config = dict(env_config or {})
    # Creators and classes may read worker_index etc., as RLlib passes an EnvContext.
    context = EnvContext(config, worker_index=0, num_workers=0)
    if isinstance(env, type):
        return env(context)
    if _global_registry.contains(ENV_CREATOR, env):
        return _global_registry.get(ENV_CREATOR, env)(context)
    found = env_class(env)
    if found is not None:
        return found(context)
    try:
        return gym.make(env, disable_env_checker=True, **config, **gym_kwargs)
    except (gym.error.Error, ImportError) as err:
        # ImportError: MuJoCo's -v2/-v3 envs need mujoco-py, which gymnasium 1.x dropped.
        newest = newest_version(env)
        fix = f"use '{newest}'" if newest and newest != env else "use a gymnasium id such as Hopper-v5"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EnvNotFound(f"{env!r} cannot be made here ({reason}); {fix}") from None


def env_action_space(env: Any, env_config: dict[str, Any] | None = None) -> gym.Space:
    """The env's action space; for a multi-agent env, a ``Dict`` of each agent's."""
    instance = make_env(env, env_config)
    try:
        if isinstance(instance, MultiAgentEnv):
            agents = instance.possible_agents
            return gym.spaces.Dict({aid: instance.get_action_space(aid) for aid in agents})
        return instance.action_space
    finally:
        instance.close()
