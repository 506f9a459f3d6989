"""Rotation conversions and the pinhole camera against closed-form references."""

from __future__ import annotations

import math

import pytest
import torch

from hand_lib.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    project_points,
    rot6d_to_matrix,
    world_to_camera,
)

D = torch.float64


def test_axis_angle_known_rotation():
    R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=D))
    expected = torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=D)
    assert torch.allclose(R, expected, atol=1e-15)


def test_round_trips_including_pi_and_zero():
    gen = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=gen, dtype=D), dim=-1)
    angle = torch.cat(
        [
            torch.rand(60, 1, generator=gen, dtype=D) * math.pi,
            torch.tensor([[0.0], [1e-9], [math.pi - 1e-9], [math.pi]], dtype=D),
        ]
    )
    aa = axis * angle
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=D).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64, dtype=D))
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(R)), R, atol=1e-9)
    small = angle.squeeze(-1) < 3.0
    assert torch.allclose(matrix_to_axis_angle(R)[small], aa[small], atol=1e-9)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-12)


def test_gradient_finite_at_zero_angle():
    aa = torch.zeros(2, 3, dtype=D, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    assert torch.autograd.gradcheck(
        axis_angle_to_matrix, (torch.randn(3, 3, dtype=D, requires_grad=True),)
    )


def test_rot6d_orthonormalises_any_input():
    R = rot6d_to_matrix(torch.randn(10, 6, dtype=D))
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=D).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(10, dtype=D))


def test_camera_projection_and_extrinsics():
    K = torch.tensor([[500.0, 0, 112], [0, 400, 100], [0, 0, 1]], dtype=D)
    pts = torch.tensor([[0.1, -0.2, 2.0]], dtype=D)
    uv = project_points(pts, K)
    assert torch.allclose(uv, torch.tensor([[112 + 25.0, 100 - 40.0]], dtype=D))
    R = axis_angle_to_matrix(torch.tensor([0.1, 0.2, 0.3], dtype=D))
    M = torch.eye(4, dtype=D)
    M[:3, :3], M[:3, 3] = R, torch.tensor([0.0, 0.1, 0.5], dtype=D)
    cam = world_to_camera(pts, M)
    assert torch.allclose(cam, pts @ R.T + M[:3, 3])


@pytest.mark.parametrize(
    ("fn", "arg"),
    [
        (axis_angle_to_matrix, torch.zeros(2, 4)),
        (matrix_to_axis_angle, torch.zeros(2, 3)),
        (rot6d_to_matrix, torch.zeros(5)),
        (lambda x: project_points(x, torch.eye(3)), torch.zeros(4, 2)),
    ],
)
def test_bad_shapes(fn, arg):
    with pytest.raises(ValueError, match="shape|must be"):
        fn(arg)


def test_axis_angle_gradient_matches_autograd_of_the_formula():
    """The closed-form backward equals autograd through Rodrigues (float64), at every
    angle regime (zero, the Taylor branch, the closed form, near pi), and supports double
    backward."""
    from hand_lib.geometry.rotations import _rodrigues

    torch.manual_seed(0)
    for scale in [0.0, 1e-6, 1e-3, 0.05, 0.5, 2.0, 3.1]:
        r = (torch.randn(40, 3, dtype=torch.float64) * scale).requires_grad_()
        weights = torch.randn(40, 3, 3, dtype=torch.float64)
        (got,) = torch.autograd.grad((axis_angle_to_matrix(r) * weights).sum(), r)
        (want,) = torch.autograd.grad((_rodrigues(r) * weights).sum(), r)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    r = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (r,))
    assert torch.autograd.gradgradcheck(axis_angle_to_matrix, (r,))


@pytest.mark.parametrize("scale", [1e-4, 1e-3, 1e-2])
def test_float32_gradient_of_small_rotations(scale):
    """1 - cos(t) cancels in float32 for small t; the gradient must not lose its b term."""
    torch.manual_seed(1)
    r64 = torch.randn(30, 3, dtype=torch.float64) * scale
    weights = torch.randn(30, 3, 3, dtype=torch.float64)
    grads = []
    for dtype in (torch.float32, torch.float64):
        r = r64.to(dtype).requires_grad_()
        (g,) = torch.autograd.grad((axis_angle_to_matrix(r) * weights.to(dtype)).sum(), r)
        grads.append(g.double())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-5)
