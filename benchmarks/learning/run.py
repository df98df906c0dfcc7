"""Run tuned examples over seeds, resumable across sessions (one run at a time).

    python benchmarks/learning/run.py --examples hopper/hopper-trpl-kl hopper/hopper-ppo \
        --seeds 0 1 2 --steps 1000000 [--tag 1M] [--config '{"normalize_rewards": false}']

Each run goes to benchmarks/learning/runs/<example>[-<tag>]/seed<k>/ through the
``rllib-trl`` CLI. A finished run leaves DONE; an interrupted one is resumed with
``--resume``; finished ones are skipped. Aggregate with aggregate.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def run_one(example: str, seed: int, steps: int, tag: str, extra: dict) -> None:
    name = Path(example).name + (f"-{tag}" if tag else "")
    storage = HERE / "runs" / name / f"seed{seed}"
    if (storage / "DONE").exists():
        print(f"skip {name} seed {seed}: done")
        return
    resume = storage.exists() and any(storage.iterdir())
    cmd = [
        sys.executable,
        "-m",
        "rllib_trl.cli.main",
        "train",
        "file",
        str(ROOT / "tuned_examples" / f"{example}.yaml"),
        "--stop",
        json.dumps({"num_env_steps_sampled_lifetime": steps}),
        "--config",
        json.dumps({"seed": seed, **extra}),
        "--storage-path",
        str(storage),
    ] + (["--resume"] if resume else [])
    print(f"run {name} seed {seed} ({'resume' if resume else 'start'}) ...", flush=True)
    start = time.time()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (storage).mkdir(parents=True, exist_ok=True)
    (storage / "cli.log").write_text(out.stdout[-20000:] + "\n--- stderr ---\n" + out.stderr[-20000:])
    if out.returncode == 0:
        meta = {
            "example": example,
            "seed": seed,
            "steps": steps,
            "config": extra,
            "wall_s": time.time() - start,
        }
        (storage / "DONE").write_text(json.dumps(meta))
        print(f"  done in {time.time() - start:.0f} s")
    else:
        print(f"  failed (exit {out.returncode}); see {storage / 'cli.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", nargs="+", required=True, help="paths below tuned_examples/, no .yaml")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--tag", default="")
    parser.add_argument("--config", default="{}", help="JSON merged into each run's config")
    args = parser.parse_args()
    extra = json.loads(args.config)
    for seed in args.seeds:  # seed-major: every example gets seed 0 before any gets seed 1
        for example in args.examples:
            run_one(example, seed, args.steps, args.tag, extra)


if __name__ == "__main__":
    main()
