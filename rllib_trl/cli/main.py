"""Entry point of the ``rllib-trl`` console script."""

from __future__ import annotations

import argparse
import os
import sys

from rllib_trl.cli.errors import UsageError
from rllib_trl.mujoco_log import route_mujoco_warnings


def program_name() -> str:
    """``rllib`` when run as the classic RLlib command, else ``rllib-trl``."""
    return "rllib" if os.path.basename(sys.argv[0]) == "rllib" else "rllib-trl"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(), description="TRPL for Ray RLlib: train, evaluate, plot."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a classic RLlib YAML file or from flags")
    train.add_argument("mode", nargs="?", choices=["file"], help="'file' to read PATH.yaml")
    train.add_argument("path", nargs="?", help="experiment YAML (with 'file')")
    train.add_argument("-f", "--config-file", help="experiment YAML (RLlib 1.x spelling of 'file PATH')")
    train.add_argument("--run", "--algo", help="algorithm, e.g. TRPL or PPO (without a file)")
    train.add_argument("--env", help="env id, e.g. Hopper-v5 (without a file)")
    train.add_argument("--name", default=None, help="experiment name (without a file)")
    train.add_argument("--config", help="JSON merged into the experiment's config (nested dicts key by key)")
    train.add_argument("--stop", help="JSON stop criteria, replacing the file's")
    train.add_argument("--storage-path", help="where results go (default ~/rllib_trl_results)")
    train.add_argument("--address", help="Ray cluster address (default: local instance or RAY_ADDRESS)")
    train.add_argument("--num-samples", type=int, help="trials per experiment")
    train.add_argument("--resume", action="store_true", help="continue an interrupted experiment")

    evaluate = sub.add_parser("evaluate", help="deterministic return of a checkpoint")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--video", help="write an MP4 of the first episode (MuJoCo offscreen rendering)")
    evaluate.add_argument("--seed", type=int, default=0)

    export = sub.add_parser("export", help="the policy as one file that loads with torch alone (no Ray)")
    export.add_argument("checkpoint")
    export.add_argument("-o", "--output", default="policy.pt2", help="file, .pt2 (one per policy if several)")
    export.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")

    plot = sub.add_parser("plot", help="learning curves and trust-region metrics as PNG")
    plot.add_argument("results", nargs="+", help="experiment or trial directories")
    plot.add_argument("-o", "--output", default="curves.png")
    return parser


def _train(args: argparse.Namespace) -> int:
    from rllib_trl.cli.experiment import (
        Experiment,
        apply_overrides,
        load_experiments,
        parse_json_arg,
    )
    from rllib_trl.cli.train import run_experiment

    def note(line: str) -> None:
        print(f"{program_name()}: note: {line}")

    config = parse_json_arg("--config", args.config)
    stop = parse_json_arg("--stop", args.stop)
    if args.config_file and (args.mode or args.path):
        raise UsageError("give the experiment file once: 'train file PATH.yaml' or 'train -f PATH.yaml'")
    if args.mode == "file" or args.config_file:
        path = args.config_file or args.path
        if not path:
            raise UsageError("train file needs a PATH.yaml")
        experiments = load_experiments(path)
    else:
        if args.path or not (args.run and args.env):
            raise UsageError(
                f"use '{program_name()} train file PATH.yaml' or "
                f"'{program_name()} train --run TRPL --env Hopper-v5'"
            )
        name = args.name or f"{args.run}-{args.env}"
        experiments = [Experiment(name=name, run=args.run, config={"env": args.env})]
    code = 0
    for exp in experiments:
        exp = apply_overrides(
            exp,
            config=config,
            stop=stop,
            num_samples=args.num_samples,
            storage_path=args.storage_path,
            note=note,
        )
        code = max(code, run_experiment(exp, address=args.address, resume=args.resume))
    return code


def _evaluate(args: argparse.Namespace) -> int:
    from rllib_trl.cli.evaluate import evaluate_command

    return evaluate_command(args.checkpoint, episodes=args.episodes, video=args.video, seed=args.seed)


def _export(args: argparse.Namespace) -> int:
    from rllib_trl.cli.export import export_command

    return export_command(args.checkpoint, output=args.output, stochastic=args.stochastic)


def _plot(args: argparse.Namespace) -> int:
    from rllib_trl.cli.plot import plot_command

    return plot_command(args.results, args.output)


COMMANDS = {"train": _train, "evaluate": _evaluate, "export": _export, "plot": _plot}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    route_mujoco_warnings()  # in this process; the Ray workers get it from train's setup hook
    try:
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(f"{program_name()}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program_name()}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
