"""``rllib-trl plot``: return vs env steps (mean and 95% interval over trials) and the
policy's real step per iteration against the bounds (mean and min–max range over
trials; ``torch/policy_step.py``), from Tune result folders, as one PNG.

Each RESULTS_DIR argument is one curve: every trial below it (a folder holding a
``result.json``) counts as one seed. ``result.json`` is read rather than ``progress.csv``,
whose columns are fixed by the first row (evaluation results appear later).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ray.rllib.core.learner.learner import ENTROPY_KEY  # noqa: E402
from tqdm import tqdm  # noqa: E402

from rllib_trl.cli.errors import UsageError  # noqa: E402
from rllib_trl.cli.result_keys import ENV_STEPS, EVAL_RETURN, ITERATION, RETURN  # noqa: E402
from rllib_trl.projections import get_trust_region  # noqa: E402
from rllib_trl.torch.policy_step import (  # noqa: E402
    POLICY_STEP_COV_PART_MAX_KEY,
    POLICY_STEP_KL_MAX_KEY,
    POLICY_STEP_MEAN_PART_MAX_KEY,
    POLICY_STEP_OUTSIDE_FRAC_KEY,
    step_settings,
)

PANELS = [
    ("return", None, "episode return"),
    (POLICY_STEP_KL_MAX_KEY, "kl", "real step KL(π_next ‖ π_old), max over states"),
    (POLICY_STEP_MEAN_PART_MAX_KEY, "mean_bound", "real step, mean part, max"),
    (POLICY_STEP_COV_PART_MAX_KEY, "cov_bound", "real step, cov part, max"),
    (ENTROPY_KEY, None, "entropy of π̃"),
    (POLICY_STEP_OUTSIDE_FRAC_KEY, None, "real step, fraction of states outside the bounds"),
]
# two-sided 95% Student-t quantiles, df = 1..10 (normal beyond)
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def find_trials(root: Path) -> list[Path]:
    if (root / "result.json").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("result.json"))


def load_trial(trial: Path) -> tuple[pd.DataFrame, dict]:
    """One row per training iteration, nested keys flattened with "/"."""
    rows = []
    for line in (trial / "result.json").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut off by an interrupted run
    frame = pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()
    if ITERATION in frame:
        # A resumed trial runs again the iterations after its last checkpoint and appends
        # them: keep each iteration's last row (the one the run continued from).
        frame = frame.drop_duplicates(ITERATION, keep="last").reset_index(drop=True)
    if EVAL_RETURN in frame:
        # RLlib repeats the last evaluation in the next iteration's result: keep the first.
        repeated = frame[EVAL_RETURN].eq(frame[EVAL_RETURN].shift())
        frame.loc[repeated, EVAL_RETURN] = float("nan")
    params_file = trial / "params.json"
    params = json.loads(params_file.read_text()) if params_file.is_file() else {}
    return frame, params


def interval(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% interval over rows (NaN-aware)."""
    mean = np.nanmean(curves, axis=0)
    n = np.sum(~np.isnan(curves), axis=0)
    std = np.nanstd(curves, axis=0, ddof=1) if curves.shape[0] > 1 else np.zeros_like(mean)
    t = np.array([T95[k - 1] if 1 <= k <= len(T95) else 1.96 for k in np.maximum(n - 1, 1)])
    half = np.where(n > 1, t * std / np.sqrt(np.maximum(n, 1)), 0.0)
    return mean, mean - half, mean + half


def _series(frame: pd.DataFrame, column: str) -> pd.Series | None:
    """``column`` against env steps: the return, or a learner metric (with several
    modules, the largest over modules for maxima and fractions, else their mean)."""
    if ENV_STEPS not in frame:
        return None
    if column == "return":
        name = EVAL_RETURN if EVAL_RETURN in frame and frame[EVAL_RETURN].notna().any() else RETURN
        values = frame[name] if name in frame else None
    else:
        per_module = frame[[c for c in frame if _is_module_metric(c, column)]]
        if per_module.empty:
            return None
        worst = column.endswith("_max") or column.endswith("_frac")
        values = per_module.max(axis=1) if worst else per_module.mean(axis=1)
    if values is None:
        return None
    data = pd.DataFrame({"steps": frame[ENV_STEPS], "value": values}).dropna()
    return pd.Series(data["value"].to_numpy(dtype=float), index=data["steps"].to_numpy(dtype=float))


def _is_module_metric(name: str, metric: str) -> bool:
    """``learners/<module>/<metric>`` for a module (not RLlib's ``__all_modules__``)."""
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == "learners" and parts[2] == metric and parts[1] != "__all_modules__"


def plot_command(results: list[str], output: str) -> int:
    groups = []
    for item in results:
        root = Path(item).expanduser()
        if not root.exists():
            raise UsageError(f"results folder not found: {item}")
        trials = find_trials(root)
        if not trials:
            raise UsageError(f"no Tune trial (result.json) below {item}")
        groups.append((root.name, trials))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    all_trials = [(label, t) for label, trials in groups for t in trials]
    loaded = {t: load_trial(t) for _, t in tqdm(all_trials, desc="runs", disable=len(all_trials) < 5)}
    for ax, (column, bound, title) in zip(axes.flat, PANELS, strict=True):
        for i, (label, trials) in enumerate(groups):
            series = [s for s in (_series(loaded[t][0], column) for t in trials) if s is not None and len(s)]
            if not series:
                continue
            grid = np.unique(np.concatenate([s.index.to_numpy() for s in series]))
            curves = np.stack(
                [np.interp(grid, s.index, s.to_numpy(), left=np.nan, right=np.nan) for s in series]
            )
            if column == "return":
                mean, low, high = interval(curves)  # mean and 95% interval over runs
            else:  # constraints: show the whole range over runs, to compare with the bound
                mean, low, high = np.nanmean(curves, 0), np.nanmin(curves, 0), np.nanmax(curves, 0)
            color = f"C{i}"
            ax.plot(grid, mean, color=color, label=f"{label} (n={len(series)})")
            ax.fill_between(grid, low, high, color=color, alpha=0.2)
            params = loaded[trials[0]][1]
            value = _bound(params, bound)
            if value is not None:
                ax.axhline(value, color=color, linestyle="--", linewidth=1)
        band = "95% CI" if column == "return" else "min–max"
        ax.set_title(title + (" (dashed: bound)" if bound else "") + f", band: {band}", fontsize=9)
        ax.set_xlabel("env steps")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    print(f"wrote {output} ({len(all_trials)} run(s))")
    return 0


def _bound(params: dict, bound: str | None) -> float | None:
    """The bound a panel's metric is compared with (``step_settings``: TRPL's own, or the
    PPO baselines' reference bounds). The KL panel has one only where the bounds are
    stated in KL (the projection's registry entry says)."""
    if bound is None:
        return None
    settings = step_settings(params)
    if bound == "kl":
        try:
            region = get_trust_region(settings["projection"])
        except ValueError:  # a projection registered in another process only
            return None
        if region.measure != "kl":
            return None
        return float(settings["mean_bound"]) + float(settings["cov_bound"])
    value = settings.get(bound)
    return float(value) if isinstance(value, (int, float)) else None
