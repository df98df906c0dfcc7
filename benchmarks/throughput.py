"""Throughput side by side on Hopper-v5: TRPL (each projection) vs RLlib PPO vs SB3 PPO.

    python benchmarks/throughput.py [--iterations 6] [--rounds 2] [--out benchmarks/results/throughput.json]

Same rollout and SGD work for all: 2048 env steps per iteration, 10 epochs, minibatch 64,
64-64 tanh networks. RLlib runs its own training step with timers around sampling and the
learner update (1 EnvRunner with --envs sub-envs, local learner, one torch thread in the
driver; a candidate named ``NAME@RxE``, e.g. ``trpl-kl@2x4``, uses R EnvRunners with E
sub-envs each at 1/R CPU, the tuned examples' execution setting); SB3 runs PPO with one
env (its default), timed by callbacks around rollouts and training. ``trpl-none`` is the
TRPL learner with the identity projection: a projection's ratio to it ("vs none", same
layout only) bounds the projection's own cost, up to this machine's run-to-run spread. The candidates run
interleaved, in rounds, after one warm-up iteration each;
the first iteration of every (re)build is not counted. Needs `pip install stable-baselines3`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import ray
import torch

STEPS = 2048


def rllib_candidate(name: str, envs: int, runners: int = 1):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from rllib_trl import TRPLConfig
    from rllib_trl.connectors import observation_filter

    if name.startswith("trpl-"):
        config = TRPLConfig().training(projection=name.split("-", 1)[1])
    else:
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

    return iteration, algo.stop


def sb3_candidate(envs: int):
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: gym.make("Hopper-v5"), n_envs=envs, seed=0)
    model = PPO(
        "MlpPolicy", env, n_steps=STEPS // envs, batch_size=64, n_epochs=10, seed=0, device="cpu", verbose=0
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

    return iteration, env.close


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=6, help="timed iterations per candidate per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--envs", type=int, default=8, help="sub-envs of the RLlib EnvRunner")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=[
            "trpl-kl",
            "trpl-wasserstein",
            "trpl-frobenius",
            "trpl-none",
            "ppo",
            "sb3",
            "trpl-kl@2x4",
            "ppo@2x4",
        ],
    )
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    samples: dict[str, list[tuple[float, float, int]]] = {c: [] for c in args.candidates}
    for round_ in range(args.rounds):
        for name in args.candidates:  # interleaved: every candidate once per round
            if name == "sb3":
                iteration, close = sb3_candidate(1)
            elif "@" in name:
                base, layout = name.split("@")
                runners, envs = (int(n) for n in layout.split("x"))
                iteration, close = rllib_candidate(base, envs, runners)
            else:
                iteration, close = rllib_candidate(name, args.envs)
            iteration()  # warm-up
            for _ in range(args.iterations):
                samples[name].append(iteration())
            close()
            print(f"round {round_ + 1}: {name} done", flush=True)
    ray.shutdown()
    rows = []
    for name, data in samples.items():
        sample_s = statistics.median(d[0] for d in data)
        learn_s = statistics.median(d[1] for d in data)
        steps = np.mean([d[2] for d in data])
        total = sample_s + learn_s
        rows.append(
            {
                "candidate": name,
                "env_steps_per_s": steps / total,
                "sample_s": sample_s,
                "learn_s": learn_s,
                "iter_s": total,
                "n": len(data),
            }
        )
    base = {r["candidate"]: r["env_steps_per_s"] for r in rows}
    head = f"{'candidate':<18}{'env-steps/s':>12}{'sample s':>10}{'learn s':>10}"
    print(head + "".join(f"{title:>9}" for title in ("vs ppo", "vs sb3", "vs none")))
    for r in rows:
        # vs none: the same TRPL learner, same layout, without a projection
        layout = r["candidate"].partition("@")[1:]
        none = "trpl-none" + "".join(layout) if r["candidate"].startswith("trpl-") else None
        ratios = {"ppo": "ppo", "sb3": "sb3", "trpl_none": none}
        for key, ref in ratios.items():
            r[f"ratio_vs_{key}"] = r["env_steps_per_s"] / base[ref] if ref in base else None
        print(
            f"{r['candidate']:<18}{r['env_steps_per_s']:>12.0f}{r['sample_s']:>10.2f}{r['learn_s']:>10.2f}"
            + "".join(
                f"{c:>9.2f}" if c is not None else f"{'-':>9}" for c in (r[f"ratio_vs_{k}"] for k in ratios)
            )
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "ray": ray.__version__,
        "machine": platform.machine(),
        "envs": args.envs,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
