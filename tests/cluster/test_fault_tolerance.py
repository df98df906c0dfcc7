"""An EnvRunner killed mid-training is replaced and training goes on."""

from __future__ import annotations

import os
import signal
import time

from tests.algorithm.helpers import small_config


def _runner_pids(algo) -> list[int]:
    return list(algo.env_runner_group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False))


def test_killed_env_runner_is_replaced(ray_local):
    config = small_config().fault_tolerance(
        restart_failed_env_runners=True, delay_between_env_runner_restarts_s=0.0
    )
    algo = config.build_algo()
    try:
        algo.train()
        (pid,) = _runner_pids(algo)
        os.kill(pid, signal.SIGKILL)  # the EnvRunner's process dies mid-run
        steps = [algo.train()["num_env_steps_sampled_lifetime"]]  # finds the runner dead
        deadline = time.monotonic() + 180  # the restart's pace depends on the machine's load
        while algo.env_runner_group.num_healthy_remote_workers() < 1 and time.monotonic() < deadline:
            steps.append(algo.train()["num_env_steps_sampled_lifetime"])
        for _ in range(2):  # and on after it
            result = algo.train()
            steps.append(result["num_env_steps_sampled_lifetime"])
        assert algo.env_runner_group.num_healthy_remote_workers() == 1
        (new_pid,) = _runner_pids(algo)
        assert new_pid != pid
        assert steps[-1] > steps[0]  # sampling continued on the replacement
        assert result["env_runners"]["num_env_steps_sampled"] > 0
    finally:
        algo.stop()
