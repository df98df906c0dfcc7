"""Throughput side by side on Hopper-v5: TRPL (each projection) vs RLlib PPO vs SB3 PPO.

    python benchmarks/throughput.py [--iterations 6] [--rounds 2] [--out benchmarks/results/throughput.json]

Same rollout and SGD work for all: 2048 env steps per iteration, 10 epochs, minibatch 64,
64-64 tanh networks, observation normalisation; TRPL and SB3 also normalise rewards (RLlib
PPO has no reward normalisation). A candidate is ``NAME@RxE``: R EnvRunners with E envs
each (RLlib, at 1/R CPU each), or one process with E envs (SB3, R = 1).

- RLlib candidates are timed twice: as a split (sampling, then the learner update, with
  timers around each; the first iteration of a build not counted) and through
  ``algo.train()``, what users run (its wall-clock per iteration, evaluation off).
- SB3 runs PPO with a ``DummyVecEnv`` of E envs and ``VecNormalize`` (observations and
  rewards, as TRPL normalises both), timed by callbacks around rollouts and training, and
  as a whole ``learn`` call per iteration (its "train" figure).

``trpl-none`` is the TRPL learner with the identity projection: a projection's ratio to it
("vs none", same layout only) bounds the projection's own cost. Candidates run
interleaved, in rounds, after one warm-up iteration each. Ratios "vs sb3" compare with
SB3 with the same number of envs in all (``sb3@1x(R·E)``). Needs ``pip install stable-baselines3``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import ray
import torch

from rllib_trl.worker_setup import RUNTIME_ENV

STEPS = 2048


def rllib_candidate(name: str, envs: int, runners: int = 1):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from rllib_trl import TRPLConfig
    from rllib_trl.connectors import observation_filter

    if name.startswith("trpl-"):
        config = TRPLConfig().training(projection=name.split("-", 1)[1])
    else:  # RLlib PPO: observation normalisation only (RLlib has no reward normalisation)
        config = (
            PPOConfig()
            .training(lr=3e-4, lambda_=0.95, clip_param=0.2, vf_clip_param=float("inf"), use_kl_loss=False)
            .rl_module(
                model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": False}
            )
            .env_runners(env_to_module_connector=observation_filter)
        )
    config = (
        config.environment("Hopper-v5")
        .env_runners(
            num_env_runners=runners, num_envs_per_env_runner=envs, num_cpus_per_env_runner=1 / runners
        )
        .training(train_batch_size_per_learner=STEPS, minibatch_size=64, num_epochs=10)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    lifetime = [0]

    def iteration() -> tuple[float, float, int]:
        start = time.perf_counter()
        episodes = synchronous_parallel_sample(
            worker_set=algo.env_runner_group, max_env_steps=STEPS, _uses_new_env_runners=True
        )
        sampled = sum(len(e) for e in episodes)
        mid = time.perf_counter()
        lifetime[0] += sampled
        algo.learner_group.update(
            episodes=episodes,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: lifetime[0]},
            num_epochs=10,
            minibatch_size=64,
            shuffle_batch_per_epoch=True,
        )
        algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=algo.learner_group, inference_only=True
        )
        algo.env_runner_group.sync_env_runner_states(config=algo.config)
        return mid - start, time.perf_counter() - mid, sampled

    def train() -> tuple[float, int]:
        before = algo.metrics.peek(("env_runners", NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        start = time.perf_counter()
        result = algo.train()
        seconds = time.perf_counter() - start
        return seconds, int(result[NUM_ENV_STEPS_SAMPLED_LIFETIME] - before)

    return iteration, train, algo.stop


def sb3_candidate(envs: int):
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env(lambda: gym.make("Hopper-v5"), n_envs=envs, seed=0), gamma=0.99)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=STEPS // envs,
        batch_size=64,
        n_epochs=10,
        gae_lambda=0.95,
        seed=0,
        device="cpu",
        verbose=0,
        policy_kwargs={"net_arch": [64, 64]},
    )
    marks: dict[str, float] = {}

    class Timer(BaseCallback):
        def _on_rollout_start(self) -> None:
            marks["start"] = time.perf_counter()

        def _on_rollout_end(self) -> None:
            marks["rollout_end"] = time.perf_counter()

        def _on_step(self) -> bool:
            return True

    timer = Timer()

    def iteration() -> tuple[float, float, int]:
        model.learn(total_timesteps=STEPS, callback=timer, reset_num_timesteps=False)
        end = time.perf_counter()
        return marks["rollout_end"] - marks["start"], end - marks["rollout_end"], STEPS

    def train() -> tuple[float, int]:
        start = time.perf_counter()
        model.learn(total_timesteps=STEPS, reset_num_timesteps=False)
        return time.perf_counter() - start, STEPS

    return iteration, train, env.close


def parse(name: str) -> tuple[str, int, int]:
    """``NAME@RxE`` -> (NAME, R, E); a bare NAME is ``NAME@1x8``."""
    base, _, layout = name.partition("@")
    runners, envs = (int(n) for n in (layout or "1x8").split("x"))
    return base, runners, envs


def build(name: str):
    base, runners, envs = parse(name)
    if STEPS % (runners * envs):
        raise SystemExit(f"{name}: {runners * envs} envs in all must divide {STEPS} steps per iteration")
    if base == "sb3":
        if runners != 1:
            raise SystemExit(f"{name}: SB3 runs in one process, use sb3@1xE")
        return sb3_candidate(envs)
    return rllib_candidate(base, envs, runners)


def summarise(name: str, split: list[tuple[float, float, int]], train: list[tuple[float, int]]) -> dict:
    sample_s = statistics.median(d[0] for d in split)
    learn_s = statistics.median(d[1] for d in split)
    steps = float(np.mean([d[2] for d in split]))
    train_s = statistics.median(t for t, _ in train)
    train_steps = float(statistics.median(n for _, n in train))  # the first counts the split runs too
    return {
        "candidate": name,
        "env_steps_per_s": steps / (sample_s + learn_s),
        "sample_s": sample_s,
        "learn_s": learn_s,
        "iter_s": sample_s + learn_s,
        "train_env_steps_per_s": train_steps / train_s,
        "train_iter_s": train_s,
        "n": len(split),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=6, help="timed iterations per candidate per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=["trpl-kl@2x4", "trpl-kl@1x8", "trpl-none@2x4", "ppo@2x4", "sb3@1x8", "sb3@1x1"],
    )
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=RUNTIME_ENV,  # as the CLI
    )
    split: dict[str, list[tuple[float, float, int]]] = {c: [] for c in args.candidates}
    train: dict[str, list[tuple[float, int]]] = {c: [] for c in args.candidates}
    for round_ in range(args.rounds):
        for name in args.candidates:  # interleaved: every candidate once per round
            iteration, train_iteration, close = build(name)
            iteration()  # warm-up
            for _ in range(args.iterations):
                split[name].append(iteration())
            for _ in range(args.iterations):
                train[name].append(train_iteration())
            close()
            print(f"round {round_ + 1}: {name} done", flush=True)
    ray.shutdown()
    rows = [summarise(name, split[name], train[name]) for name in args.candidates]
    by_name = {r["candidate"]: r for r in rows}
    head = f"{'candidate':<16}{'train st/s':>11}{'split st/s':>11}{'sample s':>9}{'learn s':>9}"
    print(head + "".join(f"{title:>9}" for title in ("vs sb3", "vs ppo", "vs none")))
    for r in rows:
        base, runners, envs = parse(r["candidate"])
        refs = {  # same number of envs; "none" and "ppo" also the same layout
            "sb3": f"sb3@1x{runners * envs}",
            "ppo": f"ppo@{runners}x{envs}",
            "trpl_none": f"trpl-none@{runners}x{envs}" if base.startswith("trpl-") else None,
        }
        for key, ref in refs.items():
            other = by_name.get(ref) if ref != r["candidate"] else None
            r[f"ratio_vs_{key}"] = (
                r["train_env_steps_per_s"] / other["train_env_steps_per_s"] if other else None
            )
        print(
            f"{r['candidate']:<16}{r['train_env_steps_per_s']:>11.0f}{r['env_steps_per_s']:>11.0f}"
            f"{r['sample_s']:>9.2f}{r['learn_s']:>9.2f}"
            + "".join(
                f"{c:>9.2f}" if c is not None else f"{'-':>9}" for c in (r[f"ratio_vs_{k}"] for k in refs)
            )
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "ray": ray.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
