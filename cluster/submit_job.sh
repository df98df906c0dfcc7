#!/usr/bin/env bash
# Submit a training to a running Ray cluster as a Ray job.
#   RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit_job.sh tuned_examples/hopper/hopper-trpl-kl.yaml /shared/results [extra CLI flags]
# RAY_ADDRESS points at the job API (through an SSH tunnel or port-forward: it is not
# opened to the internet). With token auth on (the default), `ray job submit` uses the
# token from ~/.ray/auth_token or RAY_AUTH_TOKEN, as for every other Ray command.
set -euo pipefail
yaml=${1:?experiment YAML}
storage=${2:?storage path every node can reach}
shift 2
exec ray job submit --working-dir . \
    --runtime-env-json '{"excludes": [".venv", ".git", "benchmarks/learning/runs"]}' \
    -- rllib-trl train file "$yaml" --storage-path "$storage" "$@"
