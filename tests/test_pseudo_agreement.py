"""Pseudo labels reweighted / filtered by multi-view agreement, and the loader's switch."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hand_lib.data import HanCo
from hand_lib.experiments.data import hanco_dataset
from hand_lib.pseudo.agreement import (
    AGREEMENT_LABEL_DIR,
    label_hanco_agreement,
    reweight_by_agreement,
)
from hand_lib.pseudo.hanco_labels import load_hanco_multiview
from hand_lib.pseudo.labels import hanco_label_path, read_hanco_label, write_hanco_label
from hand_lib.pseudo.report import hanco_pseudo_label_report

WRONG_CAM = 3
SHIFT_PX = np.array([35.0, -25.0])


@pytest.fixture
def root(synthetic_smoke_root, tmp_path):
    """A private copy of the smoke set (train images and simulated labels only)."""
    out = tmp_path / "smoke"
    shutil.copytree(synthetic_smoke_root, out,
                    ignore=shutil.ignore_patterns("rgb_merged", "mask_hand"))
    return out


def test_exact_labels_keep_their_confidence_and_a_wrong_view_loses_it(root):
    mv = load_hanco_multiview(root, max_frames=4)
    kps = mv.gt_2d.copy()
    kps[:, WRONG_CAM] += SHIFT_PX
    conf = np.full(kps.shape[:3], 0.9)
    conf[0, 5, 7] = 0.0  # an undetected joint stays undetected
    for mode in ("reweight", "filter"):
        out = reweight_by_agreement(kps, conf, mv.K, mv.M, mode=mode)
        assert out.triangulated.all()
        others = np.delete(out.confidence, WRONG_CAM, axis=1)
        np.testing.assert_allclose(others[conf[:, np.arange(8) != WRONG_CAM] > 0], 0.9,
                                   atol=1e-6)
        assert out.confidence[0, 5, 7] == 0.0
        wrong = out.confidence[:, WRONG_CAM]
        if mode == "filter":
            assert (wrong == 0).all() and not out.inliers[:, WRONG_CAM].any()
        else:
            assert wrong.max() < 1e-3 * 0.9  # 43 px off, sigma 10 px: exp(-18.5)
    with pytest.raises(ValueError, match="mode"):
        reweight_by_agreement(kps, conf, mv.K, mv.M, mode="vote")


def _plant_wrong_view(root) -> tuple[int, int]:
    """Shift camera WRONG_CAM's labels of the first frame and give them full confidence."""
    seq, frame = 0, min(int(p.stem) for p in (root / "xyz" / "0000").glob("*.json"))
    path = hanco_label_path(root, seq, WRONG_CAM, frame)
    kps, conf = read_hanco_label(path)
    write_hanco_label(path, kps + SHIFT_PX, np.where(conf > 0, 1.0, 0.0))
    return seq, frame


@pytest.mark.parametrize("mode", ["reweight", "filter"])
def test_folder_reweighting_drops_the_wrong_view_and_lowers_the_weighted_error(root, mode):
    seq, frame = _plant_wrong_view(root)
    summary = label_hanco_agreement(root, mode=mode, progress=False)
    raw_files = sorted((root / "rgb_2D_keypoints").rglob("*.json"))
    assert summary.written == len(raw_files) and summary.skipped_existing == 0
    assert 0.0 < summary.mean_weight < 1.0

    def labels(label_dir, cam):
        return read_hanco_label(hanco_label_path(root, seq, cam, frame, label_dir))

    kps_raw, conf_raw = labels("rgb_2D_keypoints", WRONG_CAM)
    kps_new, conf_new = labels(AGREEMENT_LABEL_DIR, WRONG_CAM)
    np.testing.assert_allclose(kps_new, kps_raw)  # keypoints untouched
    detected = conf_raw > 0
    if mode == "filter":
        assert (conf_new == 0).all()
    else:
        assert conf_new[detected].max() < 0.05  # from about 0.9: down 20-fold at least
    # The other views keep most of their confidence (filter: exactly, for inlier joints).
    kept = []
    for cam in range(8):
        if cam != WRONG_CAM:
            _, c_raw = labels("rgb_2D_keypoints", cam)
            _, c_new = labels(AGREEMENT_LABEL_DIR, cam)
            det = c_raw > 0
            kept.append(c_new[det] / c_raw[det])
    kept = np.concatenate(kept)
    if mode == "filter":
        assert np.mean(np.isclose(kept, 1.0, atol=1e-3)) > 0.5
    else:
        assert np.median(kept) > 0.3

    raw = hanco_pseudo_label_report(root)
    new = hanco_pseudo_label_report(root, label_dir=AGREEMENT_LABEL_DIR)
    assert new.summary["weighted_error_2d_px"] < 0.9 * raw.summary["weighted_error_2d_px"]

    # Resumable: a second run writes nothing; a deleted file is rewritten identically.
    before = (root / AGREEMENT_LABEL_DIR / f"{seq:04d}" / "cam0" / f"{frame:08d}.json")
    content = before.read_bytes()
    before.unlink()
    again = label_hanco_agreement(root, mode=mode, progress=False)
    assert again.written == 1 and again.skipped_existing == len(raw_files) - 1
    assert before.read_bytes() == content


def test_loader_switch_selects_the_agreement_labels(root):
    label_hanco_agreement(root, mode="filter", progress=False)
    raw = HanCo(root, split="all", mode="multi")
    new = HanCo(root, split="all", mode="multi", pseudo_dir=AGREEMENT_LABEL_DIR)
    assert raw.pseudo_dir == "rgb_2D_keypoints" and new.pseudo_dir == AGREEMENT_LABEL_DIR
    a, b = raw[0], new[0]
    np.testing.assert_allclose(a["pseudo_2d"].numpy(), b["pseudo_2d"].numpy(), atol=1e-3)
    assert (b["pseudo_conf"] <= a["pseudo_conf"] + 1e-4).all()
    ds = hanco_dataset(root, "train", 32, pseudo_dir=AGREEMENT_LABEL_DIR)
    assert ds.pseudo_dir == AGREEMENT_LABEL_DIR
    with pytest.raises(Exception, match="nowhere"):
        HanCo(root, split="all", pseudo_dir="nowhere")
    with pytest.raises(ValueError, match="new folder"):
        label_hanco_agreement(root, out_dir="rgb_2D_keypoints", progress=False)
