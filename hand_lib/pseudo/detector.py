"""The 2D detector interface: image(s) in, (21, 2) pixels + (21,) confidences out.

A detector is any object with ``detect(image) -> Detection``; :func:`detect_all` runs one over
a sequence of images with a progress bar. Keypoints follow hand_lib's order (0 wrist, thumb
1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20) in pixels of the image as given, with
pixel centres at integer coordinates. Confidence 0 means "not detected" (the coordinates of
such a joint are 0); an image where no hand was found has every confidence 0.

NumPy only (no torch), so the MediaPipe side environment can import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Detection", "Detections", "HandDetector", "detect_all"]

NUM_KEYPOINTS = 21


@dataclass(frozen=True)
class Detection:
    """One image's detection.

    Attributes:
        keypoints_px: (21, 2) float64 pixels (x right, y down), hand_lib joint order.
        confidence: (21,) float64 in [0, 1]; 0 = not detected.
        hand_found: False when no hand was found (then every confidence is 0).
    """

    keypoints_px: np.ndarray
    confidence: np.ndarray
    hand_found: bool

    @staticmethod
    def not_found() -> Detection:
        """The "no hand found" result: zeros everywhere."""
        return Detection(np.zeros((NUM_KEYPOINTS, 2)), np.zeros(NUM_KEYPOINTS), False)


@dataclass(frozen=True)
class Detections:
    """Detections of N images, stacked.

    Attributes:
        keypoints_px: (N, 21, 2) float64 pixels.
        confidence: (N, 21) float64 in [0, 1].
        hand_found: (N,) bool.
    """

    keypoints_px: np.ndarray
    confidence: np.ndarray
    hand_found: np.ndarray

    @property
    def detection_rate(self) -> float:
        """Fraction of images with a hand found (NaN for no images)."""
        return float(self.hand_found.mean()) if len(self.hand_found) else float("nan")


@runtime_checkable
class HandDetector(Protocol):
    """What every detector offers."""

    def detect(self, image: np.ndarray) -> Detection:
        """Detect one hand.

        Args:
            image: (H, W, 3) uint8 RGB.
        """
        ...


def detect_all(
    detector: HandDetector, images: Iterable[np.ndarray], *, progress: bool = True,
    total: int | None = None, desc: str = "detecting",
) -> Detections:
    """Run ``detector`` over images, with a tqdm progress bar.

    Args:
        detector: any :class:`HandDetector`.
        images: (H, W, 3) uint8 RGB arrays (a list, or a generator that loads lazily).
        progress: show the bar.
        total: number of images, for the bar when ``images`` has no ``len``.
        desc: bar label.

    Returns:
        :class:`Detections` stacked in input order.
    """
    from tqdm.auto import tqdm

    if total is None and hasattr(images, "__len__"):
        total = len(images)  # type: ignore[arg-type]
    kps, conf, found = [], [], []
    for image in tqdm(images, total=total, desc=desc, disable=not progress):
        det = detector.detect(image)
        kps.append(det.keypoints_px)
        conf.append(det.confidence)
        found.append(det.hand_found)
    if not kps:
        return Detections(np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS)),
                          np.zeros(0, dtype=bool))
    return Detections(np.stack(kps), np.stack(conf), np.asarray(found, dtype=bool))
