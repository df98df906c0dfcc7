"""Multi-agent envs and policy mappings that the tuned examples name by path.

YAML: ``env: rllib_trl.envs.MultiAgentHopper`` (RLlib's class-path form, which the CLI
imports: RLlib 2.60's multi-agent EnvRunner does not resolve class paths itself) and
``multiagent: {policies: [p0, p1], policy_mapping_fn: rllib_trl.envs:policy_per_agent}``.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.env.multi_agent_env import make_multi_agent


class MultiAgentHopper(make_multi_agent("Hopper-v5")):
    """``env_config: {num_agents: n}`` independent Hopper-v5 copies; agent ids 0 .. n-1."""


class MultiAgentPendulum(make_multi_agent("Pendulum-v1")):
    """``env_config: {num_agents: n}`` independent Pendulum-v1 copies; agent ids 0 .. n-1."""


def policy_per_agent(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Agent i acts with policy ``p<i>``."""
    return f"p{agent_id}"


def shared_policy(agent_id: Any, episode: Any = None, **kwargs: Any) -> str:
    """Every agent acts with one policy, ``shared``."""
    return "shared"
