"""Rotation conversions as small, batched, differentiable tensor functions.

All functions accept any leading batch shape ``(...)`` and keep dtype and device. None of
them synchronises with the host, so they are safe inside ``torch.compile`` graphs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_last(x: Tensor, shape: tuple[int, ...], name: str) -> None:
    if x.ndim < len(shape) or tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"{name} must have shape (..., {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula.

    Args:
        axis_angle: (..., 3) rotation vectors, radians (direction = axis, norm = angle).

    Returns:
        (..., 3, 3) rotation matrices.

    Near zero angle the Taylor series of sin(t)/t and (1-cos t)/t^2 is used, so the
    function and its gradient are finite at exactly zero (the usual ``norm + eps`` trick
    biases small rotations and is avoided here).
    """
    _check_last(axis_angle, (3,), "axis_angle")
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)  # (..., 1)
    small = theta2 < 1e-8
    safe_theta2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe_theta2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / safe_theta2)
    x, y, z = axis_angle.unbind(-1)
    zeros = torch.zeros_like(x)
    skew = torch.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    a = a.unsqueeze(-1)
    b = b.unsqueeze(-1)
    return eye + a * skew + b * (skew @ skew)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """Inverse of :func:`axis_angle_to_matrix` (angle in [0, pi]).

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) rotation vectors, radians. Goes through a unit quaternion, which is stable
        for every angle including pi.
    """
    _check_last(matrix, (3, 3), "matrix")
    quat = matrix_to_quaternion(matrix)  # (..., 4) w, x, y, z with w >= 0
    w = quat[..., :1]
    xyz = quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    half = torch.atan2(sin_half, w)
    small = sin_half < 1e-6
    # angle / sin(angle/2) -> 2 as angle -> 0 (series: 2 + angle^2/12)
    scale = torch.where(
        small,
        2.0 + (2 * half) ** 2 / 12.0,
        2.0 * half / torch.where(small, torch.ones_like(sin_half), sin_half),
    )
    return xyz * scale


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Branch-free variant of Shepperd's method: all four candidate quaternions are formed and
    the best-conditioned one is picked per element, so no host synchronisation happens.
    """
    _check_last(matrix, (3, 3), "matrix")
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    four_sq = torch.stack(
        [
            1.0 + m00 + m11 + m22,
            1.0 + m00 - m11 - m22,
            1.0 - m00 + m11 - m22,
            1.0 - m00 - m11 + m22,
        ],
        dim=-1,
    )
    root = four_sq.clamp_min(1e-12).sqrt()  # 2|q_i|
    cands = torch.stack(
        [
            torch.stack([root[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, root[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, root[..., 2] ** 2, m12 + m21], -1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, root[..., 3] ** 2], -1),
        ],
        dim=-2,
    ) / (2.0 * root).unsqueeze(-1)
    best = four_sq.argmax(dim=-1, keepdim=True)  # (..., 1)
    quat = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """Zhou et al. (CVPR 2019) continuous 6D representation -> rotation matrices.

    Args:
        rot6d: (..., 6), the first two *columns* of the rotation matrix, concatenated
            (a1 = rot6d[..., 0:3], a2 = rot6d[..., 3:6]); they need not be orthonormal.

    Returns:
        (..., 3, 3) rotation matrices with columns (b1, b2, b1 x b2) from Gram-Schmidt.
    """
    _check_last(rot6d, (6,), "rot6d")
    a1, a2 = rot6d[..., 0:3], rot6d[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, the inverse of :func:`rot6d_to_matrix`."""
    _check_last(matrix, (3, 3), "matrix")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)
