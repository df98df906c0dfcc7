"""EnvRunner pipelines that run RLlib's default connector pieces as one vectorised pass.

Per env step an EnvRunner calls two connector pipelines. RLlib 2.60 runs every piece
through a generic loop: a metrics timer per piece, a ``tree`` walk per column and
per-sub-env lists between the pieces. On Hopper with 4 sub-envs that was about half of
an EnvRunner's time per env step here, more than MuJoCo itself.

For single-agent episodes, a stateless RLModule and the default pieces, these pipelines
compute the same outputs directly:

- :class:`FusedEnvToModulePipeline`: the pieces before RLlib's default tail (this
  project's observation filter and return statistics, or a user's) are called as they
  are; the tail, ``AddObservationsFromEpisodesToBatch``, ``AddTimeDimToBatchAndZeroPad``,
  ``AddStatesFromEpisodesToBatch``, ``BatchIndividualItems`` and ``NumpyToTensor``,
  becomes one stack of the episodes' last observations and one tensor conversion.
- :class:`FusedModuleToEnvPipeline`: ``GetActions`` is called as it is (the same
  distribution calls, so the same random draws); ``TensorToNumpy``,
  ``UnBatchToIndividualItems``, ``RemoveSingleTsTimeRankFromBatch``,
  ``NormalizeAndClipActions`` and ``ListifyDataForVectorEnv`` become one conversion, one
  unsquash (or clip) of the stacked actions and per-sub-env rows.

Anything else (multi-agent episodes, a stateful module, another piece in the default
part, a non-empty batch coming in) takes RLlib's loop. The pipeline timers, the
env-to-module episode-length metrics and the timers of the pieces called as they are
(the head pieces, ``GetActions``) are logged as RLlib logs them; the fused default
pieces have no timers of their own. ``tests/connectors/test_fused.py`` pins both pipelines to
RLlib's on the same episodes and random state.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import (
    AddObservationsFromEpisodesToBatch,
)
from ray.rllib.connectors.common.add_states_from_episodes_to_batch import AddStatesFromEpisodesToBatch
from ray.rllib.connectors.common.add_time_dim_to_batch_and_zero_pad import AddTimeDimToBatchAndZeroPad
from ray.rllib.connectors.common.batch_individual_items import BatchIndividualItems
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.common.tensor_to_numpy import TensorToNumpy
from ray.rllib.connectors.connector_pipeline_v2 import ConnectorPipelineV2
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module.env_to_module_pipeline import EnvToModulePipeline
from ray.rllib.connectors.module_to_env.get_actions import GetActions
from ray.rllib.connectors.module_to_env.listify_data_for_vector_env import ListifyDataForVectorEnv
from ray.rllib.connectors.module_to_env.module_to_env_pipeline import ModuleToEnvPipeline
from ray.rllib.connectors.module_to_env.normalize_and_clip_actions import NormalizeAndClipActions
from ray.rllib.connectors.module_to_env.remove_single_ts_time_rank_from_batch import (
    RemoveSingleTsTimeRankFromBatch,
)
from ray.rllib.connectors.module_to_env.unbatch_to_individual_items import UnBatchToIndividualItems
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    CONNECTOR_PIPELINE_TIMER,
    CONNECTOR_TIMERS,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN,
    ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT,
    TIMERS,
)
from ray.rllib.utils.metrics.utils import to_snake_case
from ray.rllib.utils.spaces.space_utils import clip_action
from ray.rllib.utils.torch_utils import convert_to_torch_tensor

from rllib_trl.connectors.actions import VectorisedNormalizeAndClipActions, unsquash_stacked

# RLlib's default env-to-module tail and module-to-env pipeline (single-agent), in order.
ENV_TO_MODULE_TAIL = (
    AddObservationsFromEpisodesToBatch,
    AddTimeDimToBatchAndZeroPad,
    AddStatesFromEpisodesToBatch,
    BatchIndividualItems,
    NumpyToTensor,
)
MODULE_TO_ENV = (
    GetActions,
    TensorToNumpy,
    UnBatchToIndividualItems,
    RemoveSingleTsTimeRankFromBatch,
    NormalizeAndClipActions,
    ListifyDataForVectorEnv,
)


def is_default(pieces: list[ConnectorV2], default: tuple[type, ...]) -> bool:
    """``pieces`` are RLlib's default ones, in order: those classes exactly (a subclass
    may compute something else), or this project's vectorised ``NormalizeAndClipActions``
    (the same numbers)."""
    return len(pieces) == len(default) and all(
        type(piece) is cls
        or (cls is NormalizeAndClipActions and type(piece) is VectorisedNormalizeAndClipActions)
        for piece, cls in zip(pieces, default, strict=True)
    )


def _single_agent_stateless(*, rl_module, episodes, **_) -> bool:
    """Single-agent episodes and one stateless RLModule (no time rank, no state in or out)."""
    return (
        rl_module is not None
        and not isinstance(rl_module, MultiRLModule)
        and not rl_module.is_stateful()
        and len(episodes) > 0
        and all(type(e) is SingleAgentEpisode for e in episodes)
    )


def to_module_tensor(obs: np.ndarray, to_tensor: NumpyToTensor) -> torch.Tensor:
    """``NumpyToTensor`` of one array (float64 becomes float32, as there)."""
    device = to_tensor._device
    if device is not None and torch.device(device).type != "cpu":
        return convert_to_torch_tensor(obs, pin_memory=to_tensor._pin_memory, device=device)
    tensor = torch.from_numpy(obs)
    if tensor.is_floating_point() and tensor.dtype != torch.float16:
        tensor = tensor.float()
    return tensor


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """``TensorToNumpy`` of one batched tensor (floats to float32, ints to int32, as there)."""
    array = tensor.detach().cpu().numpy()
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, int):
        return array.astype(np.int32)
    return array


class Timed:
    """One of RLlib's pipeline timers, under ``metrics_prefix_key``: the whole pipeline's
    (CONNECTOR_PIPELINE_TIMER), or a piece's (``piece``, keyed by its snake-case class
    name, as ``ConnectorPipelineV2`` keys it); nothing without ``metrics``."""

    def __init__(self, metrics, kwargs: dict[str, Any], piece: ConnectorV2 | None = None):
        self._stats = None
        if metrics:
            key = (CONNECTOR_PIPELINE_TIMER,)
            if piece is not None:
                key = (TIMERS, CONNECTOR_TIMERS, to_snake_case(type(piece).__name__))
            self._stats = metrics.log_time(kwargs.get("metrics_prefix_key", ()) + key)

    def __enter__(self):
        if self._stats is not None:
            self._stats.__enter__()

    def __exit__(self, *exc):
        if self._stats is not None:
            self._stats.__exit__(None, None, None)


class FusedEnvToModulePipeline(EnvToModulePipeline):
    """``EnvToModulePipeline`` with RLlib's default tail computed in one pass."""

    @override(EnvToModulePipeline)
    def __call__(self, **kwargs):
        tail = self.connectors[-len(ENV_TO_MODULE_TAIL) :]
        if not (is_default(tail, ENV_TO_MODULE_TAIL) and _single_agent_stateless(**kwargs)):
            return super().__call__(**kwargs)
        return self._fused(**kwargs)

    def _fused(
        self,
        *,
        rl_module,
        episodes: list,
        explore: bool,
        batch: dict[str, Any] | None = None,
        shared_data: dict | None = None,
        metrics=None,
        **kwargs,
    ) -> dict[str, Any]:
        """The pieces before the tail as they are (each timed, as RLlib times it), then the
        tail's result, ``{obs: (num_envs, *obs_shape) tensor}``, in one stack."""
        head, tail = self.connectors[: -len(ENV_TO_MODULE_TAIL)], self.connectors[-len(ENV_TO_MODULE_TAIL) :]
        shared_data = shared_data if shared_data is not None else {}
        batch = batch if batch is not None else {}
        if metrics:
            metrics.log_value(ENV_TO_MODULE_SUM_EPISODES_LENGTH_IN, sum(map(len, episodes)))
        with Timed(metrics, kwargs):
            call = dict(rl_module=rl_module, episodes=episodes, explore=explore, shared_data=shared_data)
            for connector in head:
                with Timed(metrics, kwargs, connector):
                    batch = connector(**call, batch=batch, metrics=metrics, data=batch, **kwargs)
            if batch:  # a piece before the tail filled the batch: RLlib's tail handles that
                for connector in tail:
                    batch = connector(**call, batch=batch, metrics=metrics, data=batch, **kwargs)
            else:
                to_tensor: NumpyToTensor = tail[-1]
                obs = np.stack([episode.get_observations(-1) for episode in episodes])
                shared_data["memorized_map_structure"] = [episode.id_ for episode in episodes]
                batch = {Columns.OBS: to_module_tensor(obs, to_tensor)}
        if metrics:
            metrics.log_value(ENV_TO_MODULE_SUM_EPISODES_LENGTH_OUT, sum(map(len, episodes)))
        return batch


class FusedModuleToEnvPipeline(ModuleToEnvPipeline):
    """``ModuleToEnvPipeline`` with RLlib's default pieces computed in one pass."""

    @override(ConnectorPipelineV2)
    def __call__(self, **kwargs):
        pieces = self.connectors
        fusable = (
            is_default(pieces, MODULE_TO_ENV)
            and _single_agent_stateless(**kwargs)
            and not (kwargs.get("shared_data") or {}).get("_added_single_ts_time_rank")
            and isinstance(pieces[4]._action_space_struct, gym.spaces.Box)
            and all(
                isinstance(value, torch.Tensor) and value.ndim > 0 and len(value) == len(kwargs["episodes"])
                for value in kwargs["batch"].values()
            )
        )
        return self._fused(**kwargs) if fusable else super().__call__(**kwargs)

    def _fused(
        self,
        *,
        rl_module,
        batch: dict[str, Any],
        episodes: list,
        explore: bool | None = None,
        shared_data: dict | None = None,
        metrics=None,
        **kwargs,
    ) -> dict[str, Any]:
        """``GetActions`` as it is (timed, as RLlib times it), then what the other default
        pieces make of its output: per column a list of ``num_envs`` rows, and ``actions``
        / ``actions_for_env`` stacked ``(num_envs, *action_shape)``."""
        pieces = self.connectors
        get_actions: GetActions = pieces[0]
        actions_piece: NormalizeAndClipActions = pieces[4]
        with Timed(metrics, kwargs):
            with Timed(metrics, kwargs, get_actions):
                batch = get_actions(
                    rl_module=rl_module,
                    batch=batch,
                    episodes=episodes,
                    explore=explore,
                    shared_data=shared_data,
                )
            return listify_for_env(batch, actions_piece)


def listify_for_env(batch: dict[str, torch.Tensor], actions_piece: NormalizeAndClipActions) -> dict[str, Any]:
    """What RLlib's default module-to-env pieces after ``GetActions`` make of a batch of
    ``num_envs`` rows that holds the actions: per column a list of ``num_envs`` numpy
    rows, and ``actions`` / ``actions_for_env`` stacked ``(num_envs, *action_shape)``."""
    arrays = {column: _to_numpy(values) for column, values in batch.items()}
    out: dict[str, Any] = {column: list(values) for column, values in arrays.items()}
    actions = arrays[Columns.ACTIONS]
    out[Columns.ACTIONS] = actions.copy()  # ListifyDataForVectorEnv re-stacks the rows
    space = actions_piece._action_space_struct
    if actions_piece.normalize_actions:
        out[Columns.ACTIONS_FOR_ENV] = unsquash_stacked(actions, space)
    elif actions_piece.clip_actions:
        out[Columns.ACTIONS_FOR_ENV] = clip_action(actions, space)
    return out


def use_fused_pipelines(pipeline: ConnectorV2) -> ConnectorV2:
    """Turn RLlib's single-agent env-to-module or module-to-env pipeline into the fused
    one (same pieces and state; only ``__call__`` differs). Returns ``pipeline``."""
    if type(pipeline) is EnvToModulePipeline:
        pipeline.__class__ = FusedEnvToModulePipeline
    elif type(pipeline) is ModuleToEnvPipeline:
        pipeline.__class__ = FusedModuleToEnvPipeline
    return pipeline
