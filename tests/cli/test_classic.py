"""RLlib's classic YAML keys translated to Ray 2.60's names (no Ray instance needed)."""

from __future__ import annotations

import pytest

from rllib_trl.cli.classic import EVAL_SYNC, EXACT_FILTER, translate_config, translate_stop
from rllib_trl.cli.errors import UsageError

# The config of RLlib's own tuned_examples/ppo/pendulum-ppo.yaml (Ray 1.x / 2.x format).
PENDULUM_PPO = {
    "framework": "torch",
    "train_batch_size": 512,
    "vf_clip_param": 10.0,
    "num_workers": 0,
    "num_envs_per_worker": 20,
    "lambda": 0.1,
    "gamma": 0.95,
    "lr": 0.0003,
    "sgd_minibatch_size": 64,
    "num_sgd_iter": 6,
    "model": {"fcnet_hiddens": [256, 256]},
    "observation_filter": "MeanStdFilter",
}


def _translate(config, run="PPO"):
    notes: list[str] = []
    return translate_config(config, run, notes.append), notes


def test_pendulum_ppo_classic_config():
    out, notes = _translate(PENDULUM_PPO)
    assert out == {
        "train_batch_size": 512,
        "vf_clip_param": 10.0,
        "num_env_runners": 0,
        "num_envs_per_env_runner": 20,
        "lambda_": 0.1,
        "gamma": 0.95,
        "lr": 0.0003,
        "minibatch_size": 64,
        "num_epochs": 6,
        "model_config": {"fcnet_hiddens": [256, 256]},
        "env_to_module_connector": EXACT_FILTER,
        "callbacks_class": EVAL_SYNC,
    }
    # one note per translated PPO-era name; `lambda` and `framework` are RLlib's own dict keys
    assert len(notes) == 6
    for old in ("num_workers", "num_envs_per_worker", "sgd_minibatch_size", "num_sgd_iter"):
        assert sum(f"'{old}'" in n for n in notes) == 1
    assert any(n.startswith("observation_filter: MeanStdFilter") for n in notes)
    assert any(n.startswith("model: ") for n in notes)


def test_trpl_classic_config():
    config = {
        "num_workers": 1,
        "observation_filter": "NoFilter",
        "model": {"fcnet_hiddens": [32, 32], "free_log_std": True, "vf_share_layers": False},
        "num_envs_per_worker": {"grid_search": [2, 4]},
    }
    out, _ = _translate(config, run="TRPL")
    assert out == {
        "num_env_runners": 1,
        "normalize_observations": False,
        "model_config": {"fcnet_hiddens": [32, 32], "contextual_std": False},
        "num_envs_per_env_runner": {"grid_search": [2, 4]},
    }


def test_old_stack_keeps_classic_filter_and_model():
    config = {"enable_rl_module_and_learner": False, "observation_filter": "MeanStdFilter", "model": {"x": 1}}
    out, notes = _translate(config)
    assert out == config and notes == []


@pytest.mark.parametrize(
    "config, message",
    [
        ({"framework": "tf"}, "config key 'framework' is 'tf'; this installation runs framework: torch"),
        ({"framework": "tf2"}, "'framework' is 'tf2'"),
        ({"observation_filter": "ConcurrentMeanStdFilter"}, "use MeanStdFilter or NoFilter"),
        ({"model": {"custom_model": "x"}}, "config key 'model.custom_model' has no equivalent in PPO's"),
        ({"num_workers": 1, "num_env_runners": 2}, "config key 'num_env_runners' is given twice"),
    ],
)
def test_what_cannot_run_is_named(config, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _translate(config)


def test_trpl_filter_key_on_both_stacks():
    for stack in ({}, {"enable_rl_module_and_learner": False}):
        out, notes = _translate({**stack, "observation_filter": "NoFilter"}, run="TRPL")
        assert out == {**stack, "normalize_observations": False} and len(notes) == 1
    out, notes = _translate({"observation_filter": "NoFilter", "normalize_observations": True}, run="TRPL")
    assert out == {"normalize_observations": True} and "ignored" in notes[0]


def test_trpl_model_keys_and_rllib_model_keys():
    with pytest.raises(UsageError, match="model.use_lstm"):
        _translate({"model": {"use_lstm": True}}, run="TRPL")
    out, _ = _translate({"model": {"use_lstm": True, "fcnet_hiddens": [8]}}, run="PPO")
    assert out == {"model_config": {"use_lstm": True, "fcnet_hiddens": [8]}}


def test_trpl_rejects_shared_value_layers():
    with pytest.raises(UsageError, match="model.vf_share_layers"):
        _translate({"model": {"vf_share_layers": True}}, run="TRPL")


def test_stop_keys():
    notes: list[str] = []
    stop = {"timesteps_total": 400000, "episode_reward_mean": -500, "training_iteration": 10}
    assert translate_stop(stop, notes.append) == {
        "num_env_steps_sampled_lifetime": 400000,
        "env_runners/episode_return_mean": -500,
        "training_iteration": 10,
    }
    assert len(notes) == 2


def test_command_line_overrides_a_classic_key():
    """The file's ``num_workers: 1`` and ``--config '{"num_env_runners": 0}'``: the command
    line wins whichever spelling either uses."""
    from rllib_trl.cli.experiment import apply_overrides, experiment_from_spec

    spec = {"run": "PPO", "env": "Pendulum-v1", "config": {"num_workers": 1, "sgd_minibatch_size": 32}}
    for override in ({"num_env_runners": 0}, {"num_workers": 0}):
        exp = apply_overrides(
            experiment_from_spec("x", spec, "x.yaml"),
            config=override,
            stop={"timesteps_total": 10},
            num_samples=None,
            storage_path=None,
            note=lambda line: None,
        )
        assert exp.config == {"env": "Pendulum-v1", "num_env_runners": 0, "minibatch_size": 32}
        assert exp.stop == {"num_env_steps_sampled_lifetime": 10}


def test_command_line_config_merges_into_nested_dicts():
    """``--config '{"model_config": {"init_std": 0.5}}'`` changes that key and keeps the
    file's others; a search space or a non-dict replaces the file's value whole."""
    from rllib_trl.cli.experiment import apply_overrides, experiment_from_spec

    spec = {
        "run": "TRPL",
        "env": "Hopper-v5",
        "config": {
            "model_config": {"fcnet_hiddens": [64, 64], "init_std": 1.0},
            "evaluation_config": {"explore": False},
            "lr": {"grid_search": [1e-4, 3e-4]},
            "env_config": {"grid_search": [{"a": 1}, {"a": 2}]},
        },
    }
    override = {
        "model_config": {"init_std": 0.5},
        "evaluation_config": {"grid_search": [{"explore": True}]},
        "lr": 1e-3,
        "env_config": {"a": 3},
    }
    exp = apply_overrides(
        experiment_from_spec("x", spec, "x.yaml"),
        config=override,
        stop={},
        num_samples=None,
        storage_path=None,
        note=lambda line: None,
    )
    assert exp.config["model_config"] == {"fcnet_hiddens": [64, 64], "init_std": 0.5}
    assert exp.config["evaluation_config"] == {"grid_search": [{"explore": True}]}
    assert exp.config["lr"] == 1e-3
    assert exp.config["env_config"] == {"a": 3}
    assert spec["config"]["model_config"]["init_std"] == 1.0


def test_command_line_model_merges_on_either_api_stack():
    """A classic ``model`` dict on the command line merges into the file's: as
    ``model_config`` on the new stack, and as ``model`` when the file picks the old stack
    (the override is translated for the file's stack)."""
    from rllib_trl.cli.experiment import apply_overrides, experiment_from_spec

    def merged(file_config: dict) -> dict:
        spec = {"run": "PPO", "env": "Pendulum-v1", "config": file_config}
        return apply_overrides(
            experiment_from_spec("x", spec, "x.yaml"),
            config={"model": {"fcnet_hiddens": [32]}},
            stop={},
            num_samples=None,
            storage_path=None,
            note=lambda line: None,
        ).config

    new = merged({"model_config": {"fcnet_hiddens": [64], "fcnet_activation": "tanh"}})
    assert new["model_config"] == {"fcnet_hiddens": [32], "fcnet_activation": "tanh"}
    assert "model" not in new
    old_stack = {"enable_rl_module_and_learner": False, "enable_env_runner_and_connector_v2": False}
    old = merged({**old_stack, "model": {"fcnet_hiddens": [64], "fcnet_activation": "tanh"}})
    assert old["model"] == {"fcnet_hiddens": [32], "fcnet_activation": "tanh"}
    assert "model_config" not in old
