"""Every tuned example parses and builds a valid config, without training."""

from __future__ import annotations

from pathlib import Path

import pytest

from rllib_trl.cli.experiment import load_experiments
from rllib_trl.cli.validate import validate_experiment

ROOT = Path(__file__).resolve().parents[2] / "tuned_examples"
FILES = sorted(ROOT.rglob("*.yaml"))


def test_examples_exist_for_every_env_and_measure():
    names = {p.stem for p in FILES}
    for env in ("hopper", "halfcheetah", "walker2d", "ant", "humanoid"):
        for variant in ("trpl-kl", "trpl-w2", "trpl-frob", "ppo", "ppo-matched"):
            assert f"{env}-{variant}" in names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_example_builds_valid_config(path):
    for exp in load_experiments(str(path)):
        algo_cls = validate_experiment(exp)
        assert algo_cls.__name__ in ("TRPL", "PPO")
        assert exp.stop.get("num_env_steps_sampled_lifetime", 0) > 0
        # concrete configs only: a search space resolves to its sampled domains in Tune
        if not any(isinstance(v, dict) and len(v) == 1 for v in exp.config.values()):
            config = algo_cls.get_default_config().update_from_dict(exp.config)
            config.validate()
            assert config.env == exp.config["env"]
