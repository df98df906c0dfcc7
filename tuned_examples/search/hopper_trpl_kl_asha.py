"""The search of hopper-trpl-kl-asha.yaml written with ``tune.Tuner`` directly.

python tuned_examples/search/hopper_trpl_kl_asha.py [--num-samples 12] [--max-steps 1000000]
"""

from __future__ import annotations

import argparse

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from rllib_trl import TRPLConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-samples", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    parser.add_argument("--storage-path", default="~/rllib_trl_results")
    args = parser.parse_args()

    config = (
        TRPLConfig()
        .environment("Hopper-v5")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=4, num_cpus_per_env_runner=0.5)
        .training(
            projection="kl",
            mean_bound=tune.loguniform(0.005, 0.1),
            cov_bound=tune.loguniform(1e-4, 5e-3),
            trust_region_coeff=tune.choice([1.0, 8.0, 25.0]),
        )
    )
    steps = "num_env_steps_sampled_lifetime"
    tuner = tune.Tuner(
        "TRPL",
        param_space=config,
        tune_config=tune.TuneConfig(
            metric="env_runners/episode_return_mean",
            mode="max",
            num_samples=args.num_samples,
            max_concurrent_trials=1,
            scheduler=ASHAScheduler(
                time_attr=steps,
                max_t=args.max_steps,
                grace_period=max(args.max_steps // 10, 1),
                reduction_factor=3,
            ),
        ),
        run_config=tune.RunConfig(
            name="hopper-trpl-kl-asha-py",
            storage_path=args.storage_path,
            stop={steps: args.max_steps},
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=25, checkpoint_at_end=True),
        ),
    )
    best = tuner.fit().get_best_result()
    print("best config:", {k: best.config[k] for k in ("mean_bound", "cov_bound", "trust_region_coeff")})


if __name__ == "__main__":
    main()
