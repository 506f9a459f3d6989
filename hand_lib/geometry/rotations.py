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


def _rodrigues_coefficients(theta2: Tensor) -> tuple[Tensor, Tensor]:
    """``a = sin(t)/t`` and ``b = (1 - cos t)/t^2`` of ``theta2 = t^2``, Taylor near zero.

    ``b`` is evaluated as ``(sin(t/2) / (t/2))^2 / 2``: the textbook ``1 - cos t`` cancels
    to zero in float32 below t ~ 3e-4, which left the gradient's ``b`` term at 0 instead
    of 1/2 for small rotations.
    """
    small = theta2 < 1e-8
    safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe.sqrt()
    half = 0.5 * theta
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, 0.5 * (torch.sin(half) / half).square())
    return a, b


def _rodrigues_derivatives(theta2: Tensor) -> tuple[Tensor, Tensor]:
    """``da/ds`` and ``db/ds`` with ``s = t^2`` (see :func:`_rodrigues_coefficients`).

    The closed forms cancel badly for small angles, so below ``s = 1e-2`` the series
    ``-1/6 + s/60 - s^2/1680 + s^3/90720`` and ``-1/24 + s/360 - s^2/13440 + s^3/907200``
    are used (truncation error below 1e-11 there).
    """
    small = theta2 < 1e-2
    s = torch.where(small, torch.ones_like(theta2), theta2)
    t = s.sqrt()
    sin, cos = torch.sin(t), torch.cos(t)
    da = (t * cos - sin) / (2.0 * s * t)
    db = (t * sin - 2.0 * (1.0 - cos)) / (2.0 * s * s)
    x = theta2
    da_small = -1.0 / 6.0 + x * (1.0 / 60.0 + x * (-1.0 / 1680.0 + x / 90720.0))
    db_small = -1.0 / 24.0 + x * (1.0 / 360.0 + x * (-1.0 / 13440.0 + x / 907200.0))
    return torch.where(small, da_small, da), torch.where(small, db_small, db)


def _skew(r: Tensor) -> Tensor:
    x, y, z = r.unbind(-1)
    zeros = torch.zeros_like(x)
    return torch.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], dim=-1).unflatten(-1, (3, 3))


def _rodrigues(r: Tensor) -> Tensor:
    theta2 = (r * r).sum(-1, keepdim=True)  # (..., 1)
    a, b = _rodrigues_coefficients(theta2)
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    # skew(r)^2 = r r^T - |r|^2 I: an outer product instead of a batched 3x3 matmul.
    outer = r.unsqueeze(-1) * r.unsqueeze(-2)
    return eye + a.unsqueeze(-1) * _skew(r) + b.unsqueeze(-1) * (outer - theta2.unsqueeze(-1) * eye)


class _AxisAngleToMatrix(torch.autograd.Function):
    """Rodrigues with a closed-form backward.

    With ``R = I + a K + b (r r^T - s I)``, ``s = |r|^2``, ``K = [r]_x`` and ``G = dL/dR``:
    ``dL/dr = 2 r (a' <G, K> + b' <G, r r^T - s I>) + a w + b ((G + G^T) r - 2 tr(G) r)``,
    where ``w = (G21 - G12, G02 - G20, G10 - G01)`` and primes are ``d/ds``. It costs a
    third of what autograd records for the forward's branches, and being written in
    differentiable tensor operations it also supports double backward.
    """

    @staticmethod
    def forward(ctx, r: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(r)
        return _rodrigues(r)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (r,) = ctx.saved_tensors
        theta2 = (r * r).sum(-1, keepdim=True)
        a, b = _rodrigues_coefficients(theta2)
        da, db = _rodrigues_derivatives(theta2)
        w = torch.stack(
            [
                grad[..., 2, 1] - grad[..., 1, 2],
                grad[..., 0, 2] - grad[..., 2, 0],
                grad[..., 1, 0] - grad[..., 0, 1],
            ],
            dim=-1,
        )
        g_r = (grad @ r.unsqueeze(-1)).squeeze(-1)  # G r
        gt_r = (r.unsqueeze(-2) @ grad).squeeze(-2)  # G^T r
        trace = grad.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
        inner_k = (w * r).sum(-1, keepdim=True)  # <G, K>
        inner_o = (r * g_r).sum(-1, keepdim=True) - theta2 * trace  # <G, r r^T - s I>
        return 2.0 * r * (da * inner_k + db * inner_o) + a * w + b * (g_r + gt_r - 2.0 * trace * r)


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula.

    Args:
        axis_angle: (..., 3) rotation vectors, radians (direction = axis, norm = angle).

    Returns:
        (..., 3, 3) rotation matrices.

    Near zero angle the Taylor series of sin(t)/t and (1-cos t)/t^2 is used, so the
    function and its gradient are finite at exactly zero (the usual ``norm + eps`` trick
    biases small rotations and is avoided here). The gradient is closed-form (see
    :class:`_AxisAngleToMatrix`).
    """
    _check_last(axis_angle, (3,), "axis_angle")
    if torch.is_grad_enabled() and axis_angle.requires_grad:
        return _AxisAngleToMatrix.apply(axis_angle)
    return _rodrigues(axis_angle)


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
