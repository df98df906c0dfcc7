"""TRPL on RLlib's old API stack (RolloutWorkers, TorchPolicyV2): two iterations on
Pendulum-v1 and Hopper-v5 with the trust-region metrics in bounds; unsupported options
fail with the key named."""

from __future__ import annotations

import math

import pytest

from rllib_trl import TRPLConfig
from rllib_trl.torch.trpl_torch_policy import STAT_KEYS, TRPLTorchPolicy

SLACK = 1 + 1e-4


def old_stack_config(env: str, projection: str = "kl") -> TRPLConfig:
    return (
        TRPLConfig()
        .api_stack(enable_rl_module_and_learner=False, enable_env_runner_and_connector_v2=False)
        .environment(env)
        .env_runners(num_env_runners=1, num_envs_per_env_runner=1, rollout_fragment_length=256)
        .training(
            projection=projection,
            normalize_rewards=False,
            train_batch_size=256,
            minibatch_size=64,
            num_epochs=2,
        )
        .debugging(seed=0)
    )


@pytest.mark.parametrize(
    "env, projection",
    [
        ("Pendulum-v1", "kl"),
        ("Hopper-v5", "kl"),
        ("Hopper-v5", "wasserstein"),
        ("Pendulum-v1", "frobenius"),
        ("Pendulum-v1", "none"),
    ],
)
def test_two_iterations_old_stack(ray_local, env, projection):
    config = old_stack_config(env, projection)
    if projection == "none":  # a large step, to show that nothing bounds it
        config = config.training(lr=0.01)
    algo = config.build_algo()
    try:
        assert isinstance(algo.get_policy(), TRPLTorchPolicy)
        for _ in range(2):
            before = algo.get_policy().free_log_std().detach().clone()
            result = algo.train()
            stats = result["info"]["learner"]["default_policy"]["learner_stats"]
            for key in STAT_KEYS:
                assert key in stats and math.isfinite(float(stats[key])), key
            if projection == "none":  # no projection: π̃ is the network's own policy
                assert float(stats["mean_constraint_max"]) > config.mean_bound
                continue
            assert float(stats["mean_constraint_max"]) <= config.mean_bound * SLACK
            assert float(stats["cov_constraint_max"]) <= config.cov_bound * SLACK
            if projection == "kl":
                assert float(stats["kl_max"]) <= (config.mean_bound + config.cov_bound) * SLACK
            after = algo.get_policy().free_log_std().detach()
            # the free std was replaced by its projection around the sampling std
            import torch

            from rllib_trl.projections import get_trust_region

            zero = torch.zeros(1, after.shape[0], dtype=torch.float64)
            _, d_cov = get_trust_region(projection).parts(
                zero, after.exp().double()[None], zero, before.exp().double()[None]
            )
            assert float(d_cov) <= config.cov_bound * SLACK
        assert result["num_env_steps_sampled_lifetime"] >= 512 or result["num_env_steps_sampled"] > 0
    finally:
        algo.stop()


def test_default_config_trains_on_old_stack(ray_local):
    """A user switching stacks keeps TRPLConfig's defaults: reward normalisation, on by
    default for the new stack, follows the stack (off here) instead of failing."""
    config = (
        TRPLConfig()
        .api_stack(enable_rl_module_and_learner=False, enable_env_runner_and_connector_v2=False)
        .environment("Pendulum-v1")
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1, rollout_fragment_length=256)
        .training(train_batch_size=256, minibatch_size=64, num_epochs=1)
    )
    assert config.normalize_rewards is None and not config.rewards_normalized
    assert TRPLConfig().rewards_normalized  # the new stack's default
    algo = config.build_algo()
    try:
        stats = algo.train()["info"]["learner"]["default_policy"]["learner_stats"]
        assert float(stats["kl_max"]) <= (config.mean_bound + config.cov_bound) * SLACK
    finally:
        algo.stop()


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c.rl_module(model_config={"cov_type": "full"}), "cov_type"),
        (lambda c: c.rl_module(model_config={"contextual_std": True}), "contextual_std"),
        (lambda c: c.rl_module(model_config={"weight_init": "torch_default"}), "weight_init"),
        (lambda c: c.rl_module(model_config={"std_param": "exp"}), "std_param"),
        (lambda c: c.training(entropy_schedule="linear", target_entropy=-1.0), "entropy_schedule"),
        (lambda c: c.training(normalize_rewards=True), "normalize_rewards"),
        (lambda c: c.training(advantage_normalization="minibatch"), "advantage_normalization"),
    ],
)
def test_unsupported_options_rejected(change, key):
    with pytest.raises(ValueError, match=f"`{key}` is not supported on the old API stack"):
        change(old_stack_config("Hopper-v5")).validate()
