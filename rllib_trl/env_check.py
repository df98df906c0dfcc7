"""Find an env's action space before any actor starts (for clear config errors)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from ray.rllib.env.env_context import EnvContext
from ray.tune.registry import ENV_CREATOR, _global_registry


class EnvNotFound(ValueError):
    """The env id is neither a Tune-registered env nor a gymnasium id."""


def env_action_space(env: str, env_config: dict[str, Any] | None = None) -> gym.Space:
    """Make the env once (Tune registry first, then gymnasium) and return its action space."""
    if _global_registry.contains(ENV_CREATOR, env):
        # Creators may read worker_index etc., as RLlib passes an EnvContext.
        context = EnvContext(env_config or {}, worker_index=0, num_workers=0)
        instance = _global_registry.get(ENV_CREATOR, env)(context)
    else:
        try:
            instance = gym.make(env, disable_env_checker=True, **(env_config or {}))
        except gym.error.Error as err:
            raise EnvNotFound(f"{env!r} cannot be made ({err})") from None
    try:
        return instance.action_space
    finally:
        instance.close()
