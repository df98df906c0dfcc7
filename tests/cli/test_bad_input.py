"""Bad command-line input: one line naming the problem, exit code 2, nothing written.

The cases call the CLI's ``main`` in this process (each subprocess would spend most of
its time importing Ray and torch); ``test_the_console_script_exits_2`` pins the same
through the installed ``rllib-trl`` process for one file and one flag case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rllib_trl.cli.main import main

GOOD = "x:\n  run: TRPL\n  env: Hopper-v5\n"
CASES = {
    "missing_file": (None, "experiment file not found"),
    "malformed_yaml": ("x:\n  run: TRPL\n  config: {mean_bound: [1, 2\n", "is not valid YAML at line"),
    "unknown_top_key": (GOOD + "  stopp: {}\n", "unknown key 'stopp'"),
    "unknown_algorithm": ("x:\n  run: TRPLX\n  env: Hopper-v5\n", "unknown algorithm 'run: TRPLX'"),
    "unknown_env": ("x:\n  run: TRPL\n  env: Hoppa-v5\n", "unknown env 'Hoppa-v5'"),
    "unknown_config_key": (GOOD + "  config: {mean_bond: 0.1}\n", "unknown config key 'mean_bond'"),
    "wrong_type": (GOOD + "  config: {mean_bound: abc}\n", "'mean_bound' must be a number"),
    "negative_bound": (GOOD + "  config: {cov_bound: -0.1}\n", "`cov_bound` is -0.1"),
    "unknown_projection": (GOOD + "  config: {projection: kll}\n", "`projection` is 'kll'"),
    "bad_env_config": (
        GOOD + "  config: {env_config: {no_such_kwarg: 1}}\n",
        "could not be created with env_config",
    ),
    "framework_tf": (GOOD + "  config: {framework: tf}\n", "'framework' is 'tf'; this installation"),
    "mujoco_v2_env": ("x:\n  run: TRPL\n  env: HalfCheetah-v2\n", "use 'HalfCheetah-v5'"),
    "old_stack_model_option": (GOOD + "  config: {model: {use_lstm: true}}\n", "'model.use_lstm'"),
    "discrete_actions": ("x:\n  run: TRPL\n  env: CartPole-v1\n", "needs continuous (Box) actions"),
    "bad_grid_value": (
        GOOD + "  config: {mean_bound: {grid_search: [0.1, -1.0]}}\n",
        "`mean_bound` is -1.0",
    ),
}


def _cli(*args: str, cwd: Path, capfd, monkeypatch) -> tuple[int, str]:
    """The exit code and stderr of ``rllib-trl ARGS`` run in ``cwd`` (in this process;
    stderr captured at the file descriptor, so C-level writes count too)."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["rllib-trl", *args])
    capfd.readouterr()
    code = main(list(args))
    return code, capfd.readouterr().err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_experiment_file(case, tmp_path, capfd, monkeypatch):
    text, message = CASES[case]
    path = tmp_path / "exp.yaml"
    if text is not None:
        path.write_text(text)
    storage = tmp_path / "results"
    code, err = _cli(
        "train",
        "file",
        str(path),
        "--storage-path",
        str(storage),
        cwd=tmp_path,
        capfd=capfd,
        monkeypatch=monkeypatch,
    )
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rllib-trl: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not storage.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--run", "TRPL", "--env", "Hopper-v5", "--config", "{bad"], "--config is not valid JSON"),
        (["train", "--run", "TRPL", "--env", "Hopper-v5", "--stop", "[1]"], "--stop must be a JSON object"),
        (["train", "--run", "TRPL"], "use 'rllib-trl train file PATH.yaml'"),
        (["evaluate", "/nonexistent/checkpoint"], "not an RLlib algorithm checkpoint"),
        (["plot", "/nonexistent/results"], "results folder not found"),
    ],
)
def test_bad_flags(args, message, tmp_path, capfd, monkeypatch):
    code, err = _cli(*args, cwd=tmp_path, capfd=capfd, monkeypatch=monkeypatch)
    assert code == 2, err
    assert err.strip().startswith("rllib-trl: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "file", "exp.yaml", "--storage-path", "results"], "could not be created with env_config"),
        (["train", "--run", "TRPL", "--env", "Hopper-v5", "--stop", "[1]"], "--stop must be a JSON object"),
    ],
)
def test_the_console_script_exits_2(args, message, tmp_path):
    """The installed ``rllib-trl`` process itself: exit status 2, one line, nothing written."""
    (tmp_path / "exp.yaml").write_text(CASES["bad_env_config"][0])  # one that builds the env
    script = Path(sys.executable).with_name("rllib-trl")
    out = subprocess.run([str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rllib-trl: error: ") and message in lines[0], out.stderr
    assert not (tmp_path / "results").exists()
