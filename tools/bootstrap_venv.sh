#!/usr/bin/env bash
# Create .venv (when missing) and install the pinned environment into it.
# A stamp file holds the hash of requirements.txt + pyproject.toml, so a second run is a no-op
# and any change to either file reinstalls. Sourced by run_tests.sh and run_all.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HAND_VENV:-$root/.venv}"
python_bin="${PYTHON:-python3}"
stamp="$venv/.hand_lib-installed"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv with $($python_bin --version 2>&1)"
  "$python_bin" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[bootstrap] installing pinned requirements into $venv (first run takes a few minutes)"
  "$venv/bin/python" -m pip install -q -r "$root/requirements.txt"
  "$venv/bin/python" -m pip install -q --no-deps -e "$root"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
