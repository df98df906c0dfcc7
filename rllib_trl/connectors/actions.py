"""RLlib's ``NormalizeAndClipActions`` with one vectorised call per env step.

RLlib 2.60 unsquashes (or clips) the action of each sub-env separately, after a deep
copy of the whole actions column (about a tenth of an EnvRunner's time per env step on
Hopper here). For single-agent Box actions this subclass stacks the sub-envs' actions,
applies the same ``unsquash_action`` / ``clip_action`` once (the same elementwise
operations, so the same numbers), and writes them back per sub-env. Anything else
takes RLlib's path. ``use_vectorised_actions`` swaps it into a built pipeline.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.module_to_env.normalize_and_clip_actions import NormalizeAndClipActions
from ray.rllib.core.columns import Columns
from ray.rllib.utils.annotations import override
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action


def unsquash_stacked(actions: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
    """RLlib's ``unsquash_action`` of stacked actions ``(n, *space.shape)``: its Box
    formula, the same operations in the same order, without its ``tree`` walk."""
    bounded = np.all(space.bounded_below) and np.all(space.bounded_above)
    if bounded and space.dtype in (np.float32, np.float64):
        return np.clip(space.low + (actions + 1.0) * (space.high - space.low) / 2.0, space.low, space.high)
    return unsquash_action(actions, space)


class VectorisedNormalizeAndClipActions(NormalizeAndClipActions):
    """Same options, state and output as ``NormalizeAndClipActions``."""

    @override(NormalizeAndClipActions)
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, **kwargs) -> Any:
        space = self._action_space_struct
        actions = batch.get(Columns.ACTIONS) if batch is not None else None
        single_agent_box = (
            isinstance(space, gym.spaces.Box)
            and isinstance(actions, dict)
            and len(actions) > 0
            and all(len(key) == 1 and isinstance(items, list) for key, items in actions.items())
        )
        if not (self.normalize_actions or self.clip_actions) or not single_agent_box:
            return super().__call__(
                rl_module=rl_module,
                batch=batch,
                episodes=episodes,
                explore=explore,
                shared_data=shared_data,
                **kwargs,
            )
        stacked = np.stack([item for items in actions.values() for item in items])
        stacked = unsquash_stacked(stacked, space) if self.normalize_actions else clip_action(stacked, space)
        rows = iter(stacked)
        batch[Columns.ACTIONS_FOR_ENV] = {key: [next(rows) for _ in items] for key, items in actions.items()}
        return batch


def use_vectorised_actions(pipeline: ConnectorV2) -> ConnectorV2:
    """Turn every ``NormalizeAndClipActions`` in ``pipeline`` into the vectorised one
    (same attributes; only ``__call__`` differs). Returns ``pipeline``."""
    for connector in getattr(pipeline, "connectors", []):
        if type(connector) is NormalizeAndClipActions:
            connector.__class__ = VectorisedNormalizeAndClipActions
    return pipeline
