"""Multi-view triangulation: exact recovery, confidences, invalid cases, RANSAC."""

from __future__ import annotations

import math

import pytest
import torch

from hand_lib.geometry import (
    project_points,
    reprojection_error,
    triangulate_dlt,
    triangulate_ransac,
    world_to_camera,
)

F64 = torch.float64


def _look_at(centre: torch.Tensor) -> torch.Tensor:
    """(4, 4) world-to-camera extrinsic of a camera at ``centre`` looking at the origin."""
    z = -centre / centre.norm()
    helper = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    if abs(float(z @ helper)) > 0.9:
        helper = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    x = torch.linalg.cross(helper, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])  # rows: camera axes in world coordinates
    M = torch.eye(4, dtype=F64)
    M[:3, :3] = R
    M[:3, 3] = -R @ centre
    return M


def _rig(B: int = 2, V: int = 8, J: int = 21, seed: int = 0):
    """Cameras 0.6 m from the origin, points within a few cm of it, exact projections."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(B, V, 3, generator=g, dtype=F64)
    centres = 0.6 * dirs / dirs.norm(dim=-1, keepdim=True)
    M = torch.stack([torch.stack([_look_at(c) for c in cams]) for cams in centres])
    K = torch.tensor([[600.0, 0.0, 112.0], [0.0, 590.0, 108.0], [0.0, 0.0, 1.0]], dtype=F64)
    K = K.expand(B, V, 3, 3).clone()
    X = 0.05 * torch.randn(B, J, 3, generator=g, dtype=F64)
    uv = project_points(world_to_camera(X[:, None], M), K)
    return X, uv, K, M


def test_rig_is_sane():
    X, uv, K, M = _rig()
    assert (world_to_camera(X[:, None], M)[..., 2] > 0.4).all()
    assert torch.isfinite(uv).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_projections_are_recovered(dtype):
    X, uv, K, M = _rig()
    out = triangulate_dlt(uv.to(dtype), K.to(dtype), M.to(dtype))
    assert out.points_world.dtype == dtype
    assert out.valid.all()
    assert (out.num_views == 8).all()
    tol = 1e-9 if dtype == torch.float64 else 1e-6
    assert (out.points_world.to(F64) - X).abs().max() < tol
    assert out.mean_reprojection_error_px.max() < (1e-6 if dtype == torch.float64 else 1e-2)
    # two views suffice
    two = triangulate_dlt(uv[:, :2], K[:, :2], M[:, :2])
    assert (two.points_world - X).abs().max() < 1e-9


def test_zero_confidence_views_are_ignored():
    X, uv, K, M = _rig()
    bad = uv.clone()
    bad[:, 2, :, 0] += 40.0
    bad[:, 5, 3] = math.nan  # a missing detection: non-finite counts as confidence 0
    conf = torch.ones(2, 8, 21, dtype=F64)
    conf[:, 2] = 0.0
    out = triangulate_dlt(bad, K, M, conf)
    assert (out.points_world - X).abs().max() < 1e-9
    assert (out.num_views[:, 3] == 6).all() and (out.num_views[:, 0] == 7).all()
    # the ignored view still gets a reprojection error (it is 40 px off), NaN where missing
    assert torch.allclose(out.reprojection_error_px[:, 2], torch.full((2, 21), 40.0, dtype=F64))
    assert torch.isnan(out.reprojection_error_px[:, 5, 3]).all()


def test_confidence_weights_pull_towards_trusted_views():
    X, uv, K, M = _rig(B=1)
    noisy = uv.clone()
    noisy[:, 0] += 6.0
    errors = []
    for c in (1.0, 0.3, 0.05):
        conf = torch.ones(1, 8, 21, dtype=F64)
        conf[:, 0] = c
        out = triangulate_dlt(noisy, K, M, conf)
        errors.append(float((out.points_world - X).norm(dim=-1).mean()))
    assert errors[0] > errors[1] > errors[2] > 0


def test_fewer_than_two_views_gives_nan_and_mask():
    X, uv, K, M = _rig()
    conf = torch.ones(2, 8, 21, dtype=F64)
    conf[0, :, 4] = 0.0  # no view
    conf[0, 1:, 7] = 0.0  # one view
    conf[1, 2:, 9] = 0.0  # two views: fine
    out = triangulate_dlt(uv, K, M, conf)
    assert not out.valid[0, 4] and not out.valid[0, 7] and out.valid[1, 9]
    assert torch.isnan(out.points_world[0, 4]).all() and torch.isnan(out.points_world[0, 7]).all()
    assert torch.isnan(out.mean_reprojection_error_px[0, 4])
    assert out.num_views[0, 4] == 0 and out.num_views[0, 7] == 1 and out.num_views[1, 9] == 2
    others = out.valid.clone()
    assert others.sum() == 2 * 21 - 2
    assert (out.points_world[others] - X[others]).abs().max() < 1e-9
    with pytest.raises(ValueError, match="min_views"):
        triangulate_dlt(uv, K, M, min_views=1)


def test_coincident_cameras_are_degenerate():
    X, uv, K, M = _rig(B=1)
    same_M = M[:, :1].expand(1, 2, 4, 4).clone()
    same_uv = uv[:, :1].expand(1, 2, 21, 2).clone()
    out = triangulate_dlt(same_uv, K[:, :2], same_M)
    assert not out.valid.any()
    assert torch.isnan(out.points_world).all()


def test_reprojection_error_values_and_behind_camera():
    X, uv, K, M = _rig(B=1)
    shifted = uv.clone()
    shifted[..., 0] += 3.0
    shifted[..., 1] -= 4.0
    err = reprojection_error(X, shifted, K, M)
    assert torch.allclose(err, torch.full_like(err, 5.0), atol=1e-9)
    # a camera whose principal axis points away from the points
    M_back = M.clone()
    M_back[:, 0, :3, :3] = -M_back[:, 0, :3, :3] * torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    M_back[:, 0, :3, 3] = torch.tensor([0.0, 0.0, -0.6], dtype=F64)
    err_back = reprojection_error(X, uv, K, M_back)
    assert torch.isinf(err_back[:, 0]).all()


def test_ransac_rejects_a_gross_outlier_view():
    X, uv, K, M = _rig()
    bad = uv.clone()
    bad[:, 3] += torch.tensor([60.0, -45.0], dtype=F64)  # wrong person / flipped hand
    conf = torch.ones(2, 8, 21, dtype=F64)
    plain = triangulate_dlt(bad, K, M, conf)
    assert (plain.points_world - X).norm(dim=-1).mean() > 1e-3  # the outlier does hurt DLT
    out = triangulate_ransac(bad, K, M, conf, threshold_px=5.0)
    assert out.valid.all()
    assert not out.inliers[:, 3].any()
    assert out.inliers[:, [0, 1, 2, 4, 5, 6, 7]].all()
    assert (out.num_views == 7).all()
    assert (out.points_world - X).abs().max() < 1e-6
    assert out.mean_reprojection_error_px.max() < 1e-6
    assert (out.reprojection_error_px[:, 3] > 50).all()


def test_ransac_is_deterministic_and_leaves_global_rng_alone():
    X, uv, K, M = _rig(B=1, V=8)
    bad = uv.clone()
    bad[:, 6] += 80.0
    state = torch.random.get_rng_state()
    a = triangulate_ransac(bad, K, M, max_hypotheses=5, seed=3, threshold_px=5.0)
    b = triangulate_ransac(bad, K, M, max_hypotheses=5, seed=3, threshold_px=5.0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.inliers, b.inliers)
    assert torch.equal(a.points_world, b.points_world)
    assert (a.points_world - X).abs().max() < 1e-6  # 5 sampled pairs still find the inliers


def test_ransac_invalid_when_too_few_consistent_views():
    X, uv, K, M = _rig(B=1, V=3)
    bad = uv.clone()
    bad[:, 1, 0] += 100.0
    bad[:, 2, 0] -= 100.0  # three mutually inconsistent views for joint 0
    out = triangulate_ransac(bad, K, M, threshold_px=2.0, min_inliers=3)
    assert not out.valid[0, 0] and torch.isnan(out.points_world[0, 0]).all()
    assert not out.inliers[0, :, 0].any()
    assert out.valid[0, 1:].all()
    with pytest.raises(ValueError, match="min_inliers"):
        triangulate_ransac(uv, K, M, min_inliers=1)


def test_input_validation():
    X, uv, K, M = _rig(B=1)
    with pytest.raises(ValueError, match=r"\(B, V, J, 2\)"):
        triangulate_dlt(uv[0], K, M)
    with pytest.raises(ValueError, match=r"K must have shape \(B, V, 3, 3\)"):
        triangulate_dlt(uv, K[:, :3], M)
    with pytest.raises(ValueError, match=r"M must have shape"):
        triangulate_dlt(uv, K, M[..., :2, :])
    with pytest.raises(ValueError, match=r"confidences must have shape \(B, V, J\)"):
        triangulate_dlt(uv, K, M, torch.ones(1, 8, 20, dtype=F64))
    with pytest.raises(ValueError, match="non-negative"):
        triangulate_dlt(uv, K, M, -torch.ones(1, 8, 21, dtype=F64))
