"""Tune search spaces written in YAML.

``{"grid_search": [...]}`` is Tune's own; the others are small dicts turned into Tune's
sampling functions: ``{"choice": [..]}``, ``{"uniform": [lo, hi]}``,
``{"loguniform": [lo, hi]}``, ``{"randint": [lo, hi]}``, ``{"quniform": [lo, hi, q]}``.
"""

from __future__ import annotations

from typing import Any

from ray import tune

SAMPLERS = {
    "choice": lambda args: tune.choice(list(args)),
    "uniform": lambda args: tune.uniform(*args),
    "loguniform": lambda args: tune.loguniform(*args),
    "randint": lambda args: tune.randint(*args),
    "quniform": lambda args: tune.quniform(*args),
}


def is_sampler(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SAMPLERS


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def is_search_space(value: Any) -> bool:
    """A grid or a sampler: a value Tune varies across trials."""
    return is_sampler(value) or is_grid(value)


def resolve_samplers(value: Any) -> Any:
    """Replace sampler dicts by Tune domains, recursively."""
    if is_sampler(value):
        ((name, args),) = value.items()
        return SAMPLERS[name](args)
    if isinstance(value, dict):
        return {k: resolve_samplers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_samplers(v) for v in value]
    return value


def representatives(value: Any) -> list[Any]:
    """Concrete configs covering a search space, for validation before any trial runs:
    every grid value, and each sampler's end points."""
    if is_grid(value):
        return [r for v in value["grid_search"] for r in representatives(v)]
    if is_sampler(value):
        ((name, args),) = value.items()
        return list(args) if name == "choice" else [args[0], args[1]]
    if isinstance(value, dict):
        variants: list[dict] = [{}]
        for key, sub in value.items():
            options = representatives(sub)
            if len(variants) * len(options) > 64:
                options = options[:1]
            variants = [{**v, key: o} for v in variants for o in options]
        return variants
    return [value]
