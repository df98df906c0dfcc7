"""``rllib-trl export``: a checkpoint's policy as one file that loads with torch alone."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
from ray.rllib.core import DEFAULT_MODULE_ID

from rllib_trl.cli.checkpoint import Checkpoint, load_checkpoint
from rllib_trl.cli.errors import UsageError
from rllib_trl.connectors.mean_std_filter import filter_stats
from rllib_trl.deploy import ActionMapping, DeployablePolicy, ObservationStats, export_policy


def observation_stats(checkpoint: Checkpoint, agent_id) -> ObservationStats | None:
    """The frozen filter statistics the EnvRunners normalised ``agent_id``'s observations
    with (None: no observation filter in the run)."""
    try:
        return filter_stats(checkpoint.observation_filter(), agent_id)
    except ValueError:
        raise UsageError("export supports Box observations; this checkpoint's are a nested space") from None


def export_targets(loaded: Checkpoint, output: str) -> list[tuple[Path, str, object]]:
    """(file, module id, agent id whose observation statistics it uses) per exported policy.

    One policy: ``policy.pt2``. Several: ``policy_<module>.pt2`` each; a module that several
    agents share gets one file per agent (``policy_<module>_<agent>.pt2``), since the
    observation filter keeps statistics per agent.
    """
    out = Path(output).expanduser()
    if out.is_dir():
        raise UsageError(f"-o {output} is a folder; give a file name such as {out / 'policy.pt2'}")
    if not out.parent.is_dir():
        raise UsageError(f"-o {output}: the folder {out.parent} does not exist")
    if not loaded.multi_agent:
        return [(out, DEFAULT_MODULE_ID, None)]
    obs_filter = loaded.observation_filter()
    if obs_filter is None or not obs_filter._filters:
        return [(out.with_name(f"{out.stem}_{mid}{out.suffix}"), mid, None) for mid in loaded.modules]
    agents_of: dict[str, list] = {}
    for agent_id in obs_filter._filters:
        agents_of.setdefault(loaded.policy_of(agent_id), []).append(agent_id)
    targets = []
    for module_id, agents in sorted(agents_of.items()):
        for agent_id in agents:
            name = module_id if len(agents) == 1 else f"{module_id}_{agent_id}"
            targets.append((out.with_name(f"{out.stem}_{name}{out.suffix}"), module_id, agent_id))
    return targets


def deployable_policy(
    loaded: Checkpoint, module_id: str = DEFAULT_MODULE_ID, agent_id=None, stochastic: bool = False
) -> DeployablePolicy:
    """Module ``module_id`` of the checkpoint as a :class:`DeployablePolicy`: raw
    observations ``(B, *obs_shape)`` to env actions ``(B, action_dim)``, with the
    observation statistics of ``agent_id`` (None: the single agent's)."""
    module = loaded.modules[module_id]
    if not isinstance(module.action_space, gym.spaces.Box):
        raise UsageError(
            f"module '{module_id}' has action space {module.action_space}; "
            "export supports continuous (Box) Gaussian policies"
        )
    full = bool(getattr(module, "full", False))
    actions = ActionMapping.of(
        module.action_space,
        normalize_actions=bool(loaded.setting("normalize_actions", True)),
        clip_actions=bool(loaded.setting("clip_actions", False)),
    )
    return DeployablePolicy(module, full, observation_stats(loaded, agent_id), actions, stochastic)


def export_command(checkpoint: str, *, output: str, stochastic: bool) -> int:
    loaded = load_checkpoint(checkpoint)
    for path, module_id, agent_id in export_targets(loaded, output):
        module = loaded.modules[module_id]
        policy = deployable_policy(loaded, module_id, agent_id, stochastic)
        try:
            export_policy(policy, module.observation_space, path)
        except OSError as err:
            raise UsageError(f"cannot write {path}: {err.strerror or err}") from None
        kind = "stochastic" if stochastic else "deterministic"
        agent = "" if agent_id is None else f" (agent {agent_id}'s observation statistics)"
        print(
            f"{path}: {kind} policy '{module_id}'{agent}, observations "
            f"{module.observation_space.dtype} (B, {', '.join(map(str, module.observation_space.shape))})"
            f" -> actions (B, {', '.join(map(str, module.action_space.shape))}); "
            f"load with torch.export.load({str(path)!r}).module()"
        )
    return 0
