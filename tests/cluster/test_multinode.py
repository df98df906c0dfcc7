"""A real two-node Ray cluster on loopback: a head and a worker, each with its own
temp dir and ports, the worker carrying the custom resource that pins EnvRunners.
A short training goes in through `ray job submit`; afterwards only the processes this
test started are stopped, by process group."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _node_args(ports: list[int]) -> list[str]:
    node, obj, agent, agent_grpc, metrics, runtime_env, min_w = ports
    return [
        f"--node-manager-port={node}",
        f"--object-manager-port={obj}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--min-worker-port={min_w}",
        f"--max-worker-port={min_w + 40}",
    ]


class Cluster:
    """Head + worker via `ray start --block` in their own process groups."""

    def __init__(self, tmp: Path):
        self.tmp, self.procs = tmp, []
        # Token auth is switched off for this hand-made loopback cluster only.
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.ports = _free_ports(3)
        self.gcs, self.dashboard = f"127.0.0.1:{self.ports[0]}", f"http://127.0.0.1:{self.ports[1]}"

    def start(self) -> None:
        gcs, dash, client = self.ports
        head = [
            RAY,
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.tmp / 'head'}",
            "--num-cpus=1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
        ] + _node_args(_free_ports(7))
        self._start(head, "head")
        self._wait(lambda: self._nodes() >= 1, "head node")
        worker = [
            RAY,
            "start",
            "--block",
            f"--address={self.gcs}",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.tmp / 'worker'}",
            "--num-cpus=1",
            '--resources={"env_runner_node": 1}',
        ] + _node_args(_free_ports(7))
        self._start(worker, "worker")
        self._wait(lambda: self._nodes() >= 2, "worker node")

    def _start(self, cmd: list[str], name: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True))

    def _nodes(self) -> int:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import ray; ray.init(address='{self.gcs}', logging_level='ERROR');"
                "print(sum(n['Alive'] for n in ray.nodes()))",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def _wait(self, check, what: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"ray start exited while waiting for the {what}: see {self.tmp}")
            if check():
                return
            time.sleep(2)
        raise TimeoutError(f"no {what} after {timeout} s")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to both process groups (worker first); what is left after ``grace_s``
        gets SIGKILL (`ray start --block` outlived SIGTERM by 30 s and by 10 s in the two runs
        timed here, so a long grace only adds to the test time)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + grace_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def cluster():
    # A short path: Ray's unix sockets live below the temp dir (107-byte limit).
    tmp = Path(tempfile.mkdtemp(prefix="trl-", dir="/tmp"))
    c = Cluster(tmp)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_job_submit_runs_env_runners_on_worker(cluster, tmp_path):
    storage = tmp_path / "results"
    config = {
        "num_env_runners": 1,
        "num_envs_per_env_runner": 2,
        "custom_resources_per_env_runner": {"env_runner_node": 1},
        "train_batch_size_per_learner": 512,
        "minibatch_size": 128,
        "num_epochs": 1,
        "evaluation_interval": 0,
    }
    submit = [
        RAY,
        "job",
        "submit",
        f"--address={cluster.dashboard}",
        "--",
        sys.executable,
        "-m",
        "rllib_trl.cli.main",
        "train",
        "file",
        str(ROOT / "tuned_examples/quickstart/hopper-trpl-kl.yaml"),
        "--stop",
        json.dumps({"training_iteration": 2}),
        "--config",
        json.dumps(config),
        "--storage-path",
        str(storage),
    ]
    out = subprocess.run(submit, env=cluster.env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout.lower()

    trials = [p for p in (storage / "hopper-trpl-kl-quickstart").iterdir() if p.name.startswith("TRPL")]
    assert len(trials) == 1 and sorted(trials[0].glob("checkpoint_*"))
    rows = (trials[0] / "result.json").read_text().strip().splitlines()
    assert json.loads(rows[-1])["training_iteration"] == 2

    probe = (
        "import json, ray\n"
        "from ray.util.state import list_actors, list_nodes\n"
        f"addr = '{cluster.dashboard}'\n"
        "nodes = {n.node_id: n.resources_total for n in list_nodes(address=addr, detail=True)}\n"
        "actors = [a for a in list_actors(address=addr, detail=True, limit=1000)\n"
        "    if a.class_name in ('TRPLEnvRunner', 'SingleAgentEnvRunner')]\n"
        "print(json.dumps([('env_runner_node' in nodes.get(a.node_id, {}), a.node_id) for a in actors]))\n"
    )
    placed = subprocess.run(
        [sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True, timeout=120
    )
    assert placed.returncode == 0, placed.stderr[-2000:]
    runners = json.loads(placed.stdout.strip().splitlines()[-1])
    assert runners, "no EnvRunner actor was recorded"
    assert all(on_worker for on_worker, _ in runners), runners
