"""Find an env's action space before any actor starts (for clear config errors)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from ray.rllib.env.env_context import EnvContext
from ray.tune.registry import ENV_CREATOR, _global_registry


class EnvNotFound(ValueError):
    """The env id is neither a Tune-registered env nor a gymnasium id that can be made here."""


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


def env_action_space(env: str, env_config: dict[str, Any] | None = None) -> gym.Space:
    """Make the env once (Tune registry first, then gymnasium) and return its action space."""
    if _global_registry.contains(ENV_CREATOR, env):
        # Creators may read worker_index etc., as RLlib passes an EnvContext.
        context = EnvContext(env_config or {}, worker_index=0, num_workers=0)
        instance = _global_registry.get(ENV_CREATOR, env)(context)
    else:
        try:
            instance = gym.make(env, disable_env_checker=True, **(env_config or {}))
        except (gym.error.Error, ImportError) as err:
            # ImportError: MuJoCo's -v2/-v3 envs need mujoco-py, which gymnasium 1.x dropped.
            newest = newest_version(env)
            fix = f"use '{newest}'" if newest and newest != env else "use a gymnasium id such as Hopper-v5"
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EnvNotFound(f"{env!r} cannot be made here ({reason}); {fix}") from None
    try:
        return instance.action_space
    finally:
        instance.close()
