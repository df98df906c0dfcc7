"""Register "TRPL" with Tune without importing Ray from ``import rllib_trl``.

Where Ray Tune or RLlib is already imported, ``rllib_trl.trpl`` (which registers on import)
is imported at once. Otherwise a meta-path finder watches ``ray.tune``, ``ray.rllib`` and this
package's own modules: once Tune or RLlib has loaded, it imports ``rllib_trl.trpl`` as
soon as none of the watched modules is still executing (``ray.rllib`` loads ``ray.tune``
half-way through itself, and a module of this package may be what imported Ray; importing
the algorithm in the middle of either would be circular). So ``import rllib_trl`` followed
by ``tune.Tuner("TRPL")`` works, while ``import rllib_trl.projections`` leaves Ray out.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

WATCHED = ("ray.tune", "ray.rllib")


def rllib_installed() -> bool:
    """True where Ray and RLlib can be imported (found without importing Ray: the
    ``find_spec`` of a submodule would import its package)."""
    try:
        spec = find_spec("ray")
    except (ImportError, ValueError):  # e.g. sys.modules["ray"] = None
        return False
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    has_rllib = any((Path(location) / "rllib" / "__init__.py").is_file() for location in locations)
    return has_rllib and find_spec("gymnasium") is not None  # the Ray wheel ships rllib/ always


def _register() -> None:
    import rllib_trl.trpl  # noqa: F401  (registers "TRPL")


def _register_or_warn() -> None:
    """:func:`_register` from inside someone else's import: a failure must not fail that
    import (e.g. ``import ray.tune`` where RLlib's dependencies are missing)."""
    try:
        _register()
    except Exception as err:  # noqa: BLE001
        logging.getLogger(__name__).warning(
            "rllib_trl: 'TRPL' is not registered with Tune (%s: %s); import rllib_trl.trpl to see why",
            type(err).__name__,
            err,
        )


class _RegisterAfterLoad(importlib.abc.MetaPathFinder):
    """Runs :func:`_register` once Tune or RLlib has loaded and no watched module is
    still executing."""

    def __init__(self) -> None:
        self.executing: list[str] = []  # watched modules whose code is running
        self.looking_up: set[str] = set()
        self.pending = False  # Tune or RLlib has loaded: register when nothing executes

    @staticmethod
    def watches(fullname: str) -> bool:
        return fullname in WATCHED or fullname.startswith("rllib_trl.")

    def find_spec(self, fullname: str, path=None, target: ModuleType | None = None):
        if not self.watches(fullname) or fullname in self.looking_up:
            return None
        self.looking_up.add(fullname)  # the lookup below must not come back here
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.looking_up.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            self.executing.append(fullname)
            try:
                run(module)
                self.pending = self.pending or fullname in WATCHED
            finally:  # also when the module raised: a waiting registration is not lost
                self.executing.remove(fullname)
                if self.pending and not self.executing and self in sys.meta_path:
                    sys.meta_path.remove(self)
                    _register_or_warn()

        spec.loader.exec_module = exec_then_register
        return spec


def register_when_ray_loads() -> None:
    """Register now if Ray is imported, else once Ray Tune or RLlib is (see module doc)."""
    if not rllib_installed():
        return
    # Tune or RLlib loaded: register now. Ray's core alone is not enough, and must not be:
    # a Ray worker imports this package in its setup hook, before Ray sets the worker's
    # OMP_NUM_THREADS, and importing the algorithm (and torch) then would fix torch's
    # thread count too early (see worker_setup.py).
    if any(sys.modules.get(name) is not None for name in WATCHED):
        _register()
        return
    if not any(isinstance(finder, _RegisterAfterLoad) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterLoad())
