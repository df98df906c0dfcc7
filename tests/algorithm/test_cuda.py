"""TRPL training iterations with the learner on a CUDA device, local (``num_learners=0``)
and as a remote Learner actor (``num_learners=1``, as the cluster configs do): the module
and the projection run there, the metrics are finite, the projected policy within its
bounds, the real step reported, and the EnvRunners sample with the trained weights.
Skipped where PyTorch sees no CUDA device."""

from __future__ import annotations

import math

import pytest
import torch

from rllib_trl.torch.trpl_loss import COV_CONSTRAINT_MAX_KEY, MEAN_CONSTRAINT_MAX_KEY
from tests.algorithm.helpers import small_config

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SLACK = 1 + 1e-4  # the projection runs in float64; the policy lives in float32
CASES = [(p, c, 0) for p in ("kl", "frobenius", "wasserstein") for c in ("diag", "full")]
CASES += [("kl", "diag", 1)]


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The default policy's parameters and buffers, on the CPU, from an RLModule or a
    MultiRLModule holding it."""
    if hasattr(module, "_rl_modules"):
        module = module["default_policy"]
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _learner_side(learner) -> tuple[set[str], dict[str, torch.Tensor]]:
    """(devices of the policy's parameters, its weights) inside a Learner."""
    module = learner.module["default_policy"].unwrapped()
    return {p.device.type for p in module.parameters()}, _weights(module)


@pytest.mark.parametrize("projection, cov_type, num_learners", CASES)
def test_iterations_on_cuda(ray_local, projection, cov_type, num_learners):
    config = small_config(projection=projection, cov_type=cov_type).learners(
        num_learners=num_learners, num_gpus_per_learner=1 if DEVICE == "cuda" else 0
    )
    algo = config.build_algo()
    try:
        for _ in range(2):
            stats = algo.train()["learners"]["default_policy"]
            for key in ("kl_max", "policy_loss", "vf_loss", "policy_step_kl_mean", "policy_step_kl_max"):
                assert math.isfinite(float(stats[key])), (key, stats[key])
            assert float(stats[MEAN_CONSTRAINT_MAX_KEY]) <= config.mean_bound * SLACK
            assert float(stats[COV_CONSTRAINT_MAX_KEY]) <= config.cov_bound * SLACK
            assert 0.0 <= float(stats["policy_step_outside_frac"]) <= 1.0
        [(devices, learner_weights)] = [r.get() for r in algo.learner_group.foreach_learner(_learner_side)]
        assert devices == {DEVICE}
        # the EnvRunner samples with the weights the learner trained
        [runner_weights] = algo.env_runner_group.foreach_env_runner(
            lambda runner: _weights(runner.module), local_env_runner=False
        )
        # (the EnvRunner's module is inference-only: the policy without the value net)
        assert runner_weights and runner_weights.keys() <= learner_weights.keys()
        for key, value in runner_weights.items():
            torch.testing.assert_close(value, learner_weights[key], msg=key)
    finally:
        algo.stop()
