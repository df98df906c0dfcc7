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
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from tqdm import tqdm

from rllib_trl.cli.checkpoint import load_checkpoint
from rllib_trl.cli.errors import UsageError


def load_policy(checkpoint: str):
    """(module, env-to-module pipeline, module-to-env pipeline, (env, env_config))."""
    loaded = load_checkpoint(checkpoint)
    if DEFAULT_MODULE_ID not in loaded.modules:
        raise UsageError(
            f"{checkpoint} holds the modules {sorted(loaded.modules)}, not one single-agent policy"
        )
    return loaded.modules[DEFAULT_MODULE_ID], loaded.env_to_module, loaded.module_to_env, loaded.env_spec


def _make_env(env_spec: tuple[str, dict], render: bool) -> gym.Env:
    env_id, kwargs = env_spec[0], dict(env_spec[1])
    if render:
        kwargs["render_mode"] = "rgb_array"
    from ray.tune.registry import ENV_CREATOR, _global_registry

    if isinstance(env_id, str) and _global_registry.contains(ENV_CREATOR, env_id):
        return _global_registry.get(ENV_CREATOR, env_id)(kwargs)
    return gym.make(env_id, **kwargs)


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


def evaluate_command(checkpoint: str, *, episodes: int, video: str | None, seed: int) -> int:
    if episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {episodes}")
    module, env_to_module, module_to_env, config = load_policy(checkpoint)
    returns = []
    env = _make_env(config, render=False)
    for i in tqdm(range(episodes), desc="episodes", disable=episodes < 5):
        returns.append(run_episode(env, module, env_to_module, module_to_env, seed + i))
    env.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    print(f"{config[0]}: deterministic return {mean:.1f} ± {std:.1f} over {episodes} episode(s)")
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
