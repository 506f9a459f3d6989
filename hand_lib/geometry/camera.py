"""Pinhole camera helpers (OpenCV convention: x right, y down, z forward, pixels)."""

from __future__ import annotations

import torch
from torch import Tensor


def world_to_camera(points_world: Tensor, M: Tensor) -> Tensor:
    """Apply a world-to-camera extrinsic, HanCo's ``M``: ``X_cam = R @ X_world + t``.

    Args:
        points_world: (..., N, 3) points, metres.
        M: (..., 4, 4) or (..., 3, 4) world-to-camera transforms (R = M[:3, :3], t = M[:3, 3]).

    Returns:
        (..., N, 3) camera-space points, metres.
    """
    if points_world.shape[-1] != 3:
        raise ValueError(f"points_world must be (..., N, 3), got {tuple(points_world.shape)}")
    if M.shape[-1] != 4 or M.shape[-2] not in (3, 4):
        raise ValueError(f"M must be (..., 4, 4) or (..., 3, 4), got {tuple(M.shape)}")
    R = M[..., :3, :3]
    t = M[..., :3, 3]
    return points_world @ R.transpose(-1, -2) + t.unsqueeze(-2)


def project_points(points_cam: Tensor, K: Tensor, eps: float = 1e-8) -> Tensor:
    """Perspective projection of camera-space points to pixels.

    Args:
        points_cam: (..., N, 3) camera-space points, metres, z > 0 in front of the camera.
        K: (..., 3, 3) intrinsics in pixels (fx, fy, cx, cy; skew allowed).
        eps: guards the division for points at z = 0 (sign kept).

    Returns:
        (..., N, 2) pixel coordinates (u to the right, v down).
    """
    if points_cam.shape[-1] != 3:
        raise ValueError(f"points_cam must be (..., N, 3), got {tuple(points_cam.shape)}")
    if tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"K must be (..., 3, 3), got {tuple(K.shape)}")
    uvw = points_cam @ K.transpose(-1, -2)
    w = uvw[..., 2:3]
    w = torch.where(w.abs() < eps, torch.full_like(w, eps) * torch.where(w < 0, -1.0, 1.0), w)
    return uvw[..., :2] / w
