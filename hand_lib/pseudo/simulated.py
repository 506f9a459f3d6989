"""A simulated 2D detector: ground-truth projections corrupted the way real detectors fail.

For synthetic data, where the true 2D keypoints are known, :func:`simulate_detections` makes
pseudo labels whose error statistics resemble OpenPose's on HanCo: a mean error of about 10%
of the hand box with a heavy tail. The corruption, per image and joint (all sizes are
fractions of the hand box, the longer side of the tight box around the 21 true keypoints):

1. Noise: Gaussian, per-coordinate standard deviation
   ``noise_std * (1 + noise_growth * link) * (occluded_factor if occluded) * difficulty``,
   where ``link`` counts the joints from the wrist along the finger (0 wrist, 1 finger base,
   ..., 4 tip) and ``difficulty`` is a per-image log-normal factor with median 1 (some images
   are harder than others: this spreads the errors and thickens the tail).
2. Finger swaps: with probability ``swap_prob`` per image, two neighbouring fingers (thumb-
   index, index-middle, middle-ring or ring-pinky) exchange their four keypoints; with
   probability ``mirror_prob`` the left/right-hand confusion swaps the labels of the whole
   hand (thumb <-> pinky, index <-> ring). Detectors are confidently wrong here: the
   confidence is that of the noise alone.
3. Gross outliers: with probability ``outlier_prob`` per joint the keypoint lands uniformly in
   a square of side ``outlier_range`` hand boxes around the hand's centre, with a low
   confidence drawn uniformly from ``outlier_confidence``.
4. Missing joints: with probability ``missing_prob`` (``missing_prob_occluded`` for occluded
   joints) a joint is not detected; with probability ``no_hand_prob`` the whole hand is
   missed. Missing joints have confidence 0 and coordinates 0 (OpenPose's convention).
5. Confidence: ``clip(exp(-e / confidence_scale) * exp(N(0, confidence_noise)), min, 1)``
   with ``e`` the joint's noise error in hand boxes, so confidence falls with the actual error.

Everything is drawn from one ``numpy.random.Generator`` in a fixed order whatever the
configuration, so a seed reproduces the output exactly. NumPy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "FINGER_CHAINS",
    "SimulatedDetections",
    "SimulatedDetectorConfig",
    "hand_box_size",
    "simulate_detections",
]

NUM_KEYPOINTS = 21

FINGER_CHAINS: tuple[tuple[int, int, int, int], ...] = tuple(
    (1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f) for f in range(5)
)
"""Keypoint indices of thumb, index, middle, ring, pinky, base to tip."""

_LINK = np.array([0] + [1, 2, 3, 4] * 5, dtype=np.float64)  # joints from the wrist
_NEIGHBOUR_PAIRS = ((0, 1), (1, 2), (2, 3), (3, 4))  # fingers that can be swapped
_MIRROR = np.array([0] + [j for f in (4, 3, 2, 1, 0) for j in FINGER_CHAINS[f]])


@dataclass(frozen=True)
class SimulatedDetectorConfig:
    """Parameters of the simulated detector (lengths in hand boxes, probabilities in [0, 1]).

    The defaults give, on fully visible hands, a mean error over detected joints of about
    0.10 hand boxes, a median of about 0.07 and a 95th percentile about 4x the median
    (OpenPose on HanCo: about 10% of the hand box, heavy-tailed). Occlusion raises the error.

    Attributes:
        noise_std: per-coordinate noise standard deviation at the wrist of a visible joint.
        noise_growth: relative growth of the noise per link along the finger (tip = 4 links).
        occluded_factor: noise multiplier for occluded joints.
        difficulty_sigma: standard deviation of the per-image log-normal noise multiplier.
        swap_prob: per image, probability that two neighbouring fingers are swapped.
        mirror_prob: per image, probability of a left/right hand confusion (finger labels
            mirrored: thumb <-> pinky, index <-> ring).
        outlier_prob: per joint, probability of a gross outlier.
        outlier_range: side of the square (centred on the hand) outliers fall in.
        outlier_confidence: (low, high) uniform range of an outlier's confidence.
        missing_prob: per visible joint, probability of not being detected.
        missing_prob_occluded: per occluded joint, probability of not being detected.
        no_hand_prob: per image, probability that no hand is found (all confidences 0).
        confidence_scale: error (hand boxes) at which the confidence has fallen to 1/e.
        confidence_noise: standard deviation of the log-normal noise on the confidence.
        min_confidence: smallest confidence of a detected joint.
    """

    noise_std: float = 0.042
    noise_growth: float = 0.15
    occluded_factor: float = 2.5
    difficulty_sigma: float = 0.45
    swap_prob: float = 0.03
    mirror_prob: float = 0.01
    outlier_prob: float = 0.02
    outlier_range: float = 1.5
    outlier_confidence: tuple[float, float] = (0.05, 0.4)
    missing_prob: float = 0.01
    missing_prob_occluded: float = 0.15
    no_hand_prob: float = 0.01
    confidence_scale: float = 0.15
    confidence_noise: float = 0.4
    min_confidence: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "outlier_confidence":
                lo, hi = value
                if not 0.0 <= lo <= hi <= 1.0:
                    raise ValueError(f"outlier_confidence must satisfy 0 <= low <= high <= 1, "
                                     f"got {value}")
            elif f.name.endswith("_prob"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be in [0, 1], got {value}")
            elif value < 0 or not np.isfinite(value):
                raise ValueError(f"{f.name} must be finite and non-negative, got {value}")
        if self.confidence_scale <= 0:
            raise ValueError(f"confidence_scale must be positive, got {self.confidence_scale}")
        if not 0.0 < self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulatedDetectorConfig:
        """Build from a mapping (e.g. YAML), rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SimulatedDetectorConfig keys: {sorted(unknown)}; "
                             f"known: {sorted(known)}")
        values = dict(values)
        if "outlier_confidence" in values:
            values["outlier_confidence"] = tuple(values["outlier_confidence"])
        return cls(**values)


@dataclass(frozen=True)
class SimulatedDetections:
    """Output of :func:`simulate_detections`; unpacks as ``keypoints_px, confidence = ...``.

    Attributes:
        keypoints_px: (N, 21, 2) float64 pixels; 0 where missing.
        confidence: (N, 21) float64 in [0, 1]; 0 where missing.
        swapped_fingers: (N, 2) int64 the two fingers (0 thumb .. 4 pinky) that were swapped,
            -1 where none.
        mirrored: (N,) bool, left/right hand confusion applied.
        outlier: (N, 21) bool, gross outlier (of the detected joints).
        missing: (N, 21) bool, joint not detected (includes images with no hand found).
        hand_found: (N,) bool.
    """

    keypoints_px: np.ndarray
    confidence: np.ndarray
    swapped_fingers: np.ndarray
    mirrored: np.ndarray
    outlier: np.ndarray
    missing: np.ndarray
    hand_found: np.ndarray

    def __iter__(self) -> Iterator[np.ndarray]:
        """Tuple-style unpacking of the two main outputs: ``kps, conf = detections``."""
        return iter((self.keypoints_px, self.confidence))


def hand_box_size(keypoints_2d: np.ndarray) -> np.ndarray:
    """Longer side of the tight box around each hand's keypoints.

    Args:
        keypoints_2d: (N, 21, 2) pixels.

    Returns:
        (N,) pixels.
    """
    kps = np.asarray(keypoints_2d, dtype=np.float64)
    return np.maximum(np.ptp(kps[..., 0], axis=-1), np.ptp(kps[..., 1], axis=-1))


def simulate_detections(
    keypoints_2d: np.ndarray,
    visible: np.ndarray | None = None,
    hand_box_size_px: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
    config: SimulatedDetectorConfig = SimulatedDetectorConfig(),
) -> SimulatedDetections:
    """Corrupt true 2D keypoints like a real detector (see the module docstring).

    Args:
        keypoints_2d: (N, 21, 2) true projections, pixels, hand_lib joint order.
        visible: optional (N, 21) bool, False for occluded joints (None = all visible).
        hand_box_size_px: optional (N,) hand box size, pixels (default
            :func:`hand_box_size` of ``keypoints_2d``).
        rng: a ``numpy.random.Generator`` or a seed (same seed, same output).
        config: the detector's parameters.

    Returns:
        :class:`SimulatedDetections`; ``kps, conf = simulate_detections(...)`` works.
    """
    gt = np.asarray(keypoints_2d, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints_2d must have shape (N, 21, 2), got {gt.shape}")
    if not np.isfinite(gt).all():
        raise ValueError("keypoints_2d must be finite")
    N = gt.shape[0]
    if visible is None:
        vis = np.ones((N, NUM_KEYPOINTS), dtype=bool)
    else:
        vis = np.asarray(visible)
        if vis.shape != (N, NUM_KEYPOINTS):
            raise ValueError(f"visible must have shape {(N, NUM_KEYPOINTS)}, got {vis.shape}")
        vis = vis.astype(bool)
    box = hand_box_size(gt) if hand_box_size_px is None else np.asarray(
        hand_box_size_px, dtype=np.float64).reshape(-1)
    if box.shape != (N,):
        raise ValueError(f"hand_box_size_px must have shape ({N},), got {box.shape}")
    if not (np.isfinite(box).all() and (box > 0).all()):
        raise ValueError("hand box sizes must be finite and positive")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    c = config

    # Draw everything up front, in a fixed order, so the stream does not depend on the config.
    difficulty = np.exp(c.difficulty_sigma * gen.standard_normal(N))
    noise = gen.standard_normal((N, NUM_KEYPOINTS, 2))
    u_swap = gen.random(N)
    swap_pair = gen.integers(0, len(_NEIGHBOUR_PAIRS), N)
    u_mirror = gen.random(N)
    u_outlier = gen.random((N, NUM_KEYPOINTS))
    outlier_pos = gen.random((N, NUM_KEYPOINTS, 2)) - 0.5
    outlier_conf = gen.uniform(c.outlier_confidence[0], c.outlier_confidence[1],
                               (N, NUM_KEYPOINTS))
    u_missing = gen.random((N, NUM_KEYPOINTS))
    u_no_hand = gen.random(N)
    conf_noise = gen.standard_normal((N, NUM_KEYPOINTS))

    # 1. Noise, in hand boxes, growing along the finger and with occlusion.
    sigma = c.noise_std * (1.0 + c.noise_growth * _LINK)[None] * difficulty[:, None]
    sigma = np.where(vis, sigma, sigma * c.occluded_factor)
    offset = noise * sigma[..., None]  # (N, 21, 2) hand boxes
    noise_err = np.linalg.norm(offset, axis=-1)
    conf = np.exp(-noise_err / c.confidence_scale) * np.exp(c.confidence_noise * conf_noise)
    kps = gt + offset * box[:, None, None]

    # 2. Finger swaps and hand mirroring move keypoints and their confidences together.
    swapped = u_swap < c.swap_prob
    swapped_fingers = np.full((N, 2), -1, dtype=np.int64)
    order = np.tile(np.arange(NUM_KEYPOINTS), (N, 1))
    for n in np.flatnonzero(swapped):
        a, b = _NEIGHBOUR_PAIRS[swap_pair[n]]
        swapped_fingers[n] = (a, b)
        order[n, list(FINGER_CHAINS[a])] = FINGER_CHAINS[b]
        order[n, list(FINGER_CHAINS[b])] = FINGER_CHAINS[a]
    mirrored = u_mirror < c.mirror_prob
    order[mirrored] = order[mirrored][:, _MIRROR]
    rows = np.arange(N)[:, None]
    kps = kps[rows, order]
    conf = conf[rows, order]

    # 3. Gross outliers.
    outlier = u_outlier < c.outlier_prob
    centre = 0.5 * (gt.min(axis=1) + gt.max(axis=1))  # (N, 2)
    far = centre[:, None] + outlier_pos * c.outlier_range * box[:, None, None]
    kps = np.where(outlier[..., None], far, kps)
    conf = np.where(outlier, outlier_conf, conf)
    conf = np.clip(conf, c.min_confidence, 1.0)

    # 4. Missing joints and missed hands.
    p_missing = np.where(vis, c.missing_prob, c.missing_prob_occluded)
    found = u_no_hand >= c.no_hand_prob
    missing = (u_missing < p_missing) | ~found[:, None]
    kps = np.where(missing[..., None], 0.0, kps)
    conf = np.where(missing, 0.0, conf)
    return SimulatedDetections(
        keypoints_px=kps, confidence=conf, swapped_fingers=swapped_fingers, mirrored=mirrored,
        outlier=outlier & ~missing, missing=missing, hand_found=found)
