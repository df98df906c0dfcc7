"""Bad configs fail at build time with the key named; defaults follow the paper."""

from __future__ import annotations

import math

import pytest

from rllib_trl import TRPL, TRPLConfig
from tests.algorithm.helpers import small_config


@pytest.mark.parametrize(
    "training, key",
    [
        ({"mean_bound": -0.1}, "mean_bound"),
        ({"cov_bound": 0.0}, "cov_bound"),
        ({"cov_bound": math.inf}, "cov_bound"),
        ({"projection": "kll"}, "projection"),
        ({"entropy_schedule": "cosine"}, "entropy_schedule"),
        ({"entropy_schedule": "linear"}, "target_entropy"),
        ({"temperature": 1.5}, "temperature"),
        ({"projection_dtype": "float16"}, "projection_dtype"),
        ({"clip_param": -0.2}, "clip_param"),
        ({"trust_region_coeff": -1.0}, "trust_region_coeff"),
        ({"use_kl_loss": True}, "use_kl_loss"),
        ({"entropy_schedule": "exp", "target_entropy": "abc"}, "target_entropy"),
        ({"scale_prec": "false"}, "scale_prec"),
        ({"normalize_rewards": 1}, "normalize_rewards"),
        ({"vf_num_epochs": 0}, "vf_num_epochs"),
        ({"vf_num_epochs": 2.5}, "vf_num_epochs"),
        ({"vf_minibatch_size": -16}, "vf_minibatch_size"),
        ({"advantage_normalization": "episode"}, "advantage_normalization"),
    ],
)
def test_bad_training_values(training, key):
    with pytest.raises(ValueError, match=f"`{key}`"):
        small_config(**training).validate()


def test_value_only_epochs_need_one_learner():
    with pytest.raises(ValueError, match="`vf_num_epochs`.*num_learners"):
        small_config(vf_num_epochs=2).learners(num_learners=2).validate()


@pytest.mark.parametrize(
    "model, key",
    [
        ({"cov_type": "block"}, "cov_type"),
        ({"cov_type": "full", "free_log_std": True}, "free_log_std"),
        ({"init_std": 0.0}, "init_std"),
        ({"fcnet_activation": "gelu6"}, "fcnet_activation"),
        ({"weight_init": "xavier"}, "weight_init"),
        ({"std_param": "sigmoid"}, "std_param"),
    ],
)
def test_bad_model_config(model, key):
    with pytest.raises(ValueError, match=f"`{key}`"):
        small_config().rl_module(model_config=model).validate()


def test_discrete_action_space_rejected():
    with pytest.raises(ValueError, match="`env`.*continuous"):
        small_config("CartPole-v1").validate()


def test_unknown_env_rejected():
    with pytest.raises(ValueError, match="`env`.*NoSuchEnv-v0"):
        small_config("NoSuchEnv-v0").validate()


def test_build_fails_before_starting_actors():
    # build_algo validates first: no Ray instance is needed to see the error
    with pytest.raises(ValueError, match="`mean_bound`"):
        small_config(mean_bound=-1.0).build_algo()


def test_paper_defaults():
    config = TRPLConfig()
    assert config.algo_class is TRPL
    assert config.projection == "kl" and config.clip_param is None and config.use_kl_loss is False
    assert config.lambda_ == 0.95 and config.gamma == 0.99
    assert config.vf_clip_param == math.inf
    assert config.normalize_observations is True
    spec = config.get_default_rl_module_spec()
    assert spec.module_class.__name__ == "TRPLTorchRLModule"


def test_training_is_keyword_only_and_chains():
    config = TRPLConfig().training(mean_bound=0.05, cov_bound=0.002, lr=1e-4, vf_lr=5e-4)
    assert (config.mean_bound, config.cov_bound, config.lr, config.vf_lr) == (0.05, 0.002, 1e-4, 5e-4)
    with pytest.raises(TypeError):
        TRPLConfig().training(0.05)


def test_registered_env_gets_an_env_context():
    """RLlib passes an EnvContext to env creators; validation must too."""
    import gymnasium as gym
    from ray.tune.registry import register_env

    register_env(
        "pendulum-reads-worker-index", lambda ctx: gym.make("Pendulum-v1", g=9.81 + 0 * ctx.worker_index)
    )
    small_config("pendulum-reads-worker-index").validate()


def test_unbroadcast_statistics_rejected():
    config = small_config().env_runners(broadcast_env_runner_states=False)
    with pytest.raises(ValueError, match="`broadcast_env_runner_states`"):
        config.validate()
