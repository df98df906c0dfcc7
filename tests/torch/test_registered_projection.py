"""A projection added with one `register_trust_region` call is used by the config, the
loss, the learner's metrics, the real-step metrics and the plot, with no other edit."""

from __future__ import annotations

import json

import pytest
import torch

from rllib_trl.cli.plot import _bound, plot_command
from rllib_trl.projections import TrustRegion, projection_names, register_trust_region, registry
from rllib_trl.projections.checks import check_projection_args
from rllib_trl.torch.policy_step import StepMeasure
from tests.algorithm.helpers import small_config

CALLS: dict[str, int] = {"project": 0, "split": 0}


def _toy_split(mean, scale, old_mean, old_scale, *, full):
    """(‖μ − μ_o‖², ‖σ − σ_o‖²): Euclidean in mean and std, diagonal only."""
    CALLS["split"] += 1
    return (mean - old_mean).square().sum(-1), (scale - old_scale).square().sum(-1)


def _toy_mean_part(mean, old_mean, old_scale, *, full):
    return (mean - old_mean).square().sum(-1)


def _shrink(x, old, distance, bound):
    """(x + ω old)/(1 + ω) with ω = sqrt(d/ε) − 1 where d > ε: d lands on ε exactly."""
    omega = (torch.sqrt(distance.clamp_min(bound) / bound) - 1).unsqueeze(-1)  # no sqrt'(0)
    return (x + omega * old) / (1 + omega)


def _toy_project(mean, scale, old_mean, old_scale, *, mean_bound, cov_bound):
    CALLS["project"] += 1
    check_projection_args(mean, scale, old_mean, old_scale, mean_bound, cov_bound)
    d_mean, d_cov = _toy_split(mean, scale, old_mean, old_scale, full=False)
    return _shrink(mean, old_mean, d_mean, mean_bound), _shrink(scale, old_scale, d_cov, cov_bound)


def _toy(scale_prec: bool) -> TrustRegion:
    return TrustRegion("toy", _toy_project, _toy_split, _toy_mean_part, measure="toy")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "toy", None)  # removed again after the test
    register_trust_region("toy", _toy)
    CALLS.update(project=0, split=0)
    yield


def test_unknown_names_raise_and_names_come_from_the_registry(toy):
    assert projection_names()[:4] == ("kl", "frobenius", "wasserstein", "none")
    assert "toy" in projection_names()
    with pytest.raises(ValueError, match="projection must be one of .*'toy'.*got 'toyy'"):
        registry.get_trust_region("toyy")
    with pytest.raises(ValueError, match="`projection` is 'toyy'"):
        small_config(projection="toyy").validate()


def test_loss_metrics_and_plot_use_a_registered_projection(toy, ray_local, tmp_path):
    config = small_config(projection="toy", mean_bound=0.01, cov_bound=0.001, lr=3e-3).env_runners(
        num_env_runners=0
    )  # everything in this process, where "toy" is registered
    algo = config.build_algo()
    try:
        results = [algo.train() for _ in range(2)]
    finally:
        algo.stop()
    metrics = results[-1]["learners"]["default_policy"]
    assert CALLS["project"] > 0 and CALLS["split"] > 0
    # the loss's projected policy, measured by the toy split, sits inside the toy bounds
    assert 0 < metrics["mean_constraint_max"] <= 0.01 * (1 + 1e-5)
    assert 0 < metrics["cov_constraint_max"] <= 0.001 * (1 + 1e-5)
    assert metrics["mean_projected_frac"] > 0  # lr 3e-3 leaves the region, so it projects
    # the real step is measured in the toy measure too; the written-back std (the toy
    # projection of the updated one) is inside its bound
    assert StepMeasure.of(config).region.name == "toy"
    assert 0 < metrics["policy_step_cov_part_max"] <= 0.001 * (1 + 1e-4)

    trial = tmp_path / "toy_trial"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"projection": "toy", "mean_bound": 0.01}))
    (trial / "result.json").write_text("\n".join(json.dumps(r, default=str) for r in results))
    assert _bound({"projection": "toy", "mean_bound": 0.01}, "kl") is None  # not a KL bound
    assert _bound({"projection": "toy", "mean_bound": 0.01}, "mean_bound") == 0.01
    assert plot_command([str(trial)], str(tmp_path / "toy.png")) == 0
    assert (tmp_path / "toy.png").stat().st_size > 0
