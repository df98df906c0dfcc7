#!/usr/bin/env bash
# The long learning tests (pytest marker `slow`): InvertedPendulum-v5 solved within 80k env
# steps, Hopper-v5 above 1000 within its budget. One at a time; run alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -m slow -q "$@"
