"""HalfCheetah's posture over training: upright, or running on its back.

    python benchmarks/learning/posture.py --runs 'halfcheetah-*-1M' [--out results/F.csv]

HalfCheetah-v5 has a well-known local optimum: the cheetah flips over and learns to run
on its back, which pays far less than running upright. This script replays every
checkpoint of finished runs (runs/<group>/seed*/ with DONE, as aggregate.py) with the
deterministic policy, ``--episodes`` episodes from reset seeds 0, 1, ..., and reports the
share of steps the torso spends upside down (|rooty| past 90 degrees, steps 200-1000 of
each episode) and the mean return. Each seed's line marks its checkpoints in order:
u upright, B on its back (more than half of the steps upside down).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from aggregate import finished_trials, select_groups  # this folder (run as a script)

from rllib_trl.cli.checkpoint import load_checkpoint
from rllib_trl.cli.export import deployable_policy
from rllib_trl.cli.plot import load_trial
from rllib_trl.cli.result_keys import ENV_STEPS, ITERATION

ROOTY = 2  # HalfCheetah's qpos: rootx, rootz, rooty (the torso's pitch, radians), joints
SETTLE = 200  # steps left out at the start of an episode (the reset pose, the first gait)


def upside_down(pitch: np.ndarray) -> np.ndarray:
    """Whether each torso pitch ``(T,)`` (radians, any winding) is past 90 degrees."""
    return np.cos(pitch) < 0.0


def replay(policy: torch.nn.Module, env: gym.Env, seed: int) -> tuple[float, float]:
    """One deterministic episode: (return, share of steps after ``SETTLE`` upside down)."""
    obs, _ = env.reset(seed=seed)
    total, pitch, done = 0.0, [], False
    with torch.no_grad():
        while not done:
            action = policy(torch.as_tensor(obs)[None])[0].numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            pitch.append(float(env.unwrapped.data.qpos[ROOTY]))
            done = terminated or truncated
    return total, float(upside_down(np.array(pitch[SETTLE:])).mean())


def trial_postures(trial: Path, episodes: int) -> list[dict]:
    """One row per checkpoint of ``trial``: env steps, mean return and share of steps
    upside down over ``episodes`` episodes (reset seeds 0 .. episodes - 1)."""
    frame, _ = load_trial(trial)
    steps_at = dict(zip(frame[ITERATION], frame[ENV_STEPS], strict=True)) if ITERATION in frame else {}
    env = gym.make("HalfCheetah-v5")
    rows = []
    for checkpoint in sorted(trial.glob("checkpoint_*")):
        with open(checkpoint / "algorithm_state.pkl", "rb") as f:
            iteration = pickle.load(f)["training_iteration"]
        policy = deployable_policy(load_checkpoint(str(checkpoint)))
        total, down = np.mean([replay(policy, env, seed) for seed in range(episodes)], axis=0)
        rows.append(
            {
                "iteration": iteration,
                "env_steps": steps_at.get(iteration),
                "return": float(total),
                "upside_down": float(down),
            }
        )
    env.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", nargs="+", default=["halfcheetah-*"], help="run-group names or glob patterns"
    )
    parser.add_argument("--episodes", type=int, default=3, help="episodes per checkpoint")
    parser.add_argument("--out", help="also write every checkpoint's row to this CSV")
    parser.add_argument(
        "--include-unfinished", action="store_true", help="also seeds without DONE (stopped runs)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for group in select_groups(args.runs):
        for trial in finished_trials(group, args.include_unfinished):
            if trial is None:
                continue
            seed = int(trial.relative_to(group).parts[0].removeprefix("seed"))
            found = trial_postures(trial, args.episodes)
            rows += [{"run": group.name, "seed": seed, **row} for row in found]
            marks = "".join("B" if r["upside_down"] > 0.5 else "u" for r in found)
            last = found[-1]
            print(
                f"{group.name} seed {seed}: {marks}  last checkpoint ({last['env_steps']} steps): "
                f"return {last['return']:.0f}, upside down {last['upside_down']:.0%}"
            )
    if args.out and rows:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
