"""Evaluation's share of a tuned example's wall-clock, per way of running it.

    python benchmarks/evaluation.py [--example halfcheetah/halfcheetah-trpl-kl] [--iterations 20]

Builds the tuned example (its own config: 2 EnvRunners x 4 envs, 2048 steps per iteration,
10 deterministic evaluation episodes every 10 iterations) and times ``algo.train()`` over
``--iterations`` iterations, once without evaluation and once per variant:

- ``rllib``: RLlib's evaluation on the local evaluation EnvRunner (4 envs);
- ``batched``: ``rllib_trl.evaluation:batched_evaluation``, the 10 episodes in lockstep
  (the tuned examples' setting);
- ``driver-10``: RLlib's, with 10 envs on the evaluation EnvRunner;
- ``parallel-10``: RLlib's, on one remote evaluation EnvRunner with 10 envs, run while
  training (``evaluation_parallel_to_training``).

Evaluation's share = 1 − (time without evaluation) / (time with it). Same protocol in all:
10 episodes with the mean action. Run alone on the machine; variants are interleaved over
``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import ray
import torch

from rllib_trl.worker_setup import RUNTIME_ENV

ROOT = Path(__file__).resolve().parents[1]
RLLIB = {"custom_evaluation_function": None}
VARIANTS = {
    "off": {"evaluation_interval": None},
    "rllib": {**RLLIB, "evaluation_num_env_runners": 0},
    "batched": {},
    "driver-10": {**RLLIB, "evaluation_config": {"num_envs_per_env_runner": 10}},
    "parallel-10": {
        **RLLIB,
        "evaluation_num_env_runners": 1,
        "evaluation_parallel_to_training": True,
        "evaluation_config": {"num_envs_per_env_runner": 10},
    },
}


def build(example: str, variant: dict):
    from rllib_trl.cli.experiment import load_experiments
    from rllib_trl.cli.validate import validate_experiment

    (exp,) = load_experiments(str(ROOT / "tuned_examples" / f"{example}.yaml"))
    algo_cls = validate_experiment(exp)
    config = dict(exp.config)
    evaluation_config = {**config.get("evaluation_config", {}), **variant.get("evaluation_config", {})}
    config.update({k: v for k, v in variant.items() if k != "evaluation_config"})
    config["evaluation_config"] = {"explore": False, **evaluation_config}
    return algo_cls.get_default_config().update_from_dict(config).build_algo()


def time_iterations(algo, iterations: int) -> tuple[float, int]:
    algo.train()  # warm-up, not counted (and iteration 1 is not an evaluation one)
    evaluations = 0
    start = time.perf_counter()
    for _ in range(iterations):
        result = algo.train()
        evaluations += int(result["training_iteration"] % 10 == 0 and "evaluation" in result)
    return time.perf_counter() - start, evaluations


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--example", default="halfcheetah/halfcheetah-trpl-kl")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["off", "rllib", "batched"])
    parser.add_argument("--out", default="benchmarks/results/evaluation.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=RUNTIME_ENV,  # as the CLI
    )
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for round_ in range(args.rounds):
        for name in args.variants:
            algo = build(args.example, VARIANTS[name])
            try:
                seconds, evaluations = time_iterations(algo, args.iterations)
            finally:
                algo.stop()
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name} {seconds:.1f} s ({evaluations} evaluations)", flush=True)
    ray.shutdown()
    off = statistics.median(times["off"]) if "off" in times else None
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        share = 1 - off / median if off and name != "off" else None
        rows.append({"variant": name, "seconds": median, "runs": values, "evaluation_share": share})
        shown = f"{100 * share:.1f}%" if share is not None else "-"
        print(f"{name:<12} {median:8.1f} s for {args.iterations} iterations   evaluation share {shown}")
    meta = {
        "example": args.example,
        "iterations": args.iterations,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "processor": platform.processor(),
        "command": "python benchmarks/evaluation.py " + " ".join(sys.argv[1:]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
