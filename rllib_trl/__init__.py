"""rllib-trl: Differentiable Trust Region Layers (Otto et al., ICLR 2021) for Ray RLlib.

``import rllib_trl.projections`` needs only PyTorch and imports no Ray. Importing
``rllib_trl`` registers ``"TRPL"`` with Tune: at once where Ray is already imported,
else as soon as Ray Tune or RLlib is (``_registration.py``); ``rllib_trl.TRPL`` and
``rllib_trl.TRPLConfig`` import the algorithm on first use.
"""

from __future__ import annotations

from typing import Any

from rllib_trl._registration import register_when_ray_loads, rllib_installed

__version__ = "0.1.0"
ALGORITHM_NAMES = ("TRPL", "TRPLConfig")
__all__ = list(ALGORITHM_NAMES) if rllib_installed() else []

register_when_ray_loads()


def __getattr__(name: str) -> Any:
    if name in ALGORITHM_NAMES and rllib_installed():
        from rllib_trl import trpl

        value = getattr(trpl, name)
        globals()[name] = value  # found directly from now on
        return value
    raise AttributeError(f"module 'rllib_trl' has no attribute {name!r}")
