"""TRPL-KL solves InvertedPendulum-v5 (max return 1000) within a CI-sized budget."""

from __future__ import annotations

from rllib_trl import TRPLConfig

BUDGET_STEPS = 80_000
SOLVED = 950.0


def test_trpl_kl_solves_inverted_pendulum(ray_local):
    config = (
        TRPLConfig()
        .environment("InvertedPendulum-v5")
        .env_runners(num_env_runners=1, num_envs_per_env_runner=4)
        .training(projection="kl", train_batch_size_per_learner=1024, minibatch_size=64, num_epochs=10)
        .evaluation(evaluation_interval=4, evaluation_duration=5)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    history = []
    try:
        while True:
            result = algo.train()
            steps = result["num_env_steps_sampled_lifetime"]
            evaluation = result.get("evaluation", {}).get("env_runners", {}).get("episode_return_mean")
            if evaluation is not None:
                history.append((steps, evaluation))
                if evaluation >= SOLVED or steps >= BUDGET_STEPS:
                    break
    finally:
        algo.stop()
    assert history[-1][1] >= SOLVED, f"deterministic evaluation returns (steps, return): {history}"
    assert history[0][1] < SOLVED  # it learned, it did not start solved
