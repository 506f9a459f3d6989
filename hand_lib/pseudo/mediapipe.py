"""MediaPipe Hands as a 2D keypoint detector, offline, plus its pure conversion functions.

Which wheel: the mediapipe wheels that bundle the hand models (``palm_detection_*.tflite``,
``hand_landmark_*.tflite`` under ``mediapipe/modules/``) are the 0.10.x line up to 0.10.21;
they run the legacy ``mediapipe.solutions.hands`` graph with no network access. Later wheels
(0.10.30+, 1.x) ship no hand model: their Tasks API needs a ``hand_landmarker.task`` file
downloaded separately. 0.10.21 requires numpy<2 while the project venv pins numpy 2, so it
lives in a side venv made by ``tools/mediapipe_env.sh`` (extra ``pseudo-mediapipe`` in
pyproject names the same pins), and ``python -m hand_lib.pseudo.mediapipe_cli`` labels a
HanCo-layout folder from there. This module and the CLI import only NumPy (torch is not
needed in the side venv).

Joint order: MediaPipe's 21 hand landmarks are WRIST, THUMB_CMC, THUMB_MCP, THUMB_IP,
THUMB_TIP, INDEX_FINGER_MCP, _PIP, _DIP, _TIP, then MIDDLE_FINGER, RING_FINGER and PINKY the
same way: wrist, then each finger from base to tip in the order thumb, index, middle, ring,
pinky. That is hand_lib's (FreiHAND/OpenPose) order, so :data:`MEDIAPIPE_TO_HAND_LIB` is the
identity; it is built from the names (finger, position along the finger) so that the claim is
checked rather than assumed, and a test compares it with the installed wheel's enum.

Coordinates: MediaPipe's normalised ``x, y`` run from 0 at the left/top image edge to 1 at the
right/bottom edge; hand_lib puts pixel centres at integer coordinates, so
``u = x * W - 0.5``, ``v = y * H - 0.5``. ``z`` is depth relative to the wrist on roughly the
scale of ``x`` (smaller = closer to the camera); ``z * W`` is in pixels.

Confidence: the legacy solution exposes no per-landmark score, only per hand the handedness
classification score. :func:`landmark_confidence` derives one per joint (a documented
heuristic): the hand's score, lowered for landmarks outside the image and for landmarks that
lie well behind the rest of the hand (likely hidden by it).

Handedness: MediaPipe labels handedness as if the image were mirrored (selfie camera). For
ordinary, unmirrored camera images (HanCo, FreiHAND) a right hand is labelled "Left";
:func:`select_hand` handles that with ``image_is_mirrored``.

Measured on the synthetic HanCo-layout set (``python -m hand_lib.data.synthetic --profile
quick``: 3,072 images of the procedural open hand, 224 x 224, 8 views; mediapipe 0.10.21,
``model_complexity=1``, ``min_detection_confidence=0.3``, CPU, about 28 images/s):

========================  ===========  ===========
images                    ``rgb``      ``rgb_merged``
========================  ===========  ===========
any hand found            31.0%        18.7%
right hand found          22.1%        12.5%
(labels read mirrored)    9.0%         6.2%
========================  ===========  ===========

The unmirrored reading of the labels is the right one (it finds the right hand 2.5x as often
as the mirrored reading). Where the right hand is found, the mean 2D error is 0.12-0.13 hand
boxes (median 8-9 px), near the ~10% quoted for OpenPose on HanCo; the derived confidence correlates
only weakly with the error (Spearman -0.14 to -0.20). Hands reported as left hands are
mostly right hands too, a little less accurate (median 0.10 vs 0.09 hand boxes):
``--hand any`` in the CLI keeps them. The low rate says the procedural hand does not look real
enough to MediaPipe's palm detector; no real photographs were tried here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hand_lib.pseudo.detector import Detection

__all__ = [
    "MEDIAPIPE_LANDMARK_NAMES",
    "MEDIAPIPE_TO_HAND_LIB",
    "MediaPipeConfidenceConfig",
    "MediaPipeHand",
    "MediaPipeHands",
    "detection_from_hands",
    "landmark_confidence",
    "landmarks_to_pixels",
    "select_hand",
]

MEDIAPIPE_LANDMARK_NAMES: tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)  # fmt: skip
"""``mediapipe.solutions.hands.HandLandmark`` names, in MediaPipe's index order."""

_FINGERS = ("THUMB", "INDEX", "MIDDLE", "RING", "PINKY")
# Position along the finger, base (1) to tip (4). MediaPipe names the thumb's joints
# CMC/MCP/IP/TIP and FreiHAND calls them mcp/pip/dip/tip, but both are the same four points.
_THUMB_POSITION = {"CMC": 1, "MCP": 2, "IP": 3, "TIP": 4}
_FINGER_POSITION = {"MCP": 1, "PIP": 2, "DIP": 3, "TIP": 4}


def _mediapipe_key(name: str) -> tuple[str, int]:
    if name == "WRIST":
        return ("WRIST", 0)
    finger, part = name.split("_")[0], name.split("_")[-1]
    table = _THUMB_POSITION if finger == "THUMB" else _FINGER_POSITION
    return (finger, table[part])


def _hand_lib_key(index: int) -> tuple[str, int]:
    # hand_lib order: 0 wrist, then fingers thumb..pinky with 4 points each, base to tip.
    if index == 0:
        return ("WRIST", 0)
    return (_FINGERS[(index - 1) // 4], (index - 1) % 4 + 1)


def _build_map() -> tuple[int, ...]:
    lookup = {_mediapipe_key(n): i for i, n in enumerate(MEDIAPIPE_LANDMARK_NAMES)}
    if len(lookup) != 21:
        raise AssertionError("MediaPipe landmark names do not give 21 distinct joints")
    return tuple(lookup[_hand_lib_key(j)] for j in range(21))


MEDIAPIPE_TO_HAND_LIB: tuple[int, ...] = _build_map()
"""``keypoints_hand_lib = landmarks_mediapipe[MEDIAPIPE_TO_HAND_LIB]`` (the identity)."""


@dataclass(frozen=True)
class MediaPipeConfidenceConfig:
    """Parameters of :func:`landmark_confidence` (lengths are fractions of the hand size,
    the longer side of the landmarks' bounding box in pixels).

    Attributes:
        outside_margin: a landmark this far outside the image has confidence 0; confidence
            falls linearly from the image edge to there.
        depth_scale: a landmark ``d`` behind the hand's median depth is scaled by
            ``exp(-d / (depth_scale * hand size))``.
    """

    outside_margin: float = 0.1
    depth_scale: float = 0.5


@dataclass(frozen=True)
class MediaPipeHand:
    """One hand as MediaPipe reports it, in plain arrays.

    Attributes:
        landmarks: (21, 3) normalised ``x, y`` in [0, 1] of the image width/height and
            relative depth ``z`` (x's scale), MediaPipe order.
        label: handedness label as reported, ``"Left"`` or ``"Right"`` (mirrored convention).
        score: handedness score in [0, 1].
    """

    landmarks: np.ndarray
    label: str
    score: float


def landmarks_to_pixels(
    landmarks: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe normalised landmarks -> hand_lib pixels.

    Args:
        landmarks: (21, 3) normalised ``x, y, z`` in MediaPipe order.
        width, height: image size, pixels.

    Returns:
        keypoints (21, 2) pixels in hand_lib order (pixel centres at integers) and
        depth (21,) relative depth in pixels (larger = farther from the camera).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (21, 3):
        raise ValueError(f"landmarks must have shape (21, 3), got {lm.shape}")
    lm = lm[list(MEDIAPIPE_TO_HAND_LIB)]
    kps = np.stack([lm[:, 0] * width - 0.5, lm[:, 1] * height - 0.5], axis=1)
    return kps, lm[:, 2] * width


def landmark_confidence(
    keypoints_px: np.ndarray, depth_px: np.ndarray, hand_score: float, width: int, height: int,
    config: MediaPipeConfidenceConfig = MediaPipeConfidenceConfig(),
) -> np.ndarray:
    """Per-joint confidence derived from a MediaPipe hand (see the module docstring).

    ``confidence = hand_score * inside * hidden`` where ``inside`` falls linearly from 1 at
    the image border to 0 at ``outside_margin`` hand sizes outside it, and ``hidden`` is
    ``exp(-max(0, depth - median depth) / (depth_scale * hand size))``.

    Args:
        keypoints_px: (21, 2) pixels.
        depth_px: (21,) relative depth, pixels (larger = farther).
        hand_score: the hand's score in [0, 1].
        width, height: image size, pixels.
        config: the heuristic's parameters.

    Returns:
        (21,) float64 in [0, 1].
    """
    kps = np.asarray(keypoints_px, dtype=np.float64)
    depth = np.asarray(depth_px, dtype=np.float64)
    size = max(float(np.ptp(kps[:, 0])), float(np.ptp(kps[:, 1])), 1.0)
    lo = np.array([-0.5, -0.5])
    hi = np.array([width - 0.5, height - 0.5])
    outside = np.maximum(np.maximum(lo - kps, kps - hi), 0.0).max(axis=1)  # pixels past edge
    inside = np.clip(1.0 - outside / max(config.outside_margin * size, 1e-9), 0.0, 1.0)
    behind = np.maximum(depth - np.median(depth), 0.0)
    hidden = np.exp(-behind / max(config.depth_scale * size, 1e-9))
    return np.clip(float(hand_score) * inside * hidden, 0.0, 1.0)


def select_hand(
    hands: Sequence[MediaPipeHand], hand: str = "right", image_is_mirrored: bool = False
) -> int | None:
    """Index of the wanted hand among MediaPipe's hands, or None.

    Args:
        hands: the hands MediaPipe reported.
        hand: ``"right"``, ``"left"`` or ``"any"`` (the highest score whatever its label).
        image_is_mirrored: True for selfie-style (mirrored) images, where MediaPipe's label
            is the true handedness; False (ordinary camera images) swaps the labels.

    Returns:
        The index of the matching hand with the highest score, None if there is none.
    """
    if hand not in ("right", "left", "any"):
        raise ValueError(f"hand must be 'right', 'left' or 'any', got {hand!r}")
    best, best_score = None, -1.0
    for i, h in enumerate(hands):
        label = h.label.lower()
        if label not in ("left", "right"):
            raise ValueError(f"unexpected handedness label {h.label!r}")
        true_label = label if image_is_mirrored else {"left": "right", "right": "left"}[label]
        if hand != "any" and true_label != hand:
            continue
        if h.score > best_score:
            best, best_score = i, h.score
    return best


def detection_from_hands(
    hands: Sequence[MediaPipeHand], width: int, height: int, *, hand: str = "right",
    image_is_mirrored: bool = False,
    config: MediaPipeConfidenceConfig = MediaPipeConfidenceConfig(),
) -> Detection:
    """Turn MediaPipe's hands for one image into a :class:`Detection` (pure function).

    Args:
        hands: the hands MediaPipe reported (possibly none).
        width, height: image size, pixels.
        hand, image_is_mirrored: which hand to keep, see :func:`select_hand`.
        config: confidence heuristic parameters.

    Returns:
        The chosen hand's keypoints and confidences, or :meth:`Detection.not_found`.
    """
    i = select_hand(hands, hand, image_is_mirrored)
    if i is None:
        return Detection.not_found()
    kps, depth = landmarks_to_pixels(hands[i].landmarks, width, height)
    conf = landmark_confidence(kps, depth, hands[i].score, width, height, config)
    return Detection(kps, conf, True)


_INSTALL_HINT = (
    "MediaPipe Hands needs mediapipe<=0.10.21 (the last wheels that bundle the hand models), "
    "which requires numpy<2 and so cannot live in the project venv. Create the side venv with "
    "`tools/mediapipe_env.sh` and run `tools/mediapipe_env.sh label <hanco_root>` (or "
    "`.venv-mediapipe/bin/python -m hand_lib.pseudo.mediapipe_cli --help`); in an environment "
    "with numpy<2: pip install -e '.[pseudo-mediapipe]'."
)


def _import_hands_solution() -> Any:
    try:
        import mediapipe as mp
    except ImportError as e:
        raise ImportError(f"cannot import mediapipe ({e}). {_INSTALL_HINT}") from e
    solutions = getattr(mp, "solutions", None)
    if solutions is None or not hasattr(solutions, "hands"):
        version = getattr(mp, "__version__", "?")
        raise ImportError(
            f"mediapipe {version} has no legacy `solutions.hands` with bundled models. "
            f"{_INSTALL_HINT}")
    return solutions.hands


class MediaPipeHands:
    """MediaPipe Hands (legacy solution, bundled models, offline) as a :class:`HandDetector`.

    Args:
        hand: which hand to report (``"right"``, ``"left"``, ``"any"``).
        image_is_mirrored: see :func:`select_hand` (False for HanCo/FreiHAND).
        max_num_hands: hands MediaPipe may report (2 lets the right one be picked when a
            left-looking detection is also present).
        min_detection_confidence: MediaPipe's palm detector threshold.
        model_complexity: 0 (lite) or 1 (full) landmark model.
        confidence: parameters of the per-joint confidence heuristic.

    Raises:
        ImportError: with install instructions when mediapipe (with the legacy solution) is
            not importable.
    """

    def __init__(
        self, *, hand: str = "right", image_is_mirrored: bool = False, max_num_hands: int = 2,
        min_detection_confidence: float = 0.3, model_complexity: int = 1,
        confidence: MediaPipeConfidenceConfig = MediaPipeConfidenceConfig(),
    ) -> None:
        if hand not in ("right", "left", "any"):
            raise ValueError(f"hand must be 'right', 'left' or 'any', got {hand!r}")
        hands_solution = _import_hands_solution()
        self.hand = hand
        self.image_is_mirrored = image_is_mirrored
        self.confidence = confidence
        self._solution = hands_solution.Hands(
            static_image_mode=True, max_num_hands=max_num_hands,
            min_detection_confidence=min_detection_confidence,
            model_complexity=model_complexity)

    def raw_hands(self, image: np.ndarray) -> list[MediaPipeHand]:
        """All hands MediaPipe finds in ``image`` ((H, W, 3) uint8 RGB), as plain arrays."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} "
                             f"{image.dtype}")
        result = self._solution.process(image)
        if not result.multi_hand_landmarks:
            return []
        hands = []
        for lms, handed in zip(result.multi_hand_landmarks, result.multi_handedness,
                                  strict=True):
            arr = np.array([[p.x, p.y, p.z] for p in lms.landmark], dtype=np.float64)
            cls = handed.classification[0]
            hands.append(MediaPipeHand(arr, cls.label, float(cls.score)))
        return hands

    def detect(self, image: np.ndarray) -> Detection:
        """Detect the chosen hand in ``image`` ((H, W, 3) uint8 RGB)."""
        h, w = image.shape[:2]
        return detection_from_hands(self.raw_hands(image), w, h, hand=self.hand,
                                    image_is_mirrored=self.image_is_mirrored,
                                    config=self.confidence)

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._solution.close()

    def __enter__(self) -> MediaPipeHands:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
