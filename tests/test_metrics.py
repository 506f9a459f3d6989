"""Metrics against hand-computed values, and the official FreiHAND protocol against an
independent per-sample reference (numpy + scipy) written from the protocol's description."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

from hand_lib.eval import (
    f_score,
    freihand_official_eval,
    hamuco_nje,
    hamuco_paje,
    keypoint_errors_2d,
    mpjpe,
    nearest_neighbour_distances,
    pa_mpjpe,
    pa_mpvpe,
    pck_2d,
    pck_curve,
)
from hand_lib.geometry import SimilarityTransform, axis_angle_to_matrix

F64 = torch.float64


def _hand(B: int = 4, seed: int = 0) -> torch.Tensor:
    """(B, 21, 3) joint sets in metres, about 40 cm in front of a camera."""
    g = torch.Generator().manual_seed(seed)
    return 0.04 * torch.randn(B, 21, 3, generator=g, dtype=F64) + torch.tensor([0, 0, 0.4])


def _similarity(B: int, seed: int = 1) -> SimilarityTransform:
    g = torch.Generator().manual_seed(seed)
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=F64))
    return SimilarityTransform(R, 0.7 + torch.rand(B, generator=g, dtype=F64),
                               0.1 * torch.randn(B, 3, generator=g, dtype=F64))


# ------------------------------------------------------------------------------------------
# MPJPE / PA-MPJPE / PA-MPVPE
# ------------------------------------------------------------------------------------------


def test_mpjpe_known_offsets():
    gt = _hand()
    shifted = gt + torch.tensor([0.003, 0.004, 0.0], dtype=F64)  # 5 mm everywhere
    assert mpjpe(shifted, gt, root_index=None).mean == pytest.approx(5.0, abs=1e-9)
    assert mpjpe(shifted, gt).mean == pytest.approx(0.0, abs=1e-9)  # root-relative
    one = gt.clone()
    one[:, 7, 2] += 0.021  # 21 mm on one joint only
    err = mpjpe(one, gt)
    assert err.mean == pytest.approx(1.0, abs=1e-9)  # 21 mm / 21 joints
    assert err.unit == "mm"
    expected = torch.zeros(21, dtype=F64)
    expected[7] = 21.0
    assert torch.allclose(err.per_point_mean, expected, atol=1e-9)
    assert torch.allclose(err.per_sample, torch.ones(4, dtype=F64), atol=1e-9)


def test_similarity_transformed_prediction():
    gt = _hand()
    tr = _similarity(4)
    pred = tr.apply(gt)
    assert pa_mpjpe(pred, gt).mean == pytest.approx(0.0, abs=1e-9)
    assert hamuco_paje(pred, gt).mean == pytest.approx(0.0, abs=1e-9)
    # pure scaling about the wrist: root-relative error is (s - 1) * |gt_j - gt_0|
    s = 1.5
    scaled = gt[:, :1] + s * (gt - gt[:, :1])
    expected = (s - 1.0) * (gt - gt[:, :1]).norm(dim=-1).mean() * 1000.0
    assert mpjpe(scaled, gt).mean == pytest.approx(float(expected), rel=1e-12)
    assert pa_mpjpe(scaled, gt).mean == pytest.approx(0.0, abs=1e-9)
    # a mirrored prediction is not explained away (reflection excluded)
    mirrored = gt * torch.tensor([1.0, 1.0, -1.0], dtype=F64)
    assert pa_mpjpe(mirrored, gt).mean > 5.0


def test_pa_mpvpe_on_vertices_and_numpy_inputs():
    g = torch.Generator().manual_seed(4)
    verts = 0.05 * torch.randn(3, 778, 3, generator=g, dtype=F64)
    pred = _similarity(3, seed=5).apply(verts)
    assert pa_mpvpe(pred, verts).mean == pytest.approx(0.0, abs=1e-9)
    noisy = pred + 0.002 * torch.randn(3, 778, 3, generator=g, dtype=F64)
    a = pa_mpvpe(noisy, verts)
    b = pa_mpvpe(noisy.numpy(), verts.numpy())
    assert a.per_point.shape == (3, 778)
    assert torch.allclose(a.per_point, b.per_point)
    assert 0.5 < a.mean < 5.0


def test_hamuco_nje_normalises_prediction_to_gt_bone_length():
    gt = _hand()
    bone = (gt[:, 9] - gt[:, 0]).norm(dim=-1)
    # scale + translation only: N-JE is exactly zero while MPJPE is not
    pred = 2.5 * gt + torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    assert hamuco_nje(pred, gt).mean == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(pred, gt).mean > 10.0
    # an error of 10 mm on one joint, bone 0-9 untouched: 10/21 mm, in metric mm (the ground
    # truth is NOT normalised to unit bone length)
    off = gt.clone()
    off[:, 12] += torch.tensor([0.0, 0.006, 0.008], dtype=F64)
    assert hamuco_nje(off, gt).mean == pytest.approx(10.0 / 21.0, abs=1e-9)
    # the same error on a prediction at twice the size: the prediction is rescaled by
    # L_gt / L_pred = 1/2, so the 10 mm error (20 mm at prediction scale) stays 10 mm
    big = 2.0 * off + 1.0
    assert hamuco_nje(big, gt).mean == pytest.approx(10.0 / 21.0, abs=1e-9)
    # centring is at joint 9: a rotation about joint 9 by 180 deg about the 0->9 axis keeps
    # the bone and maps each joint j to its mirror about that axis
    axis = (gt[:, 9] - gt[:, 0]) / bone[:, None]
    R = axis_angle_to_matrix(np.pi * axis)
    rot = (gt - gt[:, 9:10]) @ R.transpose(-1, -2) + gt[:, 9:10]
    rel = gt - gt[:, 9:10]
    expected = ((rel @ R.transpose(-1, -2)) - rel).norm(dim=-1).mean() * 1000.0
    assert hamuco_nje(rot, gt).mean == pytest.approx(float(expected), rel=1e-9)
    assert torch.equal(hamuco_paje(rot, gt).per_point, pa_mpjpe(rot, gt).per_point)


def test_point_errors_ranking_for_figures():
    gt = _hand(5)
    pred = gt.clone()
    for b, mm in enumerate([3.0, 1.0, 5.0, 2.0, 4.0]):
        pred[b] += torch.tensor([mm / 1000.0, 0.0, 0.0], dtype=F64)
    err = mpjpe(pred, gt, root_index=None)
    assert torch.allclose(err.per_sample, torch.tensor([3.0, 1, 5, 2, 4], dtype=F64))
    assert err.ranked().tolist() == [1, 3, 0, 4, 2]
    assert err.best_median_worst() == (1, 0, 2)


# ------------------------------------------------------------------------------------------
# F-score
# ------------------------------------------------------------------------------------------


def _far_apart(n: int) -> torch.Tensor:
    """n points 1 m apart on the x axis: each point's nearest neighbour is its counterpart."""
    pts = torch.zeros(1, n, 3, dtype=F64)
    pts[0, :, 0] = torch.arange(n, dtype=F64)
    return pts


def test_f_score_known_nearest_distances():
    gt = _far_apart(4)
    pred = gt.clone()
    pred[0, :, 1] += torch.tensor([0.001, 0.004, 0.010, 0.020], dtype=F64)
    f5 = f_score(pred, gt, 0.005)
    assert float(f5.precision) == 0.5 and float(f5.recall) == 0.5 and float(f5.f) == 0.5
    f15 = f_score(pred, gt, 0.015)
    assert float(f15.f) == pytest.approx(0.75)


def test_f_score_precision_is_share_of_gt_matched():
    # REFERENCE.md 6 / official script: precision = share of GT points whose nearest
    # prediction is within the threshold; recall = share of predictions near the GT.
    gt = _far_apart(4)
    pred = torch.cat([gt, gt + torch.tensor([0.0, 0.5, 0.0], dtype=F64)], dim=1)  # 4 extra
    fs = f_score(pred, gt, 0.005)
    assert float(fs.precision) == 1.0
    assert float(fs.recall) == 0.5
    assert float(fs.f) == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    # strict "<": a distance exactly at the threshold does not count
    exact = gt + torch.tensor([0.0, 0.25, 0.0], dtype=F64)
    at = f_score(exact, gt, 0.25)
    assert float(at.precision) == 0.0 and float(at.recall) == 0.0 and float(at.f) == 0.0
    assert float(f_score(exact, gt, 0.2500001).f) == 1.0
    # no match at all gives 0, not NaN
    assert float(f_score(gt + 0.3, gt, 0.005).f) == 0.0


def test_nearest_neighbour_distances_match_kdtree():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(3, 50, 3, generator=g, dtype=F64)
    b = torch.rand(3, 70, 3, generator=g, dtype=F64)
    d_ab, d_ba = nearest_neighbour_distances(a, b, chunk=2)
    for i in range(3):
        np.testing.assert_allclose(d_ab[i].numpy(), cKDTree(b[i].numpy()).query(a[i].numpy())[0],
                                   atol=1e-14)
        np.testing.assert_allclose(d_ba[i].numpy(), cKDTree(a[i].numpy()).query(b[i].numpy())[0],
                                   atol=1e-14)


# ------------------------------------------------------------------------------------------
# PCK / AUC
# ------------------------------------------------------------------------------------------


def test_pck_and_auc_on_constructed_errors():
    # every error 20 mm: PCK(t) = [t >= 20]; with thresholds 0, 0.5, ..., 50 the trapezoid
    # area is 30 (20..50) + 0.25 (the ramp on [19.5, 20]) -> 30.25 / 50
    curve = pck_curve(torch.full((10, 21), 20.0, dtype=F64), 0.0, 50.0, 101)
    assert curve.pck[39] == 0.0 and curve.pck[40] == 1.0  # inclusive at t = 20
    assert curve.auc == pytest.approx(30.25 / 50.0, abs=1e-12)
    # half at 10 mm, half beyond the range
    mixed = torch.tensor([10.0, 80.0] * 50, dtype=F64)
    assert pck_curve(mixed, 0.0, 50.0, 101).auc == pytest.approx(0.5 * 40.25 / 50.0, abs=1e-12)
    # errors uniform on [0, 50]: PCK(t) = t / 50, AUC -> 1/2
    uniform = (torch.arange(100_000, dtype=F64) + 0.5) * (50.0 / 100_000)
    curve = pck_curve(uniform)
    assert curve.thresholds.shape == (100,)
    assert torch.allclose(curve.pck, curve.thresholds / 50.0, atol=1e-5)
    assert curve.auc == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ValueError, match="NaN"):
        pck_curve(torch.tensor([1.0, float("nan")]))


def test_pck_curve_accepts_point_errors():
    gt = _hand(2)
    err = mpjpe(gt + torch.tensor([0.0, 0.0, 0.010], dtype=F64), gt, root_index=None)
    curve = pck_curve(err)  # 10 mm everywhere
    assert float(curve.pck[curve.thresholds >= 10.0 + 1e-9].min()) == 1.0
    assert float(curve.pck[curve.thresholds < 10.0 - 1e-9].max()) == 0.0


def test_pck_2d_with_mask():
    gt = torch.zeros(2, 4, 2, dtype=F64)
    pred = gt.clone()
    pred[..., 0] = torch.tensor([[1.0, 3.0, 6.0, 100.0], [2.0, 4.0, 5.0, 7.0]], dtype=F64)
    assert pck_2d(pred, gt, 5.0) == pytest.approx(5 / 8)  # inclusive at 5 px
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert pck_2d(pred, gt, 5.0, mask) == pytest.approx(5 / 7)
    err = keypoint_errors_2d(pred, gt, mask)
    assert err.unit == "px"
    assert err.mean == pytest.approx((1 + 3 + 6 + 2 + 4 + 5 + 7) / 7)
    assert torch.allclose(err.per_sample, torch.tensor([10 / 3, 4.5], dtype=F64))
    assert np.isnan(pck_2d(pred, gt, 5.0, torch.zeros(2, 4)))


def test_input_validation_messages():
    gt = _hand(2)
    with pytest.raises(ValueError, match=r"pred must have shape \(B, N, 3\) \(metres\)"):
        mpjpe(gt[0], gt)
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(gt[:, :20], gt)
    with pytest.raises(ValueError, match="NaN"):
        pa_mpjpe(gt * float("nan"), gt)
    with pytest.raises(ValueError, match=r"\(B, N, 2\) \(pixels\)"):
        pck_2d(gt, gt, 5.0)
    with pytest.raises(TypeError):
        mpjpe(gt.tolist(), gt)
    with pytest.raises(ValueError, match=r"pred_xyz must have shape \(B, 21, 3\)"):
        freihand_official_eval(gt[:, :20], gt, gt[:, :20], gt)
    with pytest.raises(ValueError, match="root_index"):
        mpjpe(gt, gt, root_index=21)


# ------------------------------------------------------------------------------------------
# Official FreiHAND protocol
# ------------------------------------------------------------------------------------------


def _reference_align(gt: np.ndarray, pred: np.ndarray, return_parts: bool = False):
    t_gt, t_pred = gt.mean(0), pred.mean(0)
    gt_c, pred_c = gt - t_gt, pred - t_pred
    s_gt, s_pred = np.linalg.norm(gt_c) + 1e-8, np.linalg.norm(pred_c) + 1e-8
    R, s = orthogonal_procrustes(gt_c / s_gt, pred_c / s_pred)
    if return_parts:
        return R, s, s_gt, t_gt, t_pred
    return (pred_c / s_pred) @ R.T * s * s_gt + t_gt


def _reference_fscore(gt: np.ndarray, pred: np.ndarray, th: float) -> float:
    d_gt = cKDTree(pred).query(gt)[0]
    d_pred = cKDTree(gt).query(pred)[0]
    precision, recall = np.mean(d_gt < th), np.mean(d_pred < th)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _reference_measures(per_point_lists: list[list[float]]) -> tuple[float, float]:
    thresholds = np.linspace(0.0, 0.05, 100)
    means, aucs = [], []
    for errors in per_point_lists:
        e = np.asarray(errors)
        means.append(e.mean())
        pck = np.array([(e <= t).mean() for t in thresholds])
        aucs.append(np.trapezoid(pck, thresholds) / (thresholds[-1] - thresholds[0]))
    return float(np.mean(means)), float(np.mean(aucs))


def _reference_eval(pred_xyz, pred_verts, gt_xyz, gt_verts):
    """Per-sample loop over plain numpy, following the protocol as REFERENCE.md 6 states it."""
    n_kp, n_v = gt_xyz.shape[1], gt_verts.shape[1]
    xyz, xyz_al = [[] for _ in range(n_kp)], [[] for _ in range(n_kp)]
    mesh, mesh_al = [[] for _ in range(n_v)], [[] for _ in range(n_v)]
    f, f_al = [], []
    same_topology = pred_verts.shape[1] == n_v
    for i in range(len(gt_xyz)):
        g, p, gv, pv = gt_xyz[i], pred_xyz[i], gt_verts[i], pred_verts[i]
        p_al = _reference_align(g, p)
        if same_topology:
            pv_al = _reference_align(gv, pv)
        else:  # the script's align_by_trafo, written out
            R, s, s_gt, t_gt, t_pred = _reference_align(g, p, return_parts=True)
            pv_al = (pv - pv.mean(0)) @ R.T * s * s_gt + (t_gt - t_pred) + pv.mean(0)
        for k in range(n_kp):
            xyz[k].append(np.linalg.norm(g[k] - p[k]))
            xyz_al[k].append(np.linalg.norm(g[k] - p_al[k]))
        if same_topology:
            for k in range(n_v):
                mesh[k].append(np.linalg.norm(gv[k] - pv[k]))
                mesh_al[k].append(np.linalg.norm(gv[k] - pv_al[k]))
        f.append([_reference_fscore(gv, pv, t) for t in (0.005, 0.015)])
        f_al.append([_reference_fscore(gv, pv_al, t) for t in (0.005, 0.015)])
    out = {"xyz": _reference_measures(xyz), "xyz_al": _reference_measures(xyz_al)}
    if same_topology:
        out["mesh"] = _reference_measures(mesh)
        out["mesh_al"] = _reference_measures(mesh_al)
    out["f"] = np.mean(f, 0)
    out["f_al"] = np.mean(f_al, 0)
    return out


def _fake_dataset(n: int = 8, n_verts: int = 60, seed: int = 3):
    rng = np.random.default_rng(seed)
    gt_xyz = 0.04 * rng.standard_normal((n, 21, 3)) + [0.0, 0.0, 0.5]
    gt_verts = 0.04 * rng.standard_normal((n, n_verts, 3)) + [0.0, 0.0, 0.5]
    # predictions: a per-sample similarity of the truth plus noise of a few mm
    tr = _similarity(n, seed=seed)
    pred_xyz = tr.apply(torch.from_numpy(gt_xyz)).numpy() + 0.006 * rng.standard_normal((n, 21, 3))
    pred_verts = tr.apply(torch.from_numpy(gt_verts)).numpy()
    pred_verts = pred_verts + 0.004 * rng.standard_normal(pred_verts.shape)
    return pred_xyz, pred_verts, gt_xyz, gt_verts


def test_official_eval_matches_reference_loop():
    pred_xyz, pred_verts, gt_xyz, gt_verts = _fake_dataset()
    res = freihand_official_eval(pred_xyz, pred_verts, gt_xyz, gt_verts)
    ref = _reference_eval(pred_xyz, pred_verts, gt_xyz, gt_verts)
    assert res.shape_is_mano
    assert res.xyz_mean3d_mm == pytest.approx(ref["xyz"][0] * 1000, rel=1e-10)
    assert res.xyz_auc3d == pytest.approx(ref["xyz"][1], abs=1e-12)
    assert res.xyz_al_mean3d_mm == pytest.approx(ref["xyz_al"][0] * 1000, rel=1e-10)
    assert res.xyz_al_auc3d == pytest.approx(ref["xyz_al"][1], abs=1e-12)
    assert res.mesh_mean3d_mm == pytest.approx(ref["mesh"][0] * 1000, rel=1e-10)
    assert res.mesh_al_mean3d_mm == pytest.approx(ref["mesh_al"][0] * 1000, rel=1e-10)
    assert res.mesh_al_auc3d == pytest.approx(ref["mesh_al"][1], abs=1e-12)
    assert [res.f_score_5mm, res.f_score_15mm] == pytest.approx(ref["f"].tolist(), abs=1e-12)
    assert [res.f_al_score_5mm, res.f_al_score_15mm] == pytest.approx(ref["f_al"].tolist(),
                                                                      abs=1e-12)
    # sanity of the fixture: alignment matters and the aligned scores are non-trivial
    assert res.xyz_mean3d_mm > 50 and 3 < res.xyz_al_mean3d_mm < 15
    assert 0 < res.f_al_score_5mm < res.f_al_score_15mm <= 1
    # per-sample arrays and scores.txt units
    assert res.xyz_errors_mm.shape == (8, 21) and res.mesh_al_errors_mm.shape == (8, 60)
    assert res.f_al_scores.shape == (8, 2)
    assert float(res.xyz_al_errors_mm.mean()) == pytest.approx(res.xyz_al_mean3d_mm)
    scores = res.scores_txt()
    assert scores["xyz_al_mean3d"] == pytest.approx(res.xyz_al_mean3d_mm / 10)  # cm
    assert scores["f_al_score_15"] == res.f_al_score_15mm
    assert res.thresholds_mm[-1] == pytest.approx(50.0) and res.pck_xyz_al.shape == (100,)


def test_official_eval_unaligned_is_absolute_and_alignment_allows_reflection():
    _, _, gt_xyz, _ = _fake_dataset(4)
    # vertices on a 2 cm grid, so that a 10 mm shift moves each away from every GT vertex
    grid = np.stack(np.meshgrid(*[np.arange(4) * 0.02] * 3, indexing="ij"), -1).reshape(-1, 3)
    gt_verts = np.stack([grid + [0.0, 0.0, 0.5 + 0.01 * i] for i in range(4)])
    shift = np.array([0.0, 0.0, 0.010])  # 10 mm: no root centring in the unaligned error
    res = freihand_official_eval(gt_xyz + shift, gt_verts + shift, gt_xyz, gt_verts)
    assert res.xyz_mean3d_mm == pytest.approx(10.0, rel=1e-9)
    assert res.mesh_mean3d_mm == pytest.approx(10.0, rel=1e-9)
    assert res.xyz_al_mean3d_mm < 1e-5 and res.f_al_score_5mm == 1.0
    assert res.f_score_5mm == 0.0 and res.f_score_15mm == 1.0
    mirror = np.array([1.0, -1.0, 1.0])
    res_m = freihand_official_eval(gt_xyz * mirror, gt_verts * mirror, gt_xyz, gt_verts)
    assert res_m.xyz_al_mean3d_mm < 1e-5  # scipy's orthogonal Procrustes undoes mirrors
    assert pa_mpjpe(gt_xyz * mirror, gt_xyz).mean > 5.0  # the library metric does not


def test_official_eval_with_other_mesh_topology():
    pred_xyz, pred_verts, gt_xyz, gt_verts = _fake_dataset(5)
    pred_other = pred_verts[:, :45]  # a different vertex count
    res = freihand_official_eval(pred_xyz, pred_other, gt_xyz, gt_verts)
    ref = _reference_eval(pred_xyz, pred_other, gt_xyz, gt_verts)
    assert not res.shape_is_mano
    assert res.mesh_mean3d_mm is None and res.pck_mesh is None
    assert res.scores_txt()["mesh_mean3d"] == -100.0
    assert res.scores_txt()["mesh_al_auc3d"] == -1.0
    assert [res.f_al_score_5mm, res.f_al_score_15mm] == pytest.approx(ref["f_al"].tolist(),
                                                                      abs=1e-12)
    # the consistent alternative moves vertices with the keypoint similarity transform: with
    # noise-free keypoints and a subset of GT vertices, all predicted vertices land on GT ones
    tr = _similarity(5, seed=11)
    exact_xyz = tr.apply(torch.from_numpy(gt_xyz)).numpy()
    exact_sub = tr.apply(torch.from_numpy(gt_verts[:, :45])).numpy()
    alt = freihand_official_eval(exact_xyz, exact_sub, gt_xyz, gt_verts,
                                 nonmatching_mesh_alignment="keypoint_similarity")
    off = freihand_official_eval(exact_xyz, exact_sub, gt_xyz, gt_verts)
    expected_precision = 45 / 60  # recall 1
    expected_f = 2 * expected_precision / (1 + expected_precision)
    assert alt.f_al_score_5mm == pytest.approx(expected_f, abs=1e-12)
    assert off.f_al_score_5mm < expected_f  # the script's quirky transform misplaces them
    with pytest.raises(ValueError, match="nonmatching_mesh_alignment"):
        freihand_official_eval(exact_xyz, exact_sub, gt_xyz, gt_verts,
                               nonmatching_mesh_alignment="bogus")
