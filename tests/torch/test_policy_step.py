"""The policy's real step per iteration (policy_step_*): measured on the whole batch after
the update, for every projection and for the PPO baseline, and able to exceed the bound."""

from __future__ import annotations

import math

import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig

from rllib_trl import TRPLConfig
from rllib_trl.cli.plot import _bound
from rllib_trl.projections import get_trust_region
from rllib_trl.torch.policy_step import (
    OUTSIDE_SLACK,
    POLICY_STEP_COV_PART_MAX_KEY,
    POLICY_STEP_KL_MAX_KEY,
    POLICY_STEP_KL_MEAN_KEY,
    POLICY_STEP_MEAN_PART_MAX_KEY,
    POLICY_STEP_OUTSIDE_FRAC_KEY,
    PolicyStepPPOTorchLearner,
    StepMeasure,
    policy_step_metrics,
)
from tests.algorithm.helpers import small_config

KEYS = (
    POLICY_STEP_KL_MEAN_KEY,
    POLICY_STEP_KL_MAX_KEY,
    POLICY_STEP_MEAN_PART_MAX_KEY,
    POLICY_STEP_COV_PART_MAX_KEY,
    POLICY_STEP_OUTSIDE_FRAC_KEY,
)


def test_metrics_are_the_split_divergence_and_the_outside_fraction():
    torch.manual_seed(0)
    old = (torch.randn(500, 3), torch.rand(500, 3) + 0.5)
    new = (old[0] + 0.1 * torch.randn(500, 3), old[1] * (1 + 0.05 * torch.randn(500, 3)))
    step = StepMeasure(get_trust_region("wasserstein"), mean_bound=0.02, cov_bound=0.001)
    out = policy_step_metrics(new, old, step, full=False)
    new64, old64 = ([t.double() for t in p] for p in (new, old))
    kl = sum(get_trust_region("kl").parts(*new64, *old64))
    d_mean, d_cov = get_trust_region("wasserstein").parts(*new64, *old64)
    torch.testing.assert_close(out[POLICY_STEP_KL_MAX_KEY], kl.max())
    torch.testing.assert_close(out[POLICY_STEP_KL_MEAN_KEY], kl.mean())
    torch.testing.assert_close(out[POLICY_STEP_MEAN_PART_MAX_KEY], d_mean.max())
    torch.testing.assert_close(out[POLICY_STEP_COV_PART_MAX_KEY], d_cov.max())
    slack = 1 + OUTSIDE_SLACK
    outside = ((d_mean > 0.02 * slack) | (d_cov > 0.001 * slack)).double().mean()
    assert 0 < float(outside) < 1
    torch.testing.assert_close(out[POLICY_STEP_OUTSIDE_FRAC_KEY], outside)


def test_measuring_draws_no_random_numbers():
    """The measure reads the distribution inputs only: TRPL's exploration forward would
    also sample 2048 actions from the global generator and change what a run draws next."""
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    from tests.torch.test_loss import MODULE, _batch, _learner

    _, learner, module = _learner()
    learner._policy_step_batch = MultiAgentBatch({MODULE: SampleBatch(_batch(module, n=256))}, env_steps=256)
    state = torch.get_rng_state()
    learner.log_policy_step()
    assert torch.equal(torch.get_rng_state(), state)
    assert learner._policy_step_batch is None  # it measured


def test_measure_and_bounds_per_algorithm():
    def summary(step: StepMeasure) -> tuple:
        return step.region.name, step.region.measure, step.mean_bound, step.cov_bound

    frobenius = TRPLConfig().training(projection="frobenius", mean_bound=0.1)
    assert summary(StepMeasure.of(frobenius)) == ("frobenius", "frobenius", 0.1, 0.001)
    for scale_prec in (True, False):
        step = StepMeasure.of(TRPLConfig().training(projection="frobenius", scale_prec=scale_prec))
        assert step.region.split.keywords["scale_prec"] is scale_prec
    assert StepMeasure.of(TRPLConfig().training(projection="none")).region.measure == "kl"
    assert summary(StepMeasure.of(PPOConfig())) == ("kl", "kl", 0.03, 0.001)
    ppo = PPOConfig().learners(learner_config_dict={"mean_bound": 0.05})
    assert StepMeasure.of(ppo).mean_bound == 0.05
    # the plot draws the same bounds
    assert _bound({"learner_config_dict": {"mean_bound": 0.05}}, "kl") == pytest.approx(0.051)
    assert _bound({"projection": "wasserstein", "mean_bound": 0.1, "cov_bound": 0.2}, "kl") is None
    assert _bound({"projection": "none", "mean_bound": 0.1, "cov_bound": 0.2}, "cov_bound") == 0.2


def _steps(config, iterations: int = 2) -> list[dict]:
    algo = config.build_algo()
    try:
        return [algo.train()["learners"]["default_policy"] for _ in range(iterations)]
    finally:
        algo.stop()


def test_step_without_projection_and_a_large_lr_leaves_the_region(ray_local):
    config = small_config(projection="none", lr=0.01)
    for metrics in _steps(config):
        assert float(metrics[POLICY_STEP_KL_MAX_KEY]) > config.mean_bound + config.cov_bound
        assert float(metrics[POLICY_STEP_OUTSIDE_FRAC_KEY]) > 0.5


def test_kl_defaults_step_is_reported_and_within_the_bounds_on_hopper(ray_local):
    config = small_config()  # KL, the default bounds, one state-independent std
    for metrics in _steps(config):
        values = {key: float(metrics[key]) for key in KEYS}
        assert all(math.isfinite(v) for v in values.values()), values
        # the std the EnvRunners get is the projection of the updated one: inside
        assert values[POLICY_STEP_COV_PART_MAX_KEY] <= config.cov_bound * (1 + 1e-6)
        # the network's own mean is pulled back by the trust-region loss only; with this
        # small batch (256 steps, 2 epochs) it stays inside (about 1/15 of the bound).
        # The tuned examples' 2048 x 10 epochs leave it outside in many states (README).
        assert values[POLICY_STEP_MEAN_PART_MAX_KEY] <= config.mean_bound
        assert values[POLICY_STEP_OUTSIDE_FRAC_KEY] == 0.0


def test_ppo_baseline_logs_the_same_step(ray_local):
    config = (
        PPOConfig()
        .environment("Hopper-v5")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
        .training(
            train_batch_size=256, minibatch_size=64, num_epochs=2, learner_class=PolicyStepPPOTorchLearner
        )
    )
    for metrics in _steps(config):
        assert all(math.isfinite(float(metrics[key])) for key in KEYS)
        assert float(metrics[POLICY_STEP_KL_MAX_KEY]) > 0
