"""Simulated labels for a HanCo-layout folder, and the pseudo-label quality report.

The tests write a tiny HanCo layout themselves: 8 cameras on a ring around a random hand-sized
point cloud, 224 x 224 black images, calibration, keypoints and a few visibility files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hand_lib.data import HanCo, HanCoFormatError
from hand_lib.data.joints import FREIHAND_JOINT_NAMES
from hand_lib.pseudo.hanco_labels import (
    hanco_projections,
    label_hanco_simulated,
    load_hanco_multiview,
    read_visibility,
)
from hand_lib.pseudo.labels import LabelFormatError, hanco_label_path, read_hanco_label
from hand_lib.pseudo.report import hanco_pseudo_label_report, pseudo_label_report
from hand_lib.pseudo.simulated import SimulatedDetectorConfig

V = 8


def _rig(num_cameras: int = V, radius: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """K (V, 3, 3), M (V, 4, 4): cameras on a tilted ring looking at the origin."""
    K = np.array([[400.0, 0, 111.5], [0, 400.0, 111.5], [0, 0, 1]])
    Ks, Ms = [], []
    for v in range(num_cameras):
        a = 2 * np.pi * v / num_cameras
        centre = radius * np.array([np.cos(a), 0.3 * np.sin(3 * a), np.sin(a)])
        z = -centre / np.linalg.norm(centre)
        x = np.cross([0.0, 1.0, 0.0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R, -R @ centre
        Ks.append(K)
        Ms.append(M)
    return np.stack(Ks), np.stack(Ms)


def _write_hanco(root: Path, seqs=(0, 1), frames=(0, 1), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    K, M = _rig()
    black = Image.fromarray(np.zeros((224, 224, 3), np.uint8))
    meta = {k: [] for k in ("is_train", "subject_id", "is_valid", "object_id", "has_fit")}
    for s in range(max(seqs) + 1):
        n = len(frames) if s in seqs else 0
        meta["is_train"].append([True] * n)
        meta["subject_id"].append([s] * n)
        meta["is_valid"].append([True] * n)
        meta["object_id"].append([None] * n)
        meta["has_fit"].append([False] * n)
    (root / "meta.json").write_text(json.dumps(meta))
    for s in seqs:
        for f in frames:
            xyz = rng.uniform(-0.08, 0.08, (21, 3))
            for sub, obj in (("calib", {"K": K.tolist(), "M": M.tolist()}), ("xyz", xyz.tolist())):
                p = root / sub / f"{s:04d}" / f"{f:08d}.json"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps(obj))
            for k in range(V):
                p = root / "rgb" / f"{s:04d}" / f"cam{k}" / f"{f:08d}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                black.save(p)


@pytest.fixture
def hanco_root(tmp_path) -> Path:
    _write_hanco(tmp_path)
    return tmp_path


def _label_files(root: Path) -> list[Path]:
    return sorted((root / "rgb_2D_keypoints").rglob("*.json"))


def test_projections_match_calibration(hanco_root):
    uv, xyz, K, M = hanco_projections(hanco_root, 0, 1)
    cam = xyz @ M[2, :3, :3].T + M[2, :3, 3]
    np.testing.assert_allclose(uv[2], (cam @ K[2].T)[:, :2] / cam[:, 2:3])
    assert ((uv > 0) & (uv < 224)).all()  # the rig sees the whole hand


def test_simulated_labelling_writes_every_view_and_resumes(hanco_root):
    summary = label_hanco_simulated(hanco_root, seed=3, progress=False)
    files = _label_files(hanco_root)
    assert summary.images == summary.written == len(files) == 2 * 2 * V
    assert summary.skipped_existing == 0
    before = {p: p.read_bytes() for p in files}
    again = label_hanco_simulated(hanco_root, seed=3, progress=False)
    assert again.written == 0 and again.skipped_existing == 2 * 2 * V
    # An interrupted run resumes to exactly the same files.
    for p in files[::5]:
        p.unlink()
    resumed = label_hanco_simulated(hanco_root, seed=3, progress=False)
    assert resumed.written == len(files[::5])
    assert {p: p.read_bytes() for p in _label_files(hanco_root)} == before
    # The HanCo loader reads them.
    ds = HanCo(hanco_root, split="all", mode="multi")
    sample = ds[0]
    assert bool(sample["pseudo_valid"].all())
    err = (sample["pseudo_2d"] - sample["joints_2d"]).norm(dim=-1)
    detected = sample["pseudo_conf"] > 0
    assert float(err[detected].median()) < 30.0


def test_simulated_labelling_uses_visibility(hanco_root):
    vis_dir = hanco_root / "visibility" / "0000" / "cam0"
    vis_dir.mkdir(parents=True)
    hidden = np.zeros(21, bool)
    hidden[10:] = True
    visible = (~hidden).tolist()
    (vis_dir / "00000000.json").write_text(json.dumps({"visible": visible, "uv": []}))
    (vis_dir / "00000001.json").write_text(json.dumps(visible))  # bare list form
    np.testing.assert_array_equal(read_visibility(vis_dir / "00000000.json"), ~hidden)
    cfg = SimulatedDetectorConfig(occluded_factor=20.0, missing_prob_occluded=0.0,
                                  outlier_prob=0.0, swap_prob=0.0, mirror_prob=0.0,
                                  no_hand_prob=0.0, missing_prob=0.0)
    summary = label_hanco_simulated(hanco_root, config=cfg, seed=0, progress=False)
    assert summary.with_visibility == 2
    uv, _, _, _ = hanco_projections(hanco_root, 0, 0)
    kps, _ = read_hanco_label(hanco_label_path(hanco_root, 0, 0, 0))
    err = np.linalg.norm(kps - uv[0], axis=-1)
    assert np.median(err[hidden]) > 5 * np.median(err[~hidden])
    (vis_dir / "00000000.json").write_text(json.dumps({"visible": [True] * 20}))
    with pytest.raises(LabelFormatError, match=r"00000000\.json: expected \{\"visible\""):
        label_hanco_simulated(hanco_root, overwrite=True, progress=False)


def test_simulated_labelling_refuses_a_second_label_folder(hanco_root):
    (hanco_root / "rgb_2d_keypoints").mkdir()
    with pytest.raises(HanCoFormatError, match="rgb_2d_keypoints/ exists"):
        label_hanco_simulated(hanco_root, progress=False)


def _multiview(n: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    K, M = _rig()
    xyz = rng.uniform(-0.08, 0.08, (n, 21, 3))
    cam = np.einsum("vij,nkj->nvki", M[:, :3, :3], xyz) + M[None, :, None, :3, 3]
    proj = np.einsum("vij,nvkj->nvki", K, cam)
    uv = proj[..., :2] / proj[..., 2:]
    return uv, xyz, np.broadcast_to(K, (n, V, 3, 3)), np.broadcast_to(M, (n, V, 4, 4))


def test_noise_free_labels_triangulate_exactly():
    uv, xyz, K, M = _multiview()
    rep = pseudo_label_report(uv, np.ones(uv.shape[:3]), K, M, uv, xyz)
    s = rep.summary
    assert s["mean_error_2d_px"] == 0.0
    assert s["mean_error_3d_mm"] < 1e-6 and s["mean_reprojection_error_px"] < 1e-6
    assert s["triangulated_rate"] == 1.0 and s["mean_inlier_views"] == V
    assert list(rep.per_joint.index) == list(FREIHAND_JOINT_NAMES)
    assert isinstance(rep.per_joint, pd.DataFrame) and isinstance(rep.by_confidence, pd.DataFrame)
    assert rep.by_confidence["count"].sum() == uv.size // 2


def test_outlier_view_is_rejected():
    uv, xyz, K, M = _multiview()
    rng = np.random.default_rng(0)
    labels = uv + rng.normal(0, 0.5, uv.shape)
    labels[:, 3] += 40.0  # camera 3 is off by 57 px for every joint
    conf = np.ones(uv.shape[:3])
    rep = pseudo_label_report(labels, conf, K, M, uv, xyz, threshold_px=5.0)
    inliers = rep.triangulation.inliers.numpy()
    assert not inliers[:, 3].any()
    assert inliers[:, [0, 1, 2, 4, 5, 6, 7]].mean() > 0.95
    assert rep.summary["mean_error_3d_mm"] < 1.0
    plain = pseudo_label_report(labels, conf, K, M, uv, xyz, threshold_px=1e6)  # no rejection
    assert plain.summary["mean_error_3d_mm"] > 5 * rep.summary["mean_error_3d_mm"]


def test_report_confidence_bins_and_missing_joints():
    uv, xyz, K, M = _multiview(n=4)
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.05, 1.0, uv.shape[:3])
    labels = uv + rng.normal(0, 1, uv.shape) * (3.0 * (1 - conf))[..., None]  # low conf, noisy
    conf[:, :, 20] = 0.0  # pinky tip never detected
    rep = pseudo_label_report(labels, conf, K, M, uv, xyz)
    assert rep.per_joint.loc["pinky_tip", "detected_rate"] == 0.0
    assert rep.per_joint.loc["pinky_tip", "triangulated_rate"] == 0.0
    assert np.isnan(rep.per_joint.loc["pinky_tip", "error_2d_mean_px"])
    assert rep.summary["spearman_confidence_error"] < -0.3
    bins = rep.by_confidence
    assert bins["error_2d_mean_px"].iloc[0] > bins["error_2d_mean_px"].iloc[-1]
    with pytest.raises(ValueError, match="confidence must have shape"):
        pseudo_label_report(labels, conf[:, :4], K, M)


def test_hanco_report_end_to_end(hanco_root):
    label_hanco_simulated(hanco_root, seed=0, progress=False)
    data = load_hanco_multiview(hanco_root)
    assert data.keypoints_px.shape == (4, V, 21, 2) and data.has_label.all()
    rep = hanco_pseudo_label_report(hanco_root, threshold_px=15.0)
    s = rep.summary
    assert s["frames"] == 4 and s["views_with_label"] == 4 * V
    assert 0.03 < s["mean_error_2d_box"] < 0.3
    assert s["triangulated_rate"] > 0.9
    assert s["median_error_3d_mm"] < 15.0
