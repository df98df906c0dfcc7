"""EnvRunner overhead per env step: the EnvRunner TRPLConfig picks, with the Hopper tuned
example's connectors against raw MuJoCo stepping of the same envs.

    python benchmarks/envrunner_overhead.py [--example hopper/hopper-trpl-kl] [--envs 8]

Both in this process, one thread: the EnvRunner (``TRPLEnvRunner``'s lean loop where the
config picks it, ``rllib_trl/env_runner.py``) samples 2048 steps with 8 sub-envs
(the module's forward and action sampling, the observation filter, return statistics,
unsquashing, episode bookkeeping; for TRPL through the fused connector pipelines of
``rllib_trl/connectors/fused.py``); the raw loop steps a gymnasium SyncVectorEnv of the
same 8 envs with random actions. Medians of 3 after a warm-up. Overhead per env step =
1 / EnvRunner rate − 1 / raw rate.

Side by side with an older commit (its package on PYTHONPATH, this script for both):

    git worktree add /tmp/wt-213ba46 213ba46
    for round in 1 2 3; do
      (cd /tmp/wt-213ba46 && PYTHONPATH=. python /work/main/benchmarks/envrunner_overhead.py)
      PYTHONPATH=. python benchmarks/envrunner_overhead.py
    done
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--example", default="hopper/hopper-trpl-kl")
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2048)
    args = parser.parse_args()
    import gymnasium as gym
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from rllib_trl.cli.experiment import load_experiments
    from rllib_trl.cli.validate import resolve_algorithm, resolve_callables

    torch.set_num_threads(1)
    exp = load_experiments(str(Path("tuned_examples") / f"{args.example}.yaml"))[0]
    config = resolve_algorithm(exp.run).get_default_config().update_from_dict(resolve_callables(exp.config))
    config.env_runners(num_env_runners=0, num_envs_per_env_runner=args.envs).evaluation(
        evaluation_interval=None
    )
    # TRPLEnvRunner where the config picks it (before it existed: RLlib's runner).
    runner = (config.env_runner_cls or SingleAgentEnvRunner)(config=config)
    print(f"{type(runner).__name__}", end=": ")
    runner.sample(num_timesteps=args.steps)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        steps = sum(len(e) for e in runner.sample(num_timesteps=args.steps))
        rates.append(steps / (time.perf_counter() - start))
    runner_rate = statistics.median(rates)

    venv = gym.make_vec(exp.config["env"], num_envs=args.envs, vectorization_mode="sync")
    venv.reset(seed=0)
    per_env = args.steps // args.envs
    actions = np.random.default_rng(0).uniform(-1, 1, (per_env, *venv.action_space.shape))
    actions = actions.astype(venv.action_space.dtype)
    rates = []
    for _ in range(4):
        start = time.perf_counter()
        for a in actions:
            venv.step(a)
        rates.append(per_env * args.envs / (time.perf_counter() - start))
    raw_rate = statistics.median(rates[1:])
    overhead_us = 1e6 * (1 / runner_rate - 1 / raw_rate)
    print(f"EnvRunner {runner_rate:.0f} steps/s, raw MuJoCo {raw_rate:.0f} steps/s", end=", ")
    print(f"overhead {overhead_us:.0f} µs per env step")


if __name__ == "__main__":
    main()
