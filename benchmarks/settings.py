"""Execution settings that change how fast a tuned example trains, not what it learns.

    python benchmarks/settings.py [--example hopper/hopper-trpl-kl] [--iterations 5]
        [--out benchmarks/results/settings.json]

Loads the tuned example exactly as ``rllib-trl train file`` does, keeps every algorithm
setting (2048 env steps per iteration, 10 epochs of 64-sample minibatches, networks,
bounds), switches evaluation off, and times ``algo.train()`` under each setting below,
one build after the other, after one warm-up iteration: EnvRunners (0 = sample in the
driver process), sub-envs per EnvRunner, torch threads of the learner (the driver here,
as in a Tune trial with ``num_learners=0``). EnvRunners get 2 / n logical CPUs each
(``num_cpus_per_env_runner``) so that every setting fits the 2-CPU Ray instance, like
a Tune trial on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import ray
import torch

# (EnvRunners, sub-envs per EnvRunner, learner torch threads). The first, 1 × 8, is the
# baseline: the tuned examples' setting before 2 × 4 (at 0.5 CPU each) became their default.
SETTINGS = [
    (1, 8, 1),
    (1, 4, 1),
    (1, 16, 1),
    (0, 8, 1),
    (0, 16, 1),
    (2, 4, 1),
    (2, 8, 1),
    (1, 8, 2),
]


def build(example: str, runners: int, envs: int):
    from rllib_trl.cli.experiment import load_experiments
    from rllib_trl.cli.validate import resolve_algorithm, resolve_callables

    exp = load_experiments(str(Path("tuned_examples") / f"{example}.yaml"))[0]
    config = resolve_algorithm(exp.run).get_default_config().update_from_dict(resolve_callables(exp.config))
    config.evaluation(evaluation_interval=None)
    config.env_runners(
        num_env_runners=runners,
        num_envs_per_env_runner=envs,
        num_cpus_per_env_runner=(1.0 if runners <= 1 else 1.0 / runners),
    )
    config.debugging(seed=0)
    return config.build_algo()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--example", default="hopper/hopper-trpl-kl")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per setting")
    parser.add_argument("--out", default="benchmarks/results/settings.json")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    for runners, envs, threads in SETTINGS:
        torch.set_num_threads(threads)
        algo = build(args.example, runners, envs)
        algo.train()  # warm-up
        times = []
        for _ in range(args.iterations):
            start = time.perf_counter()
            result = algo.train()
            times.append(time.perf_counter() - start)
        timers = result["timers"]
        algo.stop()
        iter_s = statistics.median(times)
        rows.append(
            {
                "env_runners": runners,
                "envs_per_env_runner": envs,
                "learner_threads": threads,
                "iter_s": iter_s,
                "env_steps_per_s": 2048 / iter_s,
                "sample_s": timers.get("env_runner_sampling_timer"),
                "learn_s": timers.get("learner_update_timer"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    ray.shutdown()
    base = rows[0]["env_steps_per_s"]
    for row in rows:
        row["vs_baseline"] = row["env_steps_per_s"] / base
    meta = {
        "example": args.example,
        "iterations": args.iterations,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "machine": platform.machine(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print("| EnvRunners | envs each | learner threads | env-steps/s | s/iter | vs 1 × 8 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env_runners']} | {r['envs_per_env_runner']} | {r['learner_threads']} "
            f"| {r['env_steps_per_s']:.0f} | {r['iter_s']:.2f} | {r['vs_baseline']:.2f} |"
        )


if __name__ == "__main__":
    main()
