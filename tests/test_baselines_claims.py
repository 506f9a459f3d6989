"""The mean-hand rows, the results table's intervals and the claims' verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_lib.experiments import (
    Claim,
    MethodErrors,
    best_constant_rotation,
    evaluate_claims,
    mean_hand_keypoints,
    mean_hand_predictions,
    metrics_row,
)
from hand_lib.experiments.evaluate import results_table, write_results_table


def test_best_constant_rotation_recovers_the_rotation() -> None:
    mean = mean_hand_keypoints()
    rng = np.random.default_rng(0)
    R = Rotation.from_rotvec([0.3, -1.2, 2.0]).as_matrix()
    gt = ((mean - mean[:1]) @ R.T + rng.normal(0.0, 0.004, (50, 21, 3))
          + rng.normal(0, 1, (50, 1, 3)))
    found = best_constant_rotation(mean, gt)
    assert np.allclose(found, R, atol=0.02)
    assert np.isclose(np.linalg.det(found), 1.0)
    pred = mean_hand_predictions(gt, mean, found)
    assert np.allclose(pred[:, 0], gt[:, 0])  # placed at each sample's wrist
    rotated = metrics_row(pred, gt)
    identity = metrics_row(mean_hand_predictions(gt, mean), gt)
    assert rotated["MPJPE"] < 10 < identity["MPJPE"]
    assert rotated["PA-MPJPE"] == pytest.approx(identity["PA-MPJPE"])  # alignment ignores R


def test_rows_get_intervals_and_the_table_folds_them(tmp_path) -> None:
    mean = mean_hand_keypoints()
    rng = np.random.default_rng(1)
    gt = mean[None] + rng.normal(0.0, 0.01, (40, 21, 3))
    groups = np.repeat(np.arange(10), 4)
    row = metrics_row(mean_hand_predictions(gt, mean), gt, groups=groups)
    for m in ("MPJPE", "PA-MPJPE", "N-JE"):
        assert row[f"{m} lo"] < row[m] < row[f"{m} hi"]
    table = results_table({"mean hand": row, "other": metrics_row(gt, gt)})
    assert "PA-MPJPE lo" in table.columns
    _, md = write_results_table(table, tmp_path / "t", note="n")
    text = md.read_text()
    assert "PA-MPJPE lo" not in text and f"{row['PA-MPJPE']:.2f} [" in text


def test_claim_verdicts_with_ratios_and_alignment() -> None:
    rng = np.random.default_rng(2)
    seq = np.repeat(np.arange(30), 8)
    keys = np.stack([seq, np.zeros_like(seq), np.tile(np.arange(8), 30)], 1)
    base = rng.normal(14.0, 2.0, 240)
    good = 0.7 * base + rng.normal(0, 0.3, 240)
    methods = {
        "mean hand": MethodErrors({"PA-MPJPE": base}, keys),
        # the same samples in another order: paired by (seq, frame, cam), not by position
        "net": MethodErrors({"PA-MPJPE": good[::-1].copy()}, keys[::-1].copy()),
    }
    table = evaluate_claims(methods, [Claim("net", "mean hand", "PA-MPJPE", 0.8),
                                      Claim("net", "mean hand", "PA-MPJPE", 0.6),
                                      Claim("net", "mean hand", "PA-MPJPE", 0.7)])
    assert list(table["verdict"]) == ["holds", "does not hold", "within noise"]
    assert table["claim"][0] == "net < 0.8 x mean hand (PA-MPJPE)"
    with pytest.raises(KeyError, match="no method"):
        evaluate_claims(methods, [Claim("net", "nope", "PA-MPJPE")])
    partial = {"a": MethodErrors({"PA-MPJPE": base[:10]}, keys[:10]),
               "b": MethodErrors({"PA-MPJPE": base[10:20]}, keys[10:20])}
    with pytest.raises(ValueError, match="same samples"):
        evaluate_claims(partial, [Claim("a", "b", "PA-MPJPE")])
