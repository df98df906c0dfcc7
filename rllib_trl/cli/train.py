"""``rllib-trl train``: run an experiment through Ray Tune and report where things are."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Tune's own status output stays off (verbose=0 below; the new-style output ignores it):
# ProgressTable prints the console's rows.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Snapshot the experiment (state and result files) to the storage path every few
# seconds instead of Tune's adaptive default, so a killed driver loses little on --resume.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
# Tune rejects a trial whose first result lacks the metric, but RLlib reports
# env_runners/episode_return_mean only once an episode has ended: HalfCheetah's episodes
# last 1000 steps, longer than a first iteration of 256 steps per env. _report says so
# at the end when no trial ever reported the metric (e.g. a misspelt tune_config.metric).
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402

from rllib_trl.cli.errors import UsageError
from rllib_trl.cli.experiment import DEFAULT_METRIC, Experiment
from rllib_trl.cli.progress import ProgressTable
from rllib_trl.cli.result_keys import ENV_STEPS
from rllib_trl.cli.search_space import is_search_space, resolve_samplers
from rllib_trl.cli.validate import validate_experiment
from rllib_trl.worker_setup import RUNTIME_ENV

DEFAULT_STORAGE = "~/rllib_trl_results"


def _searched_keys(config: dict[str, Any]) -> list[str]:
    return [k for k, v in config.items() if is_search_space(v)]


def _scheduler(spec: dict[str, Any] | None):
    if not spec:
        return None
    spec = dict(spec)
    kind = str(spec.pop("type", "ASHA")).upper()
    if kind != "ASHA":
        raise UsageError(f"tune_config.scheduler.type '{kind}' is not supported; use ASHA")
    try:
        return ASHAScheduler(**spec)
    except TypeError as err:
        raise UsageError(f"tune_config.scheduler: {err}") from None


def _tune_config(exp: Experiment) -> tuple[tune.TuneConfig, str, str]:
    extra = dict(exp.tune_config)
    metric = extra.pop("metric", DEFAULT_METRIC)
    mode = extra.pop("mode", "max")
    scheduler = _scheduler(extra.pop("scheduler", None))
    try:
        config = tune.TuneConfig(
            num_samples=exp.num_samples, metric=metric, mode=mode, scheduler=scheduler, **extra
        )
    except TypeError as err:
        raise UsageError(f"tune_config: {err}") from None
    return config, metric, mode


def _run_config(exp: Experiment, storage: Path) -> tune.RunConfig:
    checkpoint = {"checkpoint_frequency": 10, "checkpoint_at_end": True, **exp.checkpoint_config}
    try:
        checkpoint_config = tune.CheckpointConfig(**checkpoint)
    except TypeError as err:
        raise UsageError(f"checkpoint_config: {err}") from None
    return tune.RunConfig(
        name=exp.name,
        storage_path=str(storage),
        stop=exp.stop or None,
        checkpoint_config=checkpoint_config,
        failure_config=tune.FailureConfig(max_failures=int(os.environ.get("RLLIB_TRL_MAX_FAILURES", "0"))),
        callbacks=[ProgressTable(exp.stop, searched=_searched_keys(exp.config))],
        verbose=0,
    )


def init_ray(address: str | None) -> None:
    """Connect to ``address``, to the cluster of ``ray job submit`` (RAY_ADDRESS), or
    start a local instance."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()  # inside `ray job submit`: the job's runtime_env stays as submitted
    else:
        ray.init(runtime_env=RUNTIME_ENV)


def last_reported(result, metric: str) -> tuple[float, int] | None:
    """A trial's last finite ``metric`` and the env steps it was reported at, or None.

    RLlib leaves the episode return NaN in iterations where no episode ended (HalfCheetah:
    three iterations in four), so the trial's very last result is not enough."""
    frame = result.metrics_dataframe
    if frame is None or metric not in frame:
        return None
    values = pd.to_numeric(frame[metric], errors="coerce")
    finite = frame[np.isfinite(values.to_numpy(dtype=float))]
    if finite.empty:
        return None
    steps = finite.iloc[-1].get(ENV_STEPS, 0)
    return float(pd.to_numeric(finite.iloc[-1][metric])), int(steps if pd.notna(steps) else 0)


def _report(results, exp: Experiment, storage: Path, metric: str, mode: str) -> int:
    path = storage / exp.name
    print(f"\nResults, checkpoints and TensorBoard logs: {path}")
    print(f"  tensorboard --logdir {path}")
    failed = [r for r in results if r.error is not None]
    reported = [(r, last) for r in results if (last := last_reported(r, metric)) is not None]
    if reported:
        pick = max if mode == "max" else min
        best, (value, steps) = pick(reported, key=lambda item: item[1][0])
        checkpoint = best.checkpoint.path if best.checkpoint else "none"
        print(f"Best {metric}: {value:.1f} at {steps} env steps ({best.path})")
        print(f"Latest checkpoint of that trial: {checkpoint}")
    else:
        print(
            f"No trial reported {metric}: no episode ended yet, or tune_config.metric is not "
            f"a key of RLlib's results (the default is {DEFAULT_METRIC})"
        )
    if failed:
        print(
            f"{len(failed)} of {len(results)} trial(s) failed; see error.txt in: "
            + ", ".join(r.path for r in failed)
        )
        return 1
    return 0


def run_experiment(exp: Experiment, *, address: str | None, resume: bool) -> int:
    """Validate, run (or resume) through Tune, print where results are. Returns an exit code."""
    algo_cls = validate_experiment(exp)
    storage = Path(exp.storage_path or DEFAULT_STORAGE).expanduser().resolve()
    tune_config, metric, mode = _tune_config(exp)
    run_config = _run_config(exp, storage)
    experiment_dir = storage / exp.name
    if resume and not tune.Tuner.can_restore(str(experiment_dir)):
        raise UsageError(f"--resume: no experiment to resume at {experiment_dir}")
    init_ray(address)
    if resume:
        tuner = tune.Tuner.restore(str(experiment_dir), trainable=algo_cls, resume_errored=True)
    else:
        tuner = tune.Tuner(
            algo_cls,
            param_space=resolve_samplers(exp.config),
            tune_config=tune_config,
            run_config=run_config,
        )
    results = tuner.fit()
    return _report(results, exp, storage, metric, mode)
