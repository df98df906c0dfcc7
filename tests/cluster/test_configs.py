"""The cluster configs are valid for the tools that read them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("name", ["aws.yaml", "onprem.yaml"])
def test_launcher_config_passes_ray_schema(name):
    config = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(config))  # Ray's own schema, as `ray up` checks it


@pytest.mark.parametrize("name", ["aws.yaml", "onprem.yaml"])
def test_launcher_keeps_auth_and_dashboard_private(name):
    text = (CLUSTER / name).read_text()
    assert "RAY_AUTH_MODE" not in text  # token authentication stays on
    config = yaml.safe_load(text)
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in text
    assert any("pip install torch==2.13.0" in c for c in config["setup_commands"])


def test_aws_places_env_runners_and_learners():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    types = config["available_node_types"]
    assert types["cpu_worker"]["resources"]["env_runner_node"] > 0
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert config["head_node_type"] in types


def test_kuberay_rayjob_has_the_fields_kuberay_reads():
    job = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("rllib-trl train file ")
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    for group in [head, *cluster["workerGroupSpecs"]]:
        container = group["template"]["spec"]["containers"][0]
        assert container["image"] and container["resources"]["limits"]["cpu"]
        assert "/results" in [m["mountPath"] for m in container["volumeMounts"]]
    workers = cluster["workerGroupSpecs"][0]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert "env_runner_node" in workers["rayStartParams"]["resources"]
    assert "RAY_AUTH_MODE" not in (CLUSTER / "kuberay-rayjob.yaml").read_text()
