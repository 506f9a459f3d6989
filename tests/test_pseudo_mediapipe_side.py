"""The real MediaPipe route, run from the main suite in the MediaPipe side venv (offline).

mediapipe 0.10.21 needs numpy<2, so it lives in ``.venv-mediapipe`` (``tools/mediapipe_env.sh``;
``HAND_MEDIAPIPE_VENV`` names another location). This test renders the open hand with
``hand_lib.render``, saves it as a one-image HanCo-layout folder and labels it with
``python -m hand_lib.pseudo.mediapipe_cli`` in the side venv; then runs
``tests/test_pseudo_mediapipe_real.py`` there. Skipped when the side venv is missing, unless
``HAND_LIB_REQUIRE_MEDIAPIPE=1`` (set by ``.ci/run``, which creates the venv first).

The pose, view and background were chosen offline among a few dozen renders: MediaPipe finds
our flat-shaded hands in only some of them; this one is found as a right hand at several
scales (fill 0.5-0.7), so the test does not hang on one pixel.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_lib.pseudo.labels import read_hanco_label
from hand_lib.pseudo.mediapipe_cli import run_in_side_venv, side_venv_python

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mediapipe_python() -> Path:
    python = side_venv_python()
    if python is None:
        reason = ("no MediaPipe side venv (.venv-mediapipe/bin/python or $HAND_MEDIAPIPE_VENV): "
                  "create it with tools/mediapipe_env.sh (mediapipe 0.10.21 needs numpy<2)")
        if os.environ.get("HAND_LIB_REQUIRE_MEDIAPIPE") == "1":
            pytest.fail(reason + "; HAND_LIB_REQUIRE_MEDIAPIPE=1 demands it")
        pytest.skip(reason)
    return python


# Offline: pip without an index, HTTP(S) through a closed port.
OFFLINE = {"PIP_NO_INDEX": "1", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def _side_env() -> dict[str, str]:
    # This checkout's code (the venv's editable install may point elsewhere), offline.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    env.update(OFFLINE, PYTHONPATH=str(REPO))
    return env


def _rotation(axis: int, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def render_open_hand(size: int = 256, fill: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """The open hand model, flat pose, fingers up, seen from the back of the palm at 0.5 m,
    on a grey-blue background.

    Returns:
        image (size, size, 3) uint8 RGB, keypoints (21, 2) pixels (the true projections).
    """
    from hand_lib.mano import ManoLayer
    from hand_lib.render import MeshRenderer, RenderSettings

    layer = ManoLayer(None)
    with torch.no_grad():
        out = layer(torch.zeros(1, 16, 3))
    centre = out.vertices[0].mean(0)
    R = _rotation(2, 270) @ _rotation(1, 180)
    shift = torch.tensor([0.0, 0.0, 0.5])
    verts = (out.vertices[0] - centre) @ R.T + shift
    kps = (out.keypoints[0] - centre) @ R.T + shift
    extent = float((verts[:, :2].max(0).values - verts[:, :2].min(0).values).max())
    f = fill * size * 0.5 / extent
    K = torch.tensor([[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]])
    height = (verts[:, 1] - verts[:, 1].min()) / (verts[:, 1].max() - verts[:, 1].min())
    colours = (torch.tensor([0.87, 0.66, 0.55]) * (0.8 + 0.2 * height[:, None]))[None]
    lighting = torch.tensor([[0.55, 0.6, 1.0, 0.97, 0.94, 1.0, 1.0, 1.0, -0.4, -0.5, -1.0]])
    renderer = MeshRenderer(RenderSettings(image_size=(size, size), background=(0.35, 0.45, 0.55)))
    with torch.no_grad():
        rgb = renderer.render(verts[None], layer.faces, K, vertex_colors=colours,
                              lighting=lighting).rgb[0]
    image = (rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    proj = kps @ K.T
    return image, (proj[:, :2] / proj[:, 2:]).numpy().astype(np.float64)


def test_mediapipe_cli_labels_a_rendered_hand_offline(mediapipe_python, tmp_path):
    from PIL import Image

    image, truth = render_open_hand()
    root = tmp_path / "one_image"
    (root / "rgb" / "0000" / "cam0").mkdir(parents=True)
    Image.fromarray(image).save(root / "rgb" / "0000" / "cam0" / "00000000.png")
    summary = run_in_side_venv(root, python=mediapipe_python, env=OFFLINE, timeout=300)
    assert summary["labelled"] == 1 and summary["hands_found"] == 1, summary
    kps, conf = read_hanco_label(root / "rgb_2D_keypoints" / "0000" / "cam0" / "00000000.json")
    assert (conf > 0).all() and (conf <= 1).all()
    box = max(np.ptp(truth[:, 0]), np.ptp(truth[:, 1]))
    error = np.linalg.norm(kps - truth, axis=1) / box
    # Found in hand_lib's joint order and pixel convention: a permuted or mirrored order
    # would put the fingertips half a hand away.
    assert error.mean() < 0.12, error.round(3)


def test_real_mediapipe_tests_pass_in_the_side_venv(mediapipe_python, tmp_path):
    has_pytest = subprocess.run([str(mediapipe_python), "-c", "import pytest"],
                                capture_output=True).returncode == 0
    if not has_pytest:
        pytest.skip("the side venv has no pytest (tools/mediapipe_env.sh installs it)")
    proc = subprocess.run(
        [str(mediapipe_python), "-m", "pytest",
         str(REPO / "tests" / "test_pseudo_mediapipe_real.py"),
         "--noconftest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        env=_side_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]

