"""One local Ray instance per test module, sized to this machine."""

from __future__ import annotations

import pytest
import ray
import torch

from rllib_trl.mujoco_log import route_mujoco_warnings
from rllib_trl.worker_setup import RUNTIME_ENV

# MuJoCo's warnings go to logging, not to MUJOCO_LOG.TXT in the working tree: here, and in
# the workers of the Ray instances the tests start (below).
route_mujoco_warnings()
WORKER_SETUP = RUNTIME_ENV


@pytest.fixture(scope="module")
def ray_local():
    torch.set_num_threads(1)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env=WORKER_SETUP,
    )
    yield
    ray.shutdown()
