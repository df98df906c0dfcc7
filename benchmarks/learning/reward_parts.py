"""What a policy's return is made of: the reward terms of the last checkpoint of each run.

    python benchmarks/learning/reward_parts.py --runs 'ant-*-1M*' [--episodes 5] [--out F.csv]

Replays the last checkpoint of each finished seed (runs/<group>/seed*/ with DONE, as
aggregate.py) with the deterministic policy, ``--episodes`` episodes from reset seeds
0, 1, ..., and sums each ``reward_*`` term the MuJoCo env reports in ``info`` (Ant-v5:
forward, ctrl, contact, survive) over the episode. Prints per seed the mean over episodes
of the return, the episode length, the share of episodes that ended by termination (an
unhealthy state, not the time limit) and the torso's mean and lowest height at those terminations,
each term, and the mean forward (x) velocity.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from aggregate import finished_trials, select_groups  # this folder (run as a script)

from rllib_trl.cli.checkpoint import load_checkpoint
from rllib_trl.cli.export import deployable_policy


def episode_parts(policy: torch.nn.Module, env: gym.Env, seed: int) -> dict[str, float]:
    """One deterministic episode: return, length, whether it ended by termination (not the
    time limit), each ``reward_*`` term summed, and the mean of ``info["x_velocity"]``."""
    obs, _ = env.reset(seed=seed)
    parts: dict[str, float] = {"return": 0.0, "length": 0.0, "terminated": 0.0}
    velocity, done = [], False
    with torch.no_grad():
        while not done:
            action = policy(torch.as_tensor(obs)[None])[0].numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            parts["return"] += float(reward)
            parts["length"] += 1
            for key, value in info.items():
                if key.startswith("reward_"):
                    parts[key] = parts.get(key, 0.0) + float(value)
            velocity.append(float(info.get("x_velocity", np.nan)))
            done = terminated or truncated
    parts["terminated"] = float(terminated)
    # the torso's height where an episode was terminated (the MuJoCo locomotion envs end
    # one when it leaves their healthy z range); NaN for the time limit
    parts["end_torso_z"] = float(env.unwrapped.data.body("torso").xpos[2]) if terminated else np.nan
    parts["x_velocity_mean"] = float(np.mean(velocity))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="+", required=True, help="run-group names or glob patterns")
    parser.add_argument("--episodes", type=int, default=5, help="episodes per checkpoint")
    parser.add_argument("--out", help="also write each seed's row to this CSV")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for group in select_groups(args.runs):
        for trial in finished_trials(group):
            if trial is None:
                continue
            seed = int(trial.relative_to(group).parts[0].removeprefix("seed"))
            last = max(trial.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))
            checkpoint = load_checkpoint(str(last))
            policy = deployable_policy(checkpoint)
            env_id, env_config = checkpoint.env_spec  # the env the run trained on
            env = gym.make(env_id, **env_config)
            episodes = pd.DataFrame([episode_parts(policy, env, s) for s in range(args.episodes)])
            env.close()
            row = {"run": group.name, "seed": seed, **episodes.mean().to_dict()}
            row["end_torso_z_min"] = float(episodes["end_torso_z"].min())
            rows.append(row)
            print(", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if args.out and rows:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
