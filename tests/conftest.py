"""One local Ray instance for the test session, sized to this machine."""

from __future__ import annotations

import time

import pytest
import ray
import torch

from rllib_trl.mujoco_log import route_mujoco_warnings
from rllib_trl.worker_setup import RUNTIME_ENV

# MuJoCo's warnings go to logging, not to MUJOCO_LOG.TXT in the working tree: here, and in
# the workers of the Ray instances the tests start (below).
route_mujoco_warnings()
WORKER_SETUP = RUNTIME_ENV


def _start_ray() -> None:
    ray.init(
        num_cpus=2,
        num_gpus=torch.cuda.device_count(),  # 0 here; the CUDA tests' learners need one
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env=WORKER_SETUP,
    )


def _all_cpus_free(wait_s: float = 10.0) -> bool:
    """Whether every CPU of the instance is free again (stopped actors release theirs
    asynchronously, so wait a little)."""
    deadline = time.monotonic() + wait_s
    while True:
        if ray.available_resources().get("CPU", 0.0) >= ray.cluster_resources().get("CPU", 0.0):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@pytest.fixture(scope="session")
def _ray_session():
    """Started once (about 10 s each time here, 12 modules use it), shut down at the end."""
    torch.set_num_threads(1)
    _start_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_local(_ray_session):
    """The session's Ray instance for a module. If the module left something holding
    CPUs (an Algorithm not stopped), the instance is restarted, so the next module never
    waits on resources a previous one kept."""
    if not ray.is_initialized():  # a restart failed, or a test shut it down
        _start_ray()
    yield
    if ray.is_initialized() and _all_cpus_free():
        return
    ray.shutdown()
    _start_ray()
