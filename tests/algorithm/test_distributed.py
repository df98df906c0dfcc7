"""num_learners=2 (DDP over gloo) keeps the replicas identical; checkpoints restore
weights, both optimizers and the observation statistics, and continue identically."""

from __future__ import annotations

import copy

import numpy as np
import torch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from rllib_trl import TRPL
from tests.algorithm.helpers import small_config


def _weights(learner) -> dict[str, np.ndarray]:
    module = learner.module["default_policy"].unwrapped()
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def test_two_learners_stay_identical(ray_local):
    config = (
        small_config()
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2)
        .learners(num_learners=2, num_cpus_per_learner=1)
    )
    algo = config.build_algo()
    try:
        start = [r.get() for r in algo.learner_group.foreach_learner(_weights)][0]
        algo.train()
        algo.train()
        first, second = [r.get() for r in algo.learner_group.foreach_learner(_weights)]
    finally:
        algo.stop()
    assert any(not np.array_equal(first[k], start[k]) for k in first), "no update happened"
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def _update(algo, episodes):
    algo.learner_group.update(
        episodes=copy.deepcopy(episodes),  # learner connectors extend episodes in place
        timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 512},
        num_epochs=2,
        minibatch_size=64,
        shuffle_batch_per_epoch=False,
    )
    return _weights(algo.learner_group._learner)


def test_checkpoint_round_trip(ray_local, tmp_path):
    config = small_config(normalize_rewards=True).env_runners(num_env_runners=0, num_envs_per_env_runner=2)
    algo = config.build_algo()
    try:
        algo.train()
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        episodes = algo.env_runner.sample(num_timesteps=256, random_actions=False)
        filter_state = algo.env_runner.get_state(components="env_to_module_connector")
        restored = TRPL.from_checkpoint(path)
        try:
            learner, other = algo.learner_group._learner, restored.learner_group._learner
            for key, value in _weights(learner).items():
                np.testing.assert_array_equal(value, _weights(other)[key], err_msg=key)
            names = [name for name, _ in learner.get_optimizers_for_module("default_policy")]
            assert names == [name for name, _ in other.get_optimizers_for_module("default_policy")]
            for name in names:
                a = learner.get_optimizer("default_policy", name).state_dict()["state"]
                b = other.get_optimizer("default_policy", name).state_dict()["state"]
                assert a.keys() == b.keys() and len(a) > 0
                for idx in a:
                    torch.testing.assert_close(a[idx]["exp_avg_sq"], b[idx]["exp_avg_sq"])
            restored_filter = restored.env_runner.get_state(components="env_to_module_connector")
            stats = filter_state["env_to_module_connector"]["ExactMeanStdFilter"][None]["running_stats"]
            restored_stats = restored_filter["env_to_module_connector"]["ExactMeanStdFilter"][None][
                "running_stats"
            ]
            # The checkpoint was written before these 256 extra steps were sampled.
            assert restored_stats[0]["num_pushes"] > 0
            assert restored_stats[0]["num_pushes"] < stats[0]["num_pushes"]
            # Same data into both -> same weights: the run continues identically.
            cont = _update(algo, episodes)
            cont_restored = _update(restored, episodes)
            for key in cont:
                np.testing.assert_allclose(cont[key], cont_restored[key], rtol=1e-6, atol=1e-7, err_msg=key)
        finally:
            restored.stop()
    finally:
        algo.stop()
