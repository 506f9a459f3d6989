#!/usr/bin/env bash
# The test suite. Creates .venv on first use (pinned requirements), then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k mano -x
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap_venv.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0
python -m pytest "$@"
