"""Import the scripts in ``benchmarks/learning/`` (run as scripts, they import their
neighbours, such as ``aggregate.py``, by plain name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LEARNING = Path(__file__).resolve().parents[1] / "benchmarks" / "learning"


def load_script(name: str) -> ModuleType:
    """``benchmarks/learning/<name>.py`` as a module, its folder on ``sys.path`` while it
    is imported."""
    sys.path.insert(0, str(LEARNING))
    try:
        spec = importlib.util.spec_from_file_location(name, LEARNING / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(LEARNING))
    return module
