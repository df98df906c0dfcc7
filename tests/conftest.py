"""One local Ray instance per test module, sized to this machine."""

from __future__ import annotations

import pytest
import ray
import torch


@pytest.fixture(scope="module")
def ray_local():
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
