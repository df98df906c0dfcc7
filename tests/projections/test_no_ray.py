"""The projection package imports and runs where Ray is not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys

import pytest
sys.modules["ray"] = None  # as if Ray were not installed: `import ray` fails
import torch
from rllib_trl.projections import kl_projection
m, s = kl_projection(torch.ones(2, 3), torch.ones(2, 3) * 3, torch.zeros(2, 3), torch.ones(2, 3),
                     mean_bound=0.1, cov_bound=0.1)
assert sys.modules["ray"] is None and not any(m.startswith("ray.") for m in sys.modules)
import rllib_trl
assert not hasattr(rllib_trl, "TRPL")
print("ok", float(m.sum()))
"""


def test_projections_import_without_ray():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def _run(script: str) -> str:
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_projections_leave_an_installed_ray_unimported():
    script = (
        "import sys, rllib_trl.projections; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    assert _run(script).strip() == "[]"


@pytest.mark.parametrize(
    "imports",
    [
        "import rllib_trl; from ray import tune",  # Ray after rllib_trl: registered on load
        "import rllib_trl; import ray.rllib",  # RLlib loads Tune half-way through itself
        "import ray; import rllib_trl; from ray import tune",  # Ray first: registered at once
        # a module of this package imports RLlib: registered once that module has finished
        "from rllib_trl.env_check import make_env",
        "from rllib_trl.torch.policy_step import PolicyStepPPOTorchLearner",
    ],
)
def test_import_rllib_trl_registers_trpl_with_tune(imports):
    # registered by the import itself: get_trainable_cls would otherwise import RLlib,
    # which registers through the hook and hides a broken ray.tune path
    script = (
        f"{imports}; from ray.tune.registry import TRAINABLE_CLASS, _global_registry, get_trainable_cls;"
        " print(_global_registry.contains(TRAINABLE_CLASS, 'TRPL'), get_trainable_cls('TRPL'))"
    )
    assert _run(script).strip() == "True <class 'rllib_trl.trpl.TRPL'>"


def test_a_failing_registration_does_not_fail_the_import_of_tune():
    script = (
        "import sys, rllib_trl.projections; sys.modules['rllib_trl.trpl'] = None;"
        " import ray.tune; print('tune imported')"
    )
    assert _run(script).strip().endswith("tune imported")
