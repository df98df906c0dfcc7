"""``rllib-trl evaluate``: the deterministic policy's return from a checkpoint.

The checkpoint's own connector pipelines run around the module, exactly as on an
EnvRunner with ``explore=False``: the observation filter normalises with the saved
statistics (frozen), the module-to-env pipeline turns the mean action into the env's.
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from tqdm import tqdm

from rllib_trl.cli.checkpoint import Checkpoint, load_checkpoint
from rllib_trl.cli.errors import UsageError
from rllib_trl.env_check import EnvNotFound, make_env


def env_name(env) -> str:
    return env.__name__ if isinstance(env, type) else str(env)


def _make_env(env_spec: tuple[str, dict], render: bool) -> gym.Env:
    try:
        return make_env(*env_spec, **({"render_mode": "rgb_array"} if render else {}))
    except EnvNotFound as err:
        raise UsageError(
            f"the checkpoint's env {err}; an env registered with tune.register_env in the training "
            "script is not known here: give its class path (package.module.EnvClass) as `env`"
        ) from None


@torch.no_grad()
def run_episode(env, module, env_to_module, module_to_env, seed: int, frames: list | None = None) -> float:
    """One episode with the mean action; returns the undiscounted return."""
    episode = SingleAgentEpisode(observation_space=env.observation_space, action_space=env.action_space)
    obs, info = env.reset(seed=seed)
    episode.add_env_reset(observation=obs, infos=info)
    total = 0.0
    while not episode.is_done:
        shared: dict = {}  # the two pipelines pass episode bookkeeping through it
        batch = env_to_module(
            rl_module=module, batch={}, episodes=[episode], explore=False, shared_data=shared
        )
        out = module.forward_inference(batch)
        out = module_to_env(
            rl_module=module, batch=out, episodes=[episode], explore=False, shared_data=shared
        )
        action = np.asarray(out[Columns.ACTIONS])[0]
        env_action = np.asarray(out.get(Columns.ACTIONS_FOR_ENV, out[Columns.ACTIONS]))[0]
        obs, reward, terminated, truncated, info = env.step(env_action)
        if frames is not None:
            frames.append(env.render())
        episode.add_env_step(
            observation=obs,
            action=action,
            reward=reward,
            infos=info,
            terminated=terminated,
            truncated=truncated,
        )
        total += float(reward)
    return total


def _write_video(frames: list, path: str, fps: int) -> None:
    try:
        import imageio.v2 as imageio

        imageio.mimsave(path, frames, fps=fps)
    except (ImportError, ValueError) as err:
        raise UsageError(
            f"cannot write {path} ({str(err).splitlines()[0]}); "
            "install the video extra: pip install 'rllib-trl[video]'"
        ) from None


@torch.no_grad()
def run_multi_agent_episode(env, loaded: Checkpoint, seed: int) -> dict:
    """One multi-agent episode with every policy's mean action; returns each agent's
    undiscounted return."""
    agents = env.possible_agents
    episode = MultiAgentEpisode(
        observation_space={aid: env.get_observation_space(aid) for aid in agents},
        action_space={aid: env.get_action_space(aid) for aid in agents},
        agent_to_module_mapping_fn=loaded.setting("policy_mapping_fn"),
    )
    obs, infos = env.reset(seed=seed)
    episode.add_env_reset(observations=obs, infos=infos)
    module = loaded.multi_module
    returns = dict.fromkeys(agents, 0.0)
    while not episode.is_done:
        shared: dict = {}
        batch = loaded.env_to_module(
            rl_module=module, batch={}, episodes=[episode], explore=False, shared_data=shared
        )
        out = loaded.module_to_env(
            rl_module=module,
            batch=module.forward_inference(batch),
            episodes=[episode],
            explore=False,
            shared_data=shared,
        )
        actions = out.pop(Columns.ACTIONS)[0]  # one env: the first of the per-env lists
        env_actions = out.pop(Columns.ACTIONS_FOR_ENV, [actions])[0]
        obs, rewards, terminateds, truncateds, infos = env.step(env_actions)
        extra = {
            aid: {col: values[0][aid] for col, values in out.items() if aid in values[0]} for aid in actions
        }
        episode.add_env_step(
            observations=obs,
            actions=actions,
            rewards=rewards,
            infos=infos,
            terminateds=terminateds,
            truncateds=truncateds,
            extra_model_outputs=extra,
        )
        for aid, reward in rewards.items():
            returns[aid] += float(reward)
    return returns


def _evaluate_multi_agent(loaded: Checkpoint, episodes: int, seed: int) -> None:
    env = _make_env(loaded.env_spec, render=False)
    per_agent = [run_multi_agent_episode(env, loaded, seed + i) for i in range(episodes)]
    env.close()
    totals = [sum(r.values()) for r in per_agent]
    print(
        f"{env_name(loaded.env_spec[0])}: deterministic return (all agents) {np.mean(totals):.1f} ± "
        f"{np.std(totals):.1f} over {episodes} episode(s)"
    )
    for aid in per_agent[0]:
        values = [r[aid] for r in per_agent]
        print(f"  agent {aid} (policy {loaded.policy_of(aid)}): {np.mean(values):.1f} ± {np.std(values):.1f}")


def evaluate_command(checkpoint: str, *, episodes: int, video: str | None, seed: int) -> int:
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    loaded = load_checkpoint(checkpoint)
    if loaded.multi_agent:
        if video:
            raise UsageError("--video renders single-agent checkpoints only; leave it out")
        _evaluate_multi_agent(loaded, episodes, seed)
        return 0
    module = loaded.modules[DEFAULT_MODULE_ID]
    env_to_module, module_to_env, config = loaded.env_to_module, loaded.module_to_env, loaded.env_spec
    returns = []
    env = _make_env(config, render=False)
    for i in tqdm(range(episodes), desc="episodes", disable=episodes < 5):
        returns.append(run_episode(env, module, env_to_module, module_to_env, seed + i))
    env.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    print(f"{env_name(config[0])}: deterministic return {mean:.1f} ± {std:.1f} over {episodes} episode(s)")
    if video:
        os.environ.setdefault("MUJOCO_GL", "egl")
        frames: list = []
        try:
            env = _make_env(config, render=True)
            run_episode(env, module, env_to_module, module_to_env, seed, frames)
            fps = int(env.metadata.get("render_fps", 30))
            env.close()
        except Exception as err:  # rendering back-ends fail in many ways
            raise UsageError(
                f"rendering failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                "MuJoCo offscreen rendering needs EGL (GPU driver, MUJOCO_GL=egl) or OSMesa "
                "(apt-get install libosmesa6, MUJOCO_GL=osmesa)"
            ) from None
        _write_video(frames, video, fps)
        print(f"video: {video} ({len(frames)} frames)")
    return 0
