"""Speed-ups of RLlib's torch learner that depend on its internals, in one place.

Each replaces one RLlib 2.60 behaviour with one that gives the same result
(pinned by tests in ``tests/torch/test_loss.py``):

- ``adam``: PyTorch's fused Adam kernel instead of the per-parameter loop (same update
  rule up to float rounding; ~0.4 ms of each minibatch here).
- ``adam_step``: the fused Adam step without ``Optimizer.step``'s wrappers (the same
  kernel call on the same tensors; pinned bit for bit to ``step()``).
- ``compute_gradients``: RLlib's, with gradients set to None directly instead of through
  ``zero_grad`` (same effect, without its per-call guards).
- ``FastPathsTorchLearner.apply_gradients`` replaces ``TorchLearner.apply_gradients``:
  one finiteness check over all gradients instead of two ops per parameter tensor; it
  reads RLlib's ``_params``, ``_module_optimizers``, ``_grad_scalers`` and
  ``_lr_scheduler_classes``, and hands anything unusual (a non-finite gradient, a grad
  scaler, an lr scheduler class) to RLlib's own method. Parameters without a gradient
  (outside the loss) are left out first; RLlib's method fails on them.
- ``_compute_off_policyness``: RLlib logs ``diff_num_grad_updates_vs_sampler_policy``
  with window=1 from every minibatch (a boolean-mask gather each time); the value of the
  update's last minibatch is what is reported, so it is computed once per update.
- ``_set_optimizer_state``: a restored optimizer keeps the fused kernel (RLlib's
  ``load_state_dict`` takes the saved param groups' flags), and a checkpoint whose
  optimizer names differ from this config's is refused (RLlib would register the
  module's optimizers a second time, and every minibatch would step each one twice).
- ``_log_steps_trained_metrics``: RLlib logs eight metric values per minibatch (weights
  seq no, minibatch size, module/env steps trained and their lifetime sums); here the
  minibatches' counts are added up and logged once per update. The sums, lifetime sums
  and their throughputs (computed at reduce) come out the same; the minibatch-size mean
  is logged as the update's mean (every minibatch of a module has the same size).
- ``_create_iterator_if_necessary``: RLlib's ``MiniBatchCyclicIterator`` builds each
  minibatch by slicing ``SampleBatch`` objects and concatenating them (~0.4 ms here);
  ``CyclicTensorMinibatches`` yields the same minibatches, in the same order, from the
  columns' tensors (slices, one ``torch.cat`` where a minibatch wraps around, and the
  per-epoch shuffle with the same ``np.random.permutation`` calls). Batches it does not
  cover (sequences, non-tensor columns) keep RLlib's iterator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from ray.rllib.core import ALL_MODULES
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator
from ray.rllib.utils.typing import ParamDict
from torch import Tensor
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

_GLOBAL_HOOKS = (_global_optimizer_pre_hooks, _global_optimizer_post_hooks)


def fused_for(params: list[Tensor]) -> bool | None:
    """True where the parameters' device has PyTorch's fused Adam kernel (CPU, CUDA)."""
    device = params[0].device.type if params else "cpu"
    return True if device in ("cpu", "cuda") else None


def adam(params: list[Tensor]) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where there is one: the same update rule as the
    per-parameter loop (equal up to float rounding), in one call."""
    return torch.optim.Adam(params, fused=fused_for(params))


def adam_step(optimizer: torch.optim.Optimizer) -> bool:
    """``optimizer.step()`` for a fused CPU Adam whose state exists, as one
    ``torch._fused_adam_`` call per group: what ``Adam.step`` ends in (``_fused_adam``:
    steps += 1, then the kernel), without its per-step wrappers (profiler scope, hook
    chains, dynamo guards, ``_init_group``), which cost several times the kernel on
    these small networks. Returns False, having done nothing, where ``step()`` is needed:
    another optimizer or setting, hooks, a first step (state to create), a tensor lr or
    beta, a group where some parameters have no gradient, several devices or dtypes. A
    group where none has one is skipped, as ``step()`` skips it (the value net's
    optimizer in the policy epochs under ``vf_num_epochs``)."""
    if type(optimizer) is not torch.optim.Adam or optimizer._optimizer_step_pre_hooks:
        return False
    if optimizer._optimizer_step_post_hooks or _GLOBAL_HOOKS[0] or _GLOBAL_HOOKS[1]:
        return False
    if (
        getattr(optimizer, "grad_scale", None) is not None
        or getattr(optimizer, "found_inf", None) is not None
    ):
        return False
    calls = []
    for group in optimizer.param_groups:
        unusual = ("amsgrad", "maximize", "differentiable", "capturable", "decoupled_weight_decay")
        if not group.get("fused") or any(group.get(key) for key in unusual):
            return False
        if not all(isinstance(value, float) for value in (group["lr"], *group["betas"])):
            return False
        params = group["params"]
        if all(p.grad is None for p in params):
            continue  # step() skips parameters without a gradient: nothing to do here
        states = [optimizer.state.get(p) for p in params]
        if any(not state or p.grad is None for p, state in zip(params, states, strict=True)):
            return False
        if len({(p.device, p.dtype) for p in params}) != 1 or params[0].device.type != "cpu":
            return False
        if not params[0].is_floating_point() or not all(torch.is_tensor(state["step"]) for state in states):
            return False
        calls.append((group, params, states))
    with torch.no_grad():
        for group, params, states in calls:
            steps = [state["step"] for state in states]
            torch._foreach_add_(steps, 1)
            beta1, beta2 = group["betas"]
            torch._fused_adam_(
                params,
                [p.grad for p in params],
                [state["exp_avg"] for state in states],
                [state["exp_avg_sq"] for state in states],
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
    return True


def all_finite(grads: list[Tensor]) -> bool:
    """True if every entry of every gradient is finite: one check over one copy of all of
    them (a few thousand numbers here), not two ops per tensor. One device assumed."""
    return bool(torch.isfinite(torch.cat([g.reshape(-1) for g in grads])).all()) if grads else True


class CyclicTensorMinibatches:
    """RLlib 2.60's ``MiniBatchCyclicIterator`` over tensor columns.

    Per module: minibatches of ``minibatch_size`` rows taken in order from the batch;
    one that reaches the end wraps around to the start, counts an epoch and (if
    ``shuffle``) reorders the batch with ``np.random.permutation(len)``, as RLlib's
    ``SampleBatch.shuffle`` does (RLlib's loop also wraps when a minibatch ends exactly
    at the end). It stops once every module has covered ``num_epochs`` epochs, or after
    ``num_total_minibatches`` if that is > 0.
    """

    def __init__(self, rllib_iterator: MiniBatchCyclicIterator) -> None:
        batch = rllib_iterator._batch
        self._env_steps = len(batch)
        self._columns = {mid: dict(module_batch) for mid, module_batch in batch.policy_batches.items()}
        self._minibatch_size = rllib_iterator._minibatch_size
        self._num_epochs = rllib_iterator._num_epochs
        self._shuffle = rllib_iterator._shuffle_batch_per_epoch
        self._num_total_minibatches = rllib_iterator._num_total_minibatches

    @staticmethod
    def covers(rllib_iterator: Any) -> bool:
        """True for a ``MiniBatchCyclicIterator`` over flat, non-empty tensor columns
        without sequences."""
        if type(rllib_iterator) is not MiniBatchCyclicIterator:
            return False
        for module_batch in rllib_iterator._batch.policy_batches.values():
            if module_batch._slice_seq_lens_in_B or SampleBatch.SEQ_LENS in module_batch:
                return False
            if len(module_batch) == 0 or not all(torch.is_tensor(v) for v in module_batch.values()):
                return False
            if any(len(v) != len(module_batch) for v in module_batch.values()):
                return False
        return True

    def __iter__(self) -> Iterator[MultiAgentBatch]:
        start = {mid: 0 for mid in self._columns}
        epochs = {mid: 0 for mid in self._columns}
        count = 0
        while (self._num_total_minibatches == 0 and min(epochs.values()) < self._num_epochs) or (
            0 < self._num_total_minibatches and count < self._num_total_minibatches
        ):
            minibatch = {}
            for mid, columns in self._columns.items():
                length = len(next(iter(columns.values())))
                s, n, pieces = start[mid], self._minibatch_size, []
                while s + n >= length:
                    pieces.append({k: v[s:] for k, v in columns.items()})
                    n -= length - s
                    s = 0
                    epochs[mid] += 1
                    if self._shuffle:
                        permutation = np.random.permutation(length)
                        columns = self._columns[mid] = {k: v[permutation] for k, v in columns.items()}
                if s + n > s:
                    pieces.append({k: v[s : s + n] for k, v in columns.items()})
                if len(pieces) > 1:
                    minibatch[mid] = SampleBatch({k: torch.cat([p[k] for p in pieces]) for k in columns})
                else:
                    minibatch[mid] = SampleBatch(pieces[0])
                start[mid] = s + n
            yield MultiAgentBatch(minibatch, self._env_steps)
            count += 1


class FastPathsTorchLearner(TorchLearner):
    """Mixin: the RLlib replacements listed in this module's docstring."""

    @override(TorchLearner)
    def build(self) -> None:
        super().build()
        self._last_off_policy_batch: dict[Any, Any] = {}
        self._steps_trained: dict[Any, list[int]] = {}  # module -> [rows, minibatches]
        self._env_steps_trained = 0

    @override(TorchLearner)
    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        # A parameter outside this update's loss (the value net under ``vf_num_epochs``)
        # has no gradient; RLlib's method would fail on it, Adam skips it.
        gradients_dict = {pid: g for pid, g in gradients_dict.items() if g is not None}
        grads = list(gradients_dict.values())
        simple = self._grad_scalers is None and self._lr_scheduler_classes is None
        if not simple or not all_finite(grads):
            super().apply_gradients(gradients_dict)
            return
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for name in optimizer_names:
                optimizer = self.get_optimizer(module_id, name)
                if not adam_step(optimizer):
                    optimizer.step()

    @override(TorchLearner)
    def compute_gradients(self, loss_per_module: dict[Any, Tensor], **kwargs) -> ParamDict:
        # RLlib's, with the gradients set to None directly: ``zero_grad(set_to_none=True)``
        # does that behind a dynamo guard and a profiler scope per optimizer and minibatch.
        for optimizer in self._optimizer_parameters:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
        if self._grad_scalers is not None:
            return super().compute_gradients(loss_per_module, **kwargs)
        total_loss = sum(loss_per_module.values())
        if isinstance(total_loss, int) or total_loss.grad_fn is None:  # no loss, or all frozen
            return {}
        total_loss.backward()
        return {pid: p.grad for pid, p in self._params.items()}

    @override(TorchLearner)
    def _compute_off_policyness(self, batch) -> None:
        self._last_off_policy_batch.update(batch)  # each module's latest minibatch

    @override(Learner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        if self._last_off_policy_batch:
            super()._compute_off_policyness(self._last_off_policy_batch)
            self._last_off_policy_batch = {}
        self._flush_steps_trained()

    @override(Learner)
    def _log_steps_trained_metrics(self, batch: MultiAgentBatch) -> None:
        for module_id, module_batch in batch.policy_batches.items():
            counts = self._steps_trained.setdefault(module_id, [0, 0])
            counts[0] += len(module_batch)
            counts[1] += 1
        self._env_steps_trained += batch.env_steps()

    def _flush_steps_trained(self) -> None:
        """RLlib's ``_log_steps_trained_metrics`` once, with the update's totals."""
        log = self.metrics.log_value
        for module_id, (rows, minibatches) in self._steps_trained.items():
            log((module_id, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            log(key=(module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), value=rows / minibatches, reduce="mean")
            log(key=(module_id, NUM_MODULE_STEPS_TRAINED), value=rows, reduce="sum")
            log(
                key=(module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                value=rows,
                reduce="lifetime_sum",
                with_throughput=True,
            )
            log(key=(ALL_MODULES, NUM_MODULE_STEPS_TRAINED), value=rows, reduce="sum", with_throughput=True)
            log(
                key=(ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME),
                value=rows,
                reduce="lifetime_sum",
                with_throughput=True,
            )
        if self._steps_trained:
            log(
                (ALL_MODULES, NUM_ENV_STEPS_TRAINED),
                self._env_steps_trained,
                reduce="sum",
                with_throughput=True,
            )
            log(
                (ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME),
                self._env_steps_trained,
                reduce="lifetime_sum",
                with_throughput=True,
            )
        self._steps_trained, self._env_steps_trained = {}, 0

    @override(Learner)
    def _create_iterator_if_necessary(self, **kwargs) -> Any:
        batch_iter = super()._create_iterator_if_necessary(**kwargs)
        if CyclicTensorMinibatches.covers(batch_iter):
            return CyclicTensorMinibatches(batch_iter)
        return batch_iter

    @override(TorchLearner)
    def _set_optimizer_state(self, state) -> None:
        # RLlib registers a module's optimizers once more for a saved name it does not
        # know, which doubles every step; a different layout is refused instead.
        for module_id in {s["module_id"] for s in state.values()} & set(self._module_optimizers):
            saved = sorted(name for name, s in state.items() if s["module_id"] == module_id)
            ours = sorted(self._module_optimizers[module_id])
            if saved != ours:
                raise ValueError(
                    f"the checkpoint's optimizers for module {module_id!r} are {saved}, this config's "
                    f"are {ours}: restore with the optimizer settings it was saved with "
                    "(one optimizer when vf_lr == lr and vf_num_epochs is None, else policy + value)"
                )
        super()._set_optimizer_state(state)
        for optimizer in self._named_optimizers.values():
            for group in optimizer.param_groups:
                group["fused"] = fused_for(group["params"])
