"""MuJoCo's warnings through Python's ``logging`` instead of a ``MUJOCO_LOG.TXT`` file.

MuJoCo's default warning handler prints and appends to ``MUJOCO_LOG.TXT`` in the current
directory (HalfCheetah-v5's model compiles with a deprecation warning; unstable sims warn
"Nan, Inf or huge value in QACC ..."), which litters the working tree of whoever trains.
:func:`route_mujoco_warnings` replaces that handler in one process: ``env_check.make_env``
and the CLI call it in the driver, and the CLI installs it in every Ray worker of its local
instance (``worker_process_setup_hook``), as the tests do.
"""

from __future__ import annotations

import logging
from importlib.util import find_spec

logger = logging.getLogger("mujoco")


def _warn(message: str) -> None:
    logger.warning("MuJoCo: %s", message)


_routed = False


def route_mujoco_warnings() -> bool:
    """Send MuJoCo's warnings to the ``mujoco`` logger (once per process); False where
    MuJoCo is not installed."""
    global _routed
    if _routed:
        return True
    if find_spec("mujoco") is None:
        return False
    import mujoco

    mujoco.set_mju_user_warning(_warn)
    _routed = True
    return True
