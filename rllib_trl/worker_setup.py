"""Ray ``worker_process_setup_hook`` of the CLI's local instance (and the tests').

It runs in every worker process before the worker's first task, so it must not import
torch: Ray sets ``OMP_NUM_THREADS`` for an actor only when the actor starts, and torch
fixes its thread count when it is imported. A hook that imported torch (this project's
did, through ``rllib_trl.trpl``) left every EnvRunner and learner with one torch thread per
core: on 2 cores, HalfCheetah-v5 iterations of the tuned example took 3.7 s instead of
1.3 s (``rllib-trl train file tuned_examples/halfcheetah/halfcheetah-trpl-kl.yaml --stop
'{"training_iteration": 12}'``, README "Throughput").
"""

from __future__ import annotations

import logging

from rllib_trl.mujoco_log import route_mujoco_warnings

# `ray.init(runtime_env=RUNTIME_ENV)`: the CLI's local instance, the tests' and the benchmarks'.
RUNTIME_ENV = {"worker_process_setup_hook": "rllib_trl.worker_setup.setup_worker"}


def setup_worker() -> None:
    """The trainable's "Checkpoint successfully created at ..." INFO line (one per
    checkpoint) stays off the console (the final report names the latest checkpoint;
    warnings and errors pass), and MuJoCo's warnings go to logging instead of a
    MUJOCO_LOG.TXT in the working directory."""
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    route_mujoco_warnings()
