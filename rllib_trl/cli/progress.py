"""The console of ``rllib-trl train``: a compact row per trial every few seconds.

Tune's own status block repeats the best trial's whole config (thousands of characters)
every 30 s; this table shows what a user watches: iteration, env steps, the latest
finite return and evaluation return (RLlib reports NaN in iterations where no episode
ended), the largest per-state KL, throughput, and the time left against the stop
condition.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ray import tune
from ray.tune.utils import flatten_dict

from rllib_trl.cli.result_keys import ENV_STEPS, EVAL_RETURN, ITERATION, RETURN
from rllib_trl.torch.trpl_loss import KL_MAX_KEY as KL_MAX  # per module under learners/<module>/

HEADER = (
    f"{'trial':<12} {'iter':>5} {'env steps':>10} {'return':>9} {'eval return':>11} "
    f"{'kl max':>8} {'steps/s':>8}  progress"
)


@dataclass
class TrialProgress:
    """What the table knows of one trial (latest finite values, throughput window)."""

    iteration: int = 0
    env_steps: int = 0
    time_s: float = 0.0
    latest: dict[str, float] = field(default_factory=dict)
    window: tuple[int, float] = (0, 0.0)  # env steps and time at the last printed row
    rate: float | None = None
    printed_at: float = -math.inf

    def update(self, result: dict[str, Any]) -> None:
        flat = flatten_dict(result, delimiter="/")
        self.iteration = int(flat.get(ITERATION, self.iteration))
        self.env_steps = int(flat.get(ENV_STEPS, self.env_steps) or 0)
        self.time_s = float(flat.get("time_total_s", self.time_s) or 0.0)
        kls = [v for k, v in flat.items() if k.startswith("learners/") and k.endswith("/" + KL_MAX)]
        kl_max = max(kls, default=None)
        values = {RETURN: flat.get(RETURN), EVAL_RETURN: flat.get(EVAL_RETURN), KL_MAX: kl_max}
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.latest[key] = float(value)

    def close_window(self) -> None:
        """Throughput since the last printed row (a window of a few iterations)."""
        steps, t = self.window
        if self.time_s > t:
            self.rate = (self.env_steps - steps) / (self.time_s - t)
        self.window = (self.env_steps, self.time_s)


def time_left(stop: dict[str, Any], trial: TrialProgress) -> tuple[float, float] | None:
    """(fraction done, seconds left) against the stop criteria that advance with time:
    env steps, iterations, seconds. The first criterion to be met decides. None if the
    stop condition has none of them (e.g. only a return threshold)."""
    estimates = []
    target = stop.get(ENV_STEPS)
    if target and trial.rate:
        estimates.append((trial.env_steps / target, (target - trial.env_steps) / trial.rate))
    target = stop.get(ITERATION)
    if target and trial.iteration:
        per_iteration = trial.time_s / trial.iteration
        estimates.append((trial.iteration / target, (target - trial.iteration) * per_iteration))
    target = stop.get("time_total_s")
    if target:
        estimates.append((trial.time_s / target, target - trial.time_s))
    if not estimates:
        return None
    done, left = min(estimates, key=lambda e: e[1])
    return min(done, 1.0), max(left, 0.0)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_row(name: str, trial: TrialProgress, stop: dict[str, Any], status: str = "") -> str:
    """One table row; ``status`` replaces the time left (e.g. "done")."""
    if not status:
        estimate = time_left(stop, trial)
        status = "-" if estimate is None else f"{estimate[0]:4.0%}, {_duration(estimate[1])} left"
    latest = trial.latest
    return (
        f"{name:<12} {trial.iteration:>5} {trial.env_steps:>10} {_number(latest.get(RETURN), '.1f'):>9} "
        f"{_number(latest.get(EVAL_RETURN), '.1f'):>11} {_number(latest.get(KL_MAX), '.4f'):>8} "
        f"{_number(trial.rate, '.0f'):>8}  {status}"
    )


class ProgressTable(tune.Callback):
    """Prints a trial's row at most every ``interval_s`` seconds, and when it ends."""

    def __init__(
        self,
        stop: dict[str, Any],
        searched: list[str] = (),
        interval_s: float = 10.0,
        print_fn: Callable[[str], None] | None = None,
    ):
        self.stop = dict(stop)
        self.searched = list(searched)
        self.interval_s = interval_s
        # None: the built-in print, looked up at each call. Tune pickles its callbacks
        # with the experiment state, and a stored `print` can fail to pickle once Ray has
        # wrapped the built-in ("not the same object as builtins.print").
        self.print_fn = print_fn
        self.trials: dict[str, TrialProgress] = {}
        self.rows_since_header: int | None = None

    def _emit(self, line: str) -> None:
        (self.print_fn or print)(line)

    def _print(self, trial, progress: TrialProgress, status: str = "") -> None:
        if self.rows_since_header is None or self.rows_since_header >= 20:
            self._emit(HEADER)
            self.rows_since_header = 0
        progress.close_window()
        row = format_row(trial.trial_id, progress, self.stop, status)
        params = " ".join(f"{k}={trial.config.get(k)}" for k in self.searched)
        self._emit(f"{row}  {params}".rstrip())
        self.rows_since_header += 1
        progress.printed_at = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        progress = self.trials.setdefault(trial.trial_id, TrialProgress())
        progress.update(result)
        if time.monotonic() - progress.printed_at >= self.interval_s:
            self._print(trial, progress)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._print(trial, self.trials.setdefault(trial.trial_id, TrialProgress()), "done")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._print(trial, self.trials.setdefault(trial.trial_id, TrialProgress()), "failed")
