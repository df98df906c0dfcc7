"""Sampling throughput with 1, 2, 4 EnvRunners (Hopper-v5, TRPL's inference-only module).

    python benchmarks/sampling.py [--runners 1 2 4] [--envs 4] [--steps 8192]

Each EnvRunner is a Ray actor with one CPU of Ray's accounting; on a machine with fewer
cores than EnvRunners they share the cores, so the curve flattens once the physical cores
are busy. Ray is started with as many logical CPUs as the largest setting needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import ray
import torch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runners", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8192, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/sampling.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(num_cpus=max(args.runners) + 1, include_dashboard=False, log_to_driver=False)
    from rllib_trl import TRPLConfig

    rows = []
    for n in args.runners:
        algo = (
            TRPLConfig()
            .environment("Hopper-v5")
            .env_runners(num_env_runners=n, num_envs_per_env_runner=args.envs)
            .build_algo()
        )
        per_runner = args.steps // n
        group = algo.env_runner_group
        group.foreach_env_runner(
            lambda r: len(r.sample(num_timesteps=256)), local_env_runner=False
        )  # warm-up
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            counts = group.foreach_env_runner(
                lambda r, k=per_runner: sum(len(e) for e in r.sample(num_timesteps=k)), local_env_runner=False
            )
            rates.append(sum(counts) / (time.perf_counter() - start))
        algo.stop()
        rows.append(
            {
                "env_runners": n,
                "envs_per_runner": args.envs,
                "env_steps_per_s": sorted(rates)[len(rates) // 2],
            }
        )
        print(
            f"{n} EnvRunner(s) x {args.envs} envs: {rows[-1]['env_steps_per_s']:.0f} env-steps/s", flush=True
        )
    ray.shutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cores": os.cpu_count(), "machine": platform.machine(), "ray": ray.__version__}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
