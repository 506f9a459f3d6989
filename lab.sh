#!/usr/bin/env bash
# Explore the suite interactively: JupyterLab from the project's environment.
#
#   ./lab.sh            # http://127.0.0.1:8888/lab?token=... (PORT=9000 ./lab.sh for another)
#
# Creates .venv on first use (like run_tests.sh / run_all.sh), registers it as the kernel
# "hand_lib (.venv)", and serves notebooks/ on localhost only, with a fresh random token
# (or $JUPYTER_TOKEN). No browser is opened: open the printed address (over SSH, forward
# the port first: ssh -L 8888:127.0.0.1:8888 host). Extra arguments go to jupyter lab.
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap_venv.sh
python -m ipykernel install --sys-prefix --name hand_lib --display-name "hand_lib (.venv)" >/dev/null
port="${PORT:-8888}"
# the server reads the token from the environment (kept out of the process list)
export JUPYTER_TOKEN="${JUPYTER_TOKEN:-$(python -c 'import secrets; print(secrets.token_hex(24))')}"
echo "[lab] kernel 'hand_lib (.venv)' registered; serving notebooks/ on 127.0.0.1:$port"
echo "[lab] open http://127.0.0.1:$port/lab/tree/90_explore.ipynb?token=$JUPYTER_TOKEN"
extra=()
if [ "$(id -u)" = 0 ]; then extra+=(--allow-root); fi  # containers and CI run as root
exec python -m jupyter lab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port="$port" \
  --ServerApp.port_retries=0 --ServerApp.root_dir=notebooks \
  "${extra[@]}" "$@"
