"""Small, fast TRPL configs for tests."""

from __future__ import annotations

from rllib_trl import TRPLConfig


def small_config(
    env: str = "Hopper-v5",
    *,
    projection: str = "kl",
    cov_type: str = "diag",
    contextual_std: bool = False,
    **training,
) -> TRPLConfig:
    """Two EnvRunner envs, 256-step iterations, 2 epochs of minibatch 64."""
    return (
        TRPLConfig()
        .environment(env)
        .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
        .training(
            projection=projection,
            train_batch_size_per_learner=256,
            minibatch_size=64,
            num_epochs=2,
            **training,
        )
        .rl_module(model_config={"cov_type": cov_type, "contextual_std": contextual_std})
        .debugging(seed=0)
    )
