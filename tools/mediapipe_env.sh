#!/usr/bin/env bash
# Create the side environment for the MediaPipe Hands detector and (optionally) run the labeller.
#
# Why a second venv: the last mediapipe wheels that bundle the hand models (palm_detection_*.tflite,
# hand_landmark_*.tflite, used by the legacy `mediapipe.solutions.hands`) are the 0.10.x line up
# to 0.10.21, and those require numpy<2; the project venv pins numpy 2. Newer wheels ship no hand
# model and need a separately downloaded `hand_landmarker.task`. This venv holds mediapipe 0.10.21
# + numpy<2 (+ pytest) + hand_lib installed without dependencies; the labeller it runs
# (python -m hand_lib.pseudo.mediapipe_cli) imports numpy, Pillow and tqdm only, not torch.
# Everything installs from PyPI; after that nothing needs the network.
#
# Usage:
#   tools/mediapipe_env.sh                      # create/update the venv, print its python
#   tools/mediapipe_env.sh label ROOT [ARGS...] # label a HanCo-layout folder (see --help)
#
# Environment: HAND_MEDIAPIPE_VENV (default <repo>/.venv-mediapipe), PYTHON (a Python 3.9-3.12
# interpreter to build it with; mediapipe 0.10.21 has no wheel for 3.13).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HAND_MEDIAPIPE_VENV:-$root/.venv-mediapipe}"
python_bin="${PYTHON:-python3.11}"
stamp="$venv/.hand_lib-mediapipe-installed"
# pytest: the main suite runs tests/test_pseudo_mediapipe_real.py in this venv.
want="mediapipe==0.10.21 numpy<2 pillow tqdm pytest"
if [ ! -x "$venv/bin/python" ]; then
  echo "[mediapipe-env] creating $venv with $($python_bin --version 2>&1)" >&2
  "$python_bin" -m venv "$venv"
  # Keep the venv out of git without touching the repository's .gitignore.
  echo '*' > "$venv/.gitignore"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[mediapipe-env] installing $want into $venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $want
  "$venv/bin/python" -m pip install -q --no-deps -e "$root"
  # Fail now, not at labelling time, if the wheel lacks the bundled hand models.
  "$venv/bin/python" - <<'PY'
import pathlib, mediapipe
models = pathlib.Path(mediapipe.__file__).parent / "modules"
need = ["palm_detection/palm_detection_full.tflite", "hand_landmark/hand_landmark_full.tflite"]
missing = [m for m in need if not (models / m).is_file()]
if missing:
    raise SystemExit(f"mediapipe {mediapipe.__version__} lacks bundled hand models: {missing}")
PY
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "label" ]; then
  shift
  exec "$venv/bin/python" -m hand_lib.pseudo.mediapipe_cli "$@"
fi
echo "$venv/bin/python"
