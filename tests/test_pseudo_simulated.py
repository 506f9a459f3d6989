"""The simulated detector: reproducible, OpenPose-like error statistics, honest confidences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from hand_lib.pseudo.simulated import (
    FINGER_CHAINS,
    SimulatedDetectorConfig,
    hand_box_size,
    simulate_detections,
)


def _open_hand_2d() -> np.ndarray:
    """(21, 2) a flat open right hand in hand_lib order, about 1 unit tall."""
    pts = [(0.0, 0.0)]
    angles = np.deg2rad([-60, -25, -5, 12, 30])
    lengths = [(0.25, 0.2, 0.15, 0.12), (0.45, 0.2, 0.12, 0.1), (0.45, 0.22, 0.14, 0.1),
               (0.42, 0.2, 0.13, 0.1), (0.38, 0.16, 0.1, 0.09)]
    for a, ls in zip(angles, lengths, strict=True):
        r = 0.0
        for length in ls:
            r += length
            pts.append((r * np.sin(a), -r * np.cos(a)))
    return np.array(pts)


@pytest.fixture(scope="module")
def hands() -> np.ndarray:
    """(N, 21, 2) pixels: the open hand at random scales and places."""
    rng = np.random.default_rng(7)
    N = 4000
    scale = rng.uniform(60, 160, N)
    shift = rng.uniform(50, 170, (N, 2))
    return _open_hand_2d()[None] * scale[:, None, None] + shift[:, None] + rng.normal(
        0, 2, (N, 21, 2))


def _errors_in_boxes(det, gt):
    err = np.linalg.norm(det.keypoints_px - gt, axis=-1) / hand_box_size(gt)[:, None]
    return err


def test_reproducible_from_seed(hands):
    a = simulate_detections(hands[:50], rng=3)
    b = simulate_detections(hands[:50], rng=np.random.default_rng(3))
    c = simulate_detections(hands[:50], rng=4)
    np.testing.assert_array_equal(a.keypoints_px, b.keypoints_px)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    assert not np.array_equal(a.keypoints_px, c.keypoints_px)
    kps, conf = a  # tuple-style unpacking
    assert kps.shape == (50, 21, 2) and conf.shape == (50, 21)


def test_default_statistics_resemble_openpose(hands):
    det = simulate_detections(hands, rng=0)
    err = _errors_in_boxes(det, hands)[~det.missing]
    mean, median, p95 = err.mean(), np.median(err), np.percentile(err, 95)
    assert 0.08 < mean < 0.12, mean  # about 10% of the hand box
    assert p95 > 3.0 * median, (p95, median)  # heavy tail
    assert np.percentile(err, 99) > 0.4  # some gross errors
    assert (det.confidence >= 0).all() and (det.confidence <= 1).all()


def test_confidence_falls_with_error(hands):
    det = simulate_detections(hands, rng=1)
    ok = ~det.missing
    rho = spearmanr(det.confidence[ok], _errors_in_boxes(det, hands)[ok])[0]
    assert rho < -0.3, rho


def test_occluded_joints_are_noisier_and_missed_more(hands):
    rng = np.random.default_rng(5)
    visible = rng.random(hands.shape[:2]) < 0.6
    cfg = replace(SimulatedDetectorConfig(), outlier_prob=0.0, swap_prob=0.0, mirror_prob=0.0)
    det = simulate_detections(hands, visible, rng=2, config=cfg)
    err = _errors_in_boxes(det, hands)
    ok = ~det.missing
    assert np.median(err[ok & ~visible]) > 1.8 * np.median(err[ok & visible])
    assert det.missing[~visible].mean() > 5 * det.missing[visible].mean()
    assert det.confidence[ok & ~visible].mean() < det.confidence[ok & visible].mean()


def test_noise_grows_along_the_finger(hands):
    cfg = replace(SimulatedDetectorConfig(), outlier_prob=0.0, swap_prob=0.0, mirror_prob=0.0)
    det = simulate_detections(hands, rng=6, config=cfg)
    err = np.where(det.missing, np.nan, _errors_in_boxes(det, hands))
    per_joint = np.nanmedian(err, axis=0)
    tips = [c[3] for c in FINGER_CHAINS]
    bases = [c[0] for c in FINGER_CHAINS]
    assert per_joint[tips].mean() > 1.3 * per_joint[bases].mean() > per_joint[0]


def test_missing_joints_have_zero_confidence(hands):
    cfg = replace(SimulatedDetectorConfig(), missing_prob=0.1, no_hand_prob=0.05)
    det = simulate_detections(hands, rng=8, config=cfg)
    assert det.missing.any()
    assert (det.confidence[det.missing] == 0).all()
    assert (det.keypoints_px[det.missing] == 0).all()
    assert (det.confidence[~det.missing] > 0).all()
    assert (det.confidence[~det.hand_found] == 0).all()
    assert abs((~det.hand_found).mean() - 0.05) < 0.015
    assert abs(det.missing[det.hand_found].mean() - 0.1) < 0.01


def test_swaps_and_mirrors_happen_at_configured_rate(hands):
    noiseless = SimulatedDetectorConfig(
        noise_std=0.0, outlier_prob=0.0, missing_prob=0.0, missing_prob_occluded=0.0,
        no_hand_prob=0.0, swap_prob=0.2, mirror_prob=0.0)
    det = simulate_detections(hands, rng=9, config=noiseless)
    swapped = det.swapped_fingers[:, 0] >= 0
    assert abs(swapped.mean() - 0.2) < 0.03
    # A swapped pair is two neighbouring fingers, and their keypoints really traded places.
    for n in np.flatnonzero(swapped)[:20]:
        a, b = det.swapped_fingers[n]
        assert b == a + 1
        np.testing.assert_allclose(det.keypoints_px[n, list(FINGER_CHAINS[a])],
                                   hands[n, list(FINGER_CHAINS[b])])
    np.testing.assert_allclose(det.keypoints_px[~swapped], hands[~swapped])
    mirror = replace(noiseless, swap_prob=0.0, mirror_prob=0.3)
    det = simulate_detections(hands, rng=9, config=mirror)
    assert abs(det.mirrored.mean() - 0.3) < 0.03
    n = int(np.flatnonzero(det.mirrored)[0])
    np.testing.assert_allclose(det.keypoints_px[n, list(FINGER_CHAINS[0])],
                               hands[n, list(FINGER_CHAINS[4])])  # thumb <-> pinky


def test_outliers_at_configured_rate_with_low_confidence(hands):
    cfg = replace(SimulatedDetectorConfig(), outlier_prob=0.1)
    det = simulate_detections(hands, rng=10, config=cfg)
    assert abs(det.outlier.mean() - 0.1) < 0.01
    lo, hi = cfg.outlier_confidence
    c = det.confidence[det.outlier]
    assert (c >= lo).all() and (c <= hi).all()


def test_config_validation_and_from_dict():
    with pytest.raises(ValueError, match="swap_prob"):
        SimulatedDetectorConfig(swap_prob=1.5)
    with pytest.raises(ValueError, match="noise_std"):
        SimulatedDetectorConfig(noise_std=-1.0)
    with pytest.raises(ValueError, match="unknown SimulatedDetectorConfig keys.*'noise'"):
        SimulatedDetectorConfig.from_dict({"noise": 0.1})
    cfg = SimulatedDetectorConfig.from_dict({"noise_std": 0.05, "outlier_confidence": [0.1, 0.2]})
    assert cfg.noise_std == 0.05 and cfg.outlier_confidence == (0.1, 0.2)


def test_input_checks(hands):
    with pytest.raises(ValueError, match=r"\(N, 21, 2\)"):
        simulate_detections(hands[:, :20])
    with pytest.raises(ValueError, match="visible must have shape"):
        simulate_detections(hands[:3], np.ones((3, 20), bool))
    with pytest.raises(ValueError, match="positive"):
        simulate_detections(hands[:3], hand_box_size_px=np.zeros(3))
