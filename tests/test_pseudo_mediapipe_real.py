"""The real MediaPipe Hands detector and the labelling CLI; runs only where mediapipe imports.

mediapipe 0.10.21 (the last wheel line with bundled hand models) needs numpy<2, so it is not
in the project venv. Run this file in the side venv (NumPy-only imports; the shared conftest
needs torch, hence ``--noconftest``)::

    tools/mediapipe_env.sh   # installs pytest there too
    .venv-mediapipe/bin/python -m pytest tests/test_pseudo_mediapipe_real.py --noconftest -q

The main suite does exactly that in ``tests/test_pseudo_mediapipe_side.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

mp = pytest.importorskip(
    "mediapipe", reason="mediapipe not installed: it needs numpy<2, so it lives in the side venv "
    "made by tools/mediapipe_env.sh; run this file there (see its docstring)")

from hand_lib.pseudo.labels import read_hanco_label  # noqa: E402
from hand_lib.pseudo.mediapipe import MEDIAPIPE_LANDMARK_NAMES, MediaPipeHands  # noqa: E402
from hand_lib.pseudo.mediapipe_cli import label_folder, main  # noqa: E402


def test_installed_enum_matches_our_names():
    names = tuple(lm.name for lm in mp.solutions.hands.HandLandmark)
    assert names == MEDIAPIPE_LANDMARK_NAMES


def test_blank_image_finds_no_hand():
    with MediaPipeHands() as detector:
        det = detector.detect(np.zeros((224, 224, 3), np.uint8))
    assert not det.hand_found and (det.confidence == 0).all()
    with MediaPipeHands() as detector, pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((224, 224, 3), np.float32))


def test_cli_labels_a_folder_and_resumes(tmp_path, capsys):
    from PIL import Image

    for cam in range(2):
        d = tmp_path / "rgb" / "0003" / f"cam{cam}"
        d.mkdir(parents=True)
        Image.fromarray(np.full((64, 64, 3), 40 * cam, np.uint8)).save(d / "00000007.jpg")
    summary = label_folder(tmp_path, progress=False)
    assert summary["labelled"] == 2 and summary["hands_found"] == 0
    kps, conf = read_hanco_label(tmp_path / "rgb_2D_keypoints" / "0003" / "cam1" /
                                 "00000007.json")
    assert kps.shape == (21, 2) and (conf == 0).all()
    assert main([str(tmp_path), "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["labelled"] == 0 and again["skipped_existing"] == 2
