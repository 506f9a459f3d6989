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
