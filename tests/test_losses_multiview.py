"""Tests for HaMuCo's multi-view consistency (SVD and calibrated rotations) and distillation."""

from __future__ import annotations

import pytest
import torch

from hand_lib.geometry import axis_angle_to_matrix, similarity_procrustes
from hand_lib.losses import (
    align_views,
    consistency_phase,
    distillation_loss,
    fused_points,
    multiview_consistency_loss,
    relative_rotations,
    similarity_with_rotation,
)

B, V, N = 2, 4, 30


def _random_rotations(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(*shape, 3, generator=g, dtype=torch.float64))


def _multiview_scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """World points seen by V cameras; each view predicts them in its camera frame up to an
    arbitrary scale and translation (as root-relative, normalised predictions are)."""
    g = torch.Generator().manual_seed(seed)
    world = 0.05 * torch.randn(B, 1, N, 3, generator=g, dtype=torch.float64)
    R = _random_rotations(B, V, seed=seed + 1)  # world-to-camera
    scale = 0.5 + torch.rand(B, V, 1, 1, generator=g, dtype=torch.float64)
    shift = torch.randn(B, V, 1, 3, generator=g, dtype=torch.float64)
    points = scale * (world @ R.transpose(-1, -2)) + shift
    return points, R


@pytest.mark.parametrize("phase", ["others_to_view", "view_to_mean"])
def test_consistency_zero_for_similarity_transformed_views(phase) -> None:
    points, R = _multiview_scene()
    svd = multiview_consistency_loss(points, phase=phase, rotation="svd")
    calib = multiview_consistency_loss(
        points, phase=phase, rotation="calibrated", rotations_world_to_cam=R
    )
    assert svd.item() < 1e-9 and calib.item() < 1e-9


@pytest.mark.parametrize("phase", ["others_to_view", "view_to_mean"])
def test_consistency_positive_for_inconsistent_views(phase) -> None:
    points, R = _multiview_scene()
    noisy = points.clone()
    noisy[:, 1] += 0.01 * torch.randn(B, N, 3, generator=torch.Generator().manual_seed(5),
                                      dtype=torch.float64)
    svd = multiview_consistency_loss(noisy, phase=phase, rotation="svd")
    calib = multiview_consistency_loss(
        noisy, phase=phase, rotation="calibrated", rotations_world_to_cam=R
    )
    assert svd.item() > 1e-4 and calib.item() > 1e-4


def test_calibrated_mode_uses_the_given_rotations() -> None:
    points, R = _multiview_scene()
    wrong = R.clone()
    wrong[:, 2] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)) @ R[:, 2]
    for phase in ("others_to_view", "view_to_mean"):
        bad = multiview_consistency_loss(
            points, phase=phase, rotation="calibrated", rotations_world_to_cam=wrong
        )
        svd = multiview_consistency_loss(points, phase=phase, rotation="svd")
        assert bad.item() > 1e-3  # a wrong calibration is not silently re-estimated
        assert svd.item() < 1e-9  # while SVD, ignoring calibration, still aligns the views


def test_relative_rotations_map_camera_u_to_camera_v() -> None:
    points, R = _multiview_scene()
    rel = relative_rotations(R)
    assert rel.shape == (B, V, V, 3, 3)
    assert torch.allclose(rel[:, 1, 3] @ R[:, 3], R[:, 1])
    eye = torch.eye(3, dtype=torch.float64).expand(B, V, 3, 3)
    assert torch.allclose(rel.diagonal(dim1=1, dim2=2).permute(0, 3, 1, 2), eye)


def test_similarity_with_rotation_recovers_scale_and_translation() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, N, 3, generator=g, dtype=torch.float64)
    R = _random_rotations(B, seed=4)
    s = torch.tensor([0.7, 1.9], dtype=torch.float64)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64)
    y = s[:, None, None] * (x @ R.transpose(-1, -2)) + t[:, None]
    fit = similarity_with_rotation(x, y, R)
    assert torch.allclose(fit.scale, s) and torch.allclose(fit.t, t)
    assert torch.allclose(fit.apply(x), y)


def test_fused_points_equal_each_view_when_consistent() -> None:
    points, R = _multiview_scene()
    for mode, rots in (("svd", None), ("calibrated", R)):
        aligned = align_views(points, rotation=mode, rotations_world_to_cam=rots)
        assert aligned.shape == (B, V, V, N, 3)
        assert torch.allclose(fused_points(aligned), points, atol=1e-9)


def test_view_to_mean_does_not_backpropagate_into_the_mean() -> None:
    points, _ = _multiview_scene()
    points = points + 0.01 * torch.randn(points.shape, generator=torch.Generator().manual_seed(2),
                                         dtype=torch.float64)
    p = points.clone().requires_grad_(True)
    loss = multiview_consistency_loss(p, phase="view_to_mean", detach_transform=True)
    loss.backward()
    with torch.no_grad():
        fused = fused_points(align_views(points))
    # gradient of mean |P - const|: only the direct path, none through the mean
    expected = torch.sign(points - fused) / points.numel()
    assert torch.allclose(p.grad, expected)


def test_others_to_view_does_not_backpropagate_into_the_target_view() -> None:
    points, _ = _multiview_scene()
    points = points + 0.01 * torch.randn(points.shape, generator=torch.Generator().manual_seed(2),
                                         dtype=torch.float64)
    p = points.clone().requires_grad_(True)
    loss = multiview_consistency_loss(p, phase="others_to_view", detach_transform=True)
    loss.backward()
    # L = mean_{v != u} |s R P_u + t - sg(P_v)| with (s, R, t) fitted on detached points:
    # the gradient reaches P_u only as the moved source, never as the target P_v.
    count = B * V * (V - 1) * N * 3
    expected = torch.zeros_like(points)
    for u in range(V):
        for v in range(V):
            if u != v:
                fit = similarity_procrustes(points[:, u], points[:, v])
                sign = torch.sign(fit.apply(points[:, u]) - points[:, v])  # (B, N, 3)
                expected[:, u] += fit.scale[:, None, None] * (sign @ fit.R) / count
    assert torch.allclose(p.grad, expected, atol=1e-12)


@pytest.mark.parametrize("mode", ["svd", "calibrated"])
@pytest.mark.parametrize("detach_transform", [False, True])
def test_consistency_gradients_finite(mode, detach_transform) -> None:
    points, R = _multiview_scene()
    g = torch.Generator().manual_seed(9)
    p = (points + 0.01 * torch.randn(points.shape, generator=g, dtype=torch.float64))
    p.requires_grad_(True)
    for phase in ("others_to_view", "view_to_mean"):
        loss = multiview_consistency_loss(
            p, phase=phase, rotation=mode, rotations_world_to_cam=R,
            detach_transform=detach_transform,
        )
        loss.backward()
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
        p.grad = None


def test_xy_only_compares_two_coordinates() -> None:
    points, _ = _multiview_scene()
    noisy = points.clone()
    noisy[:, 1, 3] += 0.05
    full = multiview_consistency_loss(noisy, phase="view_to_mean")
    xy = multiview_consistency_loss(noisy, phase="view_to_mean", xy_only=True)
    assert xy.item() > 0 and full.item() > 0 and xy.item() != full.item()


def test_consistency_phase_alternates() -> None:
    assert [consistency_phase(s) for s in range(4)] == [
        "others_to_view", "view_to_mean", "others_to_view", "view_to_mean"
    ]
    assert [consistency_phase(s, interval=2) for s in range(4)] == [
        "others_to_view", "others_to_view", "view_to_mean", "view_to_mean"
    ]
    with pytest.raises(ValueError):
        consistency_phase(0, interval=0)


def test_consistency_argument_errors() -> None:
    points, _ = _multiview_scene()
    with pytest.raises(ValueError, match=r"\(B, V, N, 3\)"):
        multiview_consistency_loss(points[0], phase="view_to_mean")
    with pytest.raises(ValueError, match="at least 2 views"):
        multiview_consistency_loss(points[:, :1], phase="view_to_mean")
    with pytest.raises(ValueError, match="rotations_world_to_cam"):
        multiview_consistency_loss(points, phase="view_to_mean", rotation="calibrated")
    with pytest.raises(ValueError, match=r"\(B, V, 3, 3\)"):
        multiview_consistency_loss(points, phase="view_to_mean", rotation="calibrated",
                                   rotations_world_to_cam=torch.eye(3).expand(B, V + 1, 3, 3))
    with pytest.raises(ValueError, match="phase"):
        multiview_consistency_loss(points, phase="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rotation"):
        multiview_consistency_loss(points, phase="view_to_mean", rotation="gt")  # type: ignore


# ------------------------------------------------------------------------ distillation
def test_distillation_gradient_does_not_reach_the_fused_branch() -> None:
    single = torch.zeros(B, V, N, 3, requires_grad=True)
    fused = torch.full((B, V, N, 3), 0.5, requires_grad=True)
    loss = distillation_loss(single, fused)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert fused.grad is None
    assert torch.allclose(single.grad, torch.full_like(single, -1.0 / single.numel()))
    assert distillation_loss(fused.detach(), fused).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(single, fused[:, :2])
