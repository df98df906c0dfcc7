"""The console table: latest finite values, throughput and time left."""

from __future__ import annotations

import math

from rllib_trl.cli.progress import EVAL_RETURN, KL_MAX, RETURN, TrialProgress, format_row, time_left


def _result(it: int, steps: int, t: float, ret: float, kl: float = 0.02) -> dict:
    return {
        "training_iteration": it,
        "num_env_steps_sampled_lifetime": steps,
        "time_total_s": t,
        "env_runners": {"episode_return_mean": ret},
        "evaluation": {"env_runners": {"episode_return_mean": math.nan}},
        "learners": {"p0": {"kl_max": kl}, "p1": {"kl_max": kl / 2}, "__all_modules__": {}},
    }


def test_latest_finite_values_survive_nan_iterations():
    trial = TrialProgress()
    trial.update(_result(1, 2048, 2.0, 100.0))
    trial.update(_result(2, 4096, 4.0, math.nan, kl=0.03))
    assert trial.latest[RETURN] == 100.0  # HalfCheetah: NaN while no episode ended
    assert EVAL_RETURN not in trial.latest
    assert trial.latest[KL_MAX] == 0.03  # the largest over modules
    assert "100.0" in format_row("t0", trial, {})


def test_time_left_against_each_stop_kind():
    trial = TrialProgress()
    trial.update(_result(1, 1000, 1.0, 0.0))
    trial.close_window()
    trial.update(_result(2, 2000, 2.0, 0.0))
    trial.close_window()
    assert trial.rate == 1000.0
    done, left = time_left({"num_env_steps_sampled_lifetime": 10_000}, trial)
    assert (done, left) == (0.2, 8.0)
    assert time_left({"training_iteration": 4}, trial) == (0.5, 2.0)
    assert time_left({"time_total_s": 3.0}, trial) == (2 / 3, 1.0)
    # the first criterion to be met decides
    assert time_left({"time_total_s": 100.0, "training_iteration": 4}, trial) == (0.5, 2.0)
    assert time_left({"env_runners/episode_return_mean": 3000}, trial) is None
    assert "20%, 0m08s left" in format_row("t0", trial, {"num_env_steps_sampled_lifetime": 10_000})
