"""The projection package imports and runs where Ray is not installed."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
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
