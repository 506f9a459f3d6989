"""MediaPipe Hands: landmark order, pixel conversion, confidence, handedness (pure functions)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from hand_lib.mano.joints import KEYPOINT_NAMES
from hand_lib.pseudo.detector import Detection, detect_all
from hand_lib.pseudo.labels import read_hanco_label
from hand_lib.pseudo.mediapipe import (
    MEDIAPIPE_LANDMARK_NAMES,
    MEDIAPIPE_TO_HAND_LIB,
    MediaPipeConfidenceConfig,
    MediaPipeHand,
    MediaPipeHands,
    detection_from_hands,
    landmark_confidence,
    landmarks_to_pixels,
    select_hand,
)
from hand_lib.pseudo.mediapipe_cli import label_folder

_MEDIAPIPE_FINGER = {"thumb": "THUMB", "index": "INDEX_FINGER", "middle": "MIDDLE_FINGER",
                     "ring": "RING_FINGER", "pinky": "PINKY"}


def test_mediapipe_order_is_hand_lib_order():
    assert MEDIAPIPE_TO_HAND_LIB == tuple(range(21))
    # Same finger and same position along it, joint by joint.
    for ours, theirs in zip(KEYPOINT_NAMES, (MEDIAPIPE_LANDMARK_NAMES[i]
                                             for i in MEDIAPIPE_TO_HAND_LIB), strict=True):
        if ours == "wrist":
            assert theirs == "WRIST"
            continue
        finger, part = ours.split("_")
        assert theirs.startswith(_MEDIAPIPE_FINGER[finger] + "_")
        if finger == "thumb":
            assert theirs.endswith({"mcp": "CMC", "pip": "MCP", "dip": "IP", "tip": "TIP"}[part])
        else:
            assert theirs.endswith("_" + part.upper())


def _fake_landmarks(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lm = np.zeros((21, 3))
    lm[:, :2] = rng.uniform(0.3, 0.7, (21, 2))
    lm[:, 2] = rng.normal(0, 0.005, 21)
    return lm


def test_landmarks_to_pixels_uses_pixel_centres():
    lm = _fake_landmarks()
    lm[0] = (0.0, 1.0, 0.02)
    kps, depth = landmarks_to_pixels(lm, width=200, height=100)
    np.testing.assert_allclose(kps[0], [-0.5, 99.5])  # image corner = outer pixel edge
    np.testing.assert_allclose(kps[5], [lm[5, 0] * 200 - 0.5, lm[5, 1] * 100 - 0.5])
    np.testing.assert_allclose(depth[0], 0.02 * 200)
    with pytest.raises(ValueError, match=r"\(21, 3\)"):
        landmarks_to_pixels(lm[:20], 10, 10)


def test_confidence_derivation():
    lm = _fake_landmarks()
    lm[:, 2] = 0.0
    kps, depth = landmarks_to_pixels(lm, 224, 224)
    conf = landmark_confidence(kps, depth, 0.9, 224, 224)
    np.testing.assert_allclose(conf, 0.9)  # flat hand, all inside: the hand's score
    # A landmark outside the image loses confidence, more the farther out.
    size = max(np.ptp(kps[:, 0]), np.ptp(kps[:, 1]))
    kps2 = kps.copy()
    kps2[8] = (-0.5 - 0.05 * size, 100)
    kps2[12] = (300, 100)
    conf2 = landmark_confidence(kps2, depth, 0.9, 224, 224)
    size2 = max(np.ptp(kps2[:, 0]), np.ptp(kps2[:, 1]))  # the hand size includes them
    np.testing.assert_allclose(conf2[8], 0.9 * (1 - 0.05 * size / (0.1 * size2)))
    assert 0 < conf2[8] < 0.9 and conf2[12] == 0.0
    # A landmark well behind the rest of the hand (likely hidden) loses confidence.
    depth2 = depth.copy()
    depth2[16] = 0.5 * size
    conf3 = landmark_confidence(kps, depth2, 0.9, 224, 224, MediaPipeConfidenceConfig())
    np.testing.assert_allclose(conf3[16], 0.9 * np.exp(-1.0))
    assert (conf3[:16] == 0.9).all()


def test_select_hand_handedness_convention():
    hands = [MediaPipeHand(_fake_landmarks(0), "Right", 0.95),
             MediaPipeHand(_fake_landmarks(1), "Left", 0.7)]
    # Unmirrored camera images: MediaPipe's "Left" is the true right hand.
    assert select_hand(hands, "right", image_is_mirrored=False) == 1
    assert select_hand(hands, "right", image_is_mirrored=True) == 0
    assert select_hand(hands, "any") == 0
    assert select_hand(hands[:1], "right") is None
    with pytest.raises(ValueError, match="hand must be"):
        select_hand(hands, "both")


def test_detection_from_hands():
    lm = _fake_landmarks(2)
    det = detection_from_hands([MediaPipeHand(lm, "Left", 0.8)], 224, 224)
    assert det.hand_found and det.keypoints_px.shape == (21, 2)
    assert (det.confidence > 0).all() and (det.confidence <= 0.8).all()
    none = detection_from_hands([], 224, 224)
    assert not none.hand_found and (none.confidence == 0).all()
    wrong_hand = detection_from_hands([MediaPipeHand(lm, "Right", 0.8)], 224, 224)
    assert not wrong_hand.hand_found


class _ConstantDetector:
    def detect(self, image: np.ndarray) -> Detection:
        if image.mean() > 0:
            return Detection(np.ones((21, 2)), np.full(21, 0.5), True)
        return Detection.not_found()


def test_detect_all_stacks_results():
    images = [np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 9, np.uint8)]
    dets = detect_all(_ConstantDetector(), images, progress=False)
    assert dets.keypoints_px.shape == (2, 21, 2)
    assert dets.hand_found.tolist() == [False, True]
    assert dets.detection_rate == 0.5


def test_label_folder_with_any_detector_resumes(tmp_path):
    from PIL import Image

    for cam, value in ((0, 0), (1, 200)):
        d = tmp_path / "rgb_merged" / "0001" / f"cam{cam}"
        d.mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(d / "00000002.jpg")
    (tmp_path / "rgb_merged" / "0001" / "notes").mkdir()  # ignored: not cam<k>
    out = label_folder(tmp_path, image_dir="rgb_merged", detector=_ConstantDetector(),
                       progress=False)
    assert (out["labelled"], out["hands_found"], out["detection_rate"]) == (2, 1, 0.5)
    assert out["per_camera"] == {"cam0": 0.0, "cam1": 1.0}
    _, conf = read_hanco_label(tmp_path / "rgb_2D_keypoints" / "0001" / "cam1" / "00000002.json")
    np.testing.assert_allclose(conf, 0.5)
    again = label_folder(tmp_path, image_dir="rgb_merged", detector=_ConstantDetector(),
                         progress=False)
    assert again["labelled"] == 0 and again["skipped_existing"] == 2
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        label_folder(tmp_path, image_dir="rgb", detector=_ConstantDetector())


_HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None


# The real detector is tested in tests/test_pseudo_mediapipe_real.py (runs in the side venv).
@pytest.mark.skipif(_HAS_MEDIAPIPE, reason="mediapipe is installed here")
def test_missing_mediapipe_gives_install_instructions():
    with pytest.raises(ImportError, match=r"mediapipe_env\.sh"):
        MediaPipeHands()


def test_side_venv_modules_do_not_import_torch():
    # The MediaPipe side venv has numpy<2 and no torch: these modules must load without it.
    import subprocess
    import sys

    code = ("import sys, hand_lib.pseudo, hand_lib.pseudo.mediapipe_cli, "
            "hand_lib.pseudo.simulated, hand_lib.pseudo.labels, hand_lib.pseudo.detector; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_exports_resolve():
    import hand_lib.pseudo as pseudo

    for name in pseudo.__all__:
        assert getattr(pseudo, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pseudo.nope  # noqa: B018
