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


def solve_translation(
    points_rel: Tensor,
    keypoints_px: Tensor,
    K: Tensor,
    weights: Tensor | None = None,
) -> Tensor:
    """Translation that puts relative 3D points where 2D keypoints see them (linear LS).

    With ``(x_i, y_i) = K^-1 (u_i, v_i, 1)`` the normalised image coordinates of keypoint
    ``i`` and ``p_i = (X_i, Y_i, Z_i)`` its relative 3D point, the camera-space point
    ``p_i + t`` projects onto the keypoint when

        ``X_i + t_x = x_i (Z_i + t_z)``  and  ``Y_i + t_y = y_i (Z_i + t_z)``,

    two equations linear in ``t``::

        [1, 0, -x_i] t = x_i Z_i - X_i
        [0, 1, -y_i] t = y_i Z_i - Y_i

    Stacking them over the points with weights ``w_i`` gives the normal equations
    ``(sum w_i A_i^T A_i) t = sum w_i A_i^T b_i``, a 3x3 system per batch element. The residual
    minimised is the reprojection error in normalised coordinates multiplied by each point's
    depth (the algebraic error): zero, hence exact, for noise-free keypoints, and close to the
    reprojection-error minimiser when the hand's depth range is small against its distance.
    Skew in ``K`` is handled (through ``K^-1``). Solved in float64.

    Args:
        points_rel: (B, N, 3) points relative to any origin (e.g. root-relative joints),
            metres, camera axes.
        keypoints_px: (B, N, 2) their observed projections, pixels.
        K: (B, 3, 3) intrinsics, pixels.
        weights: optional (B, N) non-negative per-point weights (e.g. 2D confidences);
            None weights all points equally. At least two points per element need weight > 0.

    Returns:
        (B, 3) translation ``t`` in metres, in the dtype of ``points_rel``; the absolute
        points are ``points_rel + t[:, None]``.
    """
    if points_rel.ndim != 3 or points_rel.shape[-1] != 3:
        raise ValueError(f"points_rel must be (B, N, 3), got {tuple(points_rel.shape)}")
    B, N, _ = points_rel.shape
    if tuple(keypoints_px.shape) != (B, N, 2):
        raise ValueError(f"keypoints_px must be ({B}, {N}, 2), got {tuple(keypoints_px.shape)}")
    if tuple(K.shape) != (B, 3, 3):
        raise ValueError(f"K must be ({B}, 3, 3), got {tuple(K.shape)}")
    dtype = torch.float64
    if weights is None:
        w = torch.ones(B, N, dtype=dtype, device=points_rel.device)
    else:
        if tuple(weights.shape) != (B, N):
            raise ValueError(f"weights must be ({B}, {N}), got {tuple(weights.shape)}")
        w = weights.to(dtype)
        if (w < 0).any() or not torch.isfinite(w).all():
            raise ValueError("weights must be finite and non-negative")
    if ((w > 0).sum(1) < 2).any():
        raise ValueError("every batch element needs at least two points with weight > 0")
    p = points_rel.to(dtype)
    uv1 = torch.cat([keypoints_px.to(dtype), torch.ones_like(keypoints_px[..., :1], dtype=dtype)],
                    dim=-1)
    xy = (uv1 @ torch.linalg.inv(K.to(dtype)).transpose(-1, -2))
    xy = xy[..., :2] / xy[..., 2:3]  # (B, N, 2) normalised image coordinates
    # A_i rows: [1, 0, -x_i] and [0, 1, -y_i]; sum_i w_i A_i^T A_i written out
    sw = w.sum(1)
    swx, swy = (w * xy[..., 0]).sum(1), (w * xy[..., 1]).sum(1)
    swq = (w * (xy ** 2).sum(-1)).sum(1)
    zeros = torch.zeros_like(sw)
    lhs = torch.stack([
        torch.stack([sw, zeros, -swx], -1),
        torch.stack([zeros, sw, -swy], -1),
        torch.stack([-swx, -swy, swq], -1),
    ], dim=-2)
    b = xy * p[..., 2:3] - p[..., :2]  # (B, N, 2) right-hand sides b_i
    rhs = torch.stack([
        (w * b[..., 0]).sum(1),
        (w * b[..., 1]).sum(1),
        -(w * (xy * b).sum(-1)).sum(1),
    ], dim=-1)
    t = torch.linalg.solve(lhs, rhs.unsqueeze(-1)).squeeze(-1)
    return t.to(points_rel.dtype)
