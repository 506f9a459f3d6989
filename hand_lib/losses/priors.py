"""Priors on the MANO parameters and the hand's size.

- :func:`bone_length_anchor_loss`: S2HAND's scale anchor (one bone of known mean length).
- :func:`joint_angle_prior_loss`: S2HAND's range prior on the raw axis-angle finger pose,
  with the per-joint limits :data:`ANGLE_LIMITS_MIN_RAD` / :data:`ANGLE_LIMITS_MAX_RAD`.
- :func:`shape_regularizer`: squared (S2HAND) or absolute (HaMuCo) shape coefficients.
- :func:`pose_prior_loss`: HaMuCo's L1 pull of the finger pose toward the mean pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hand_lib.losses._checks import check_shape, check_tensor, safe_norm

__all__ = [
    "ANGLE_LIMITS_MAX_RAD",
    "ANGLE_LIMITS_MIN_RAD",
    "ANGLE_PRIOR_AXIS_WEIGHTS",
    "SCALE_ANCHOR_BONE",
    "SCALE_ANCHOR_LENGTH_M",
    "bone_length_anchor_loss",
    "finger_pose",
    "joint_angle_prior_loss",
    "pose_prior_loss",
    "shape_regularizer",
]

#: Mean length of the middle finger's proximal bone (keypoints 9 -> 10), metres (S2HAND).
SCALE_ANCHOR_LENGTH_M = 0.0282
#: The anchored bone, FreiHAND keypoint indices (middle MCP -> middle PIP).
SCALE_ANCHOR_BONE: tuple[int, int] = (9, 10)

# Per-joint box limits on the *full* local axis-angle (MANO's mean pose included) of the 15
# finger joints, MANO order (index, middle, pinky, ring, thumb; 3 joints each), radians.
# Component order is MANO's (x, y, z). In MANO's right-hand frame the fingers lie along x,
# the palm faces -y and flexion of the four fingers is a positive rotation about z (MANO's
# own mean pose has z = +0.2 .. +0.8 there). The limits are ours, written for this library:
# a deliberately loose box that contains MANO's mean pose and common grasps and only
# penalises clearly impossible poses (hyper-extension, sideways bending, large twist).
#   finger MCP: twist |x| <= 0.6, splay |y| <= 0.4 (23 deg), flexion z in [-0.35, 1.75]
#               (-20 .. 100 deg);
#   finger PIP: |x| <= 0.5, |y| <= 0.2, z in [-0.1, 1.9] (110 deg);
#   finger DIP: |x| <= 0.5, |y| <= 0.2, z in [-0.1, 1.4] (80 deg);
#   thumb: an oblique frame, so wider boxes on every component (see the table).
# Raw axis-angle components are not anatomical angles (a large flexion leaks into x and y);
# S2HAND applies its prior to the raw axis-angle all the same, and so do we.
_FINGER_MIN = ((-0.6, -0.4, -0.35), (-0.5, -0.2, -0.1), (-0.5, -0.2, -0.1))
_FINGER_MAX = ((0.6, 0.4, 1.75), (0.5, 0.2, 1.9), (0.5, 0.2, 1.4))
_THUMB_MIN = ((-0.5, -1.0, -0.6), (-1.2, -0.6, -0.6), (-0.5, -0.6, -0.5))
_THUMB_MAX = ((1.5, 0.6, 0.9), (0.5, 0.6, 0.9), (1.2, 0.6, 1.2))

#: (15, 3) lower limits, radians: index, middle, pinky, ring (MCP, PIP, DIP each), thumb.
ANGLE_LIMITS_MIN_RAD: tuple[tuple[float, float, float], ...] = _FINGER_MIN * 4 + _THUMB_MIN
#: (15, 3) upper limits, radians, same layout.
ANGLE_LIMITS_MAX_RAD: tuple[tuple[float, float, float], ...] = _FINGER_MAX * 4 + _THUMB_MAX
#: Weights of the (x, y, z) components; S2HAND counts the third (flexion) component twice.
ANGLE_PRIOR_AXIS_WEIGHTS: tuple[float, float, float] = (1.0, 1.0, 2.0)


def bone_length_anchor_loss(
    keypoints_m: Tensor,
    *,
    target_length_m: float = SCALE_ANCHOR_LENGTH_M,
    bone: tuple[int, int] = SCALE_ANCHOR_BONE,
) -> Tensor:
    """S2HAND's scale anchor: one bone should have its mean length.

    ``L = mean_b | ||X_b,q - X_b,p|| - l0 |`` with ``(p, q) = (9, 10)`` and ``l0 = 0.0282`` m.
    2D keypoints fix a hand's shape in the image but not its size/depth; this fixes the size.

    Args:
        keypoints_m: (B, 21, 3) keypoints in FreiHAND order, metres (camera space).
        target_length_m: ``l0``, metres.
        bone: ``(p, q)`` keypoint indices.

    Returns:
        Scalar loss, metres.
    """
    check_shape(keypoints_m, (None, 21, 3), "keypoints_m", "(B, 21, 3)")
    p, q = bone
    length = safe_norm(keypoints_m[:, q] - keypoints_m[:, p])
    return (length - target_length_m).abs().mean()


def finger_pose(pose: Tensor) -> Tensor:
    """Return the (B, 15, 3) finger part of an axis-angle MANO pose.

    Accepts (B, 15, 3), (B, 45), (B, 16, 3) or (B, 48); the global rotation (the first
    joint of 16) is dropped.
    """
    check_tensor(pose, "pose")
    if pose.ndim == 2 and pose.shape[1] in (45, 48):
        pose = pose.view(pose.shape[0], -1, 3)
    if pose.ndim != 3 or pose.shape[1:] not in ((15, 3), (16, 3)):
        raise ValueError(
            f"pose must have shape (B, 15, 3), (B, 45), (B, 16, 3) or (B, 48), "
            f"got {tuple(pose.shape)}"
        )
    return pose[:, -15:]


def joint_angle_prior_loss(
    pose_axis_angle: Tensor,
    *,
    limits_min: Sequence[Sequence[float]] | Tensor = ANGLE_LIMITS_MIN_RAD,
    limits_max: Sequence[Sequence[float]] | Tensor = ANGLE_LIMITS_MAX_RAD,
    axis_weights: Sequence[float] | Tensor = ANGLE_PRIOR_AXIS_WEIGHTS,
) -> Tensor:
    """S2HAND's joint-angle range prior on the raw axis-angle finger pose.

    ``L = mean_{b,j,k} a_k (relu(theta_bjk - max_jk) + relu(min_jk - theta_bjk))``: zero
    inside the box, linear outside, ``a = (1, 1, 2)``.

    Args:
        pose_axis_angle: the *full* local finger rotations, MANO's mean pose included
            (``pose + hands_mean`` for a layer with ``flat_hand_mean=False``), radians:
            (B, 15, 3), (B, 45), or with the global rotation first (B, 16, 3) / (B, 48),
            which is ignored.
        limits_min: (15, 3) lower limits, radians (default :data:`ANGLE_LIMITS_MIN_RAD`).
        limits_max: (15, 3) upper limits, radians (default :data:`ANGLE_LIMITS_MAX_RAD`).
        axis_weights: (3,) weights ``a`` of the x, y, z components.

    Returns:
        Scalar loss, radians.
    """
    theta = finger_pose(pose_axis_angle)
    lo = torch.as_tensor(limits_min, dtype=theta.dtype, device=theta.device)
    hi = torch.as_tensor(limits_max, dtype=theta.dtype, device=theta.device)
    a = torch.as_tensor(axis_weights, dtype=theta.dtype, device=theta.device)
    if lo.shape != (15, 3) or hi.shape != (15, 3):
        raise ValueError(
            f"limits must have shape (15, 3), got {tuple(lo.shape)} and {tuple(hi.shape)}"
        )
    if a.shape != (3,):
        raise ValueError(f"axis_weights must have shape (3,), got {tuple(a.shape)}")
    if bool((lo > hi).any()):
        raise ValueError("limits_min must not exceed limits_max")
    excess = torch.relu(theta - hi) + torch.relu(lo - theta)
    return (excess * a).mean()


def shape_regularizer(betas: Tensor, *, p: int = 2) -> Tensor:
    """Pull the MANO shape coefficients toward the mean shape (``beta = 0``).

    ``L = mean_{b,k} |beta_bk|^p``: ``p = 2`` is S2HAND's (mean squared), ``p = 1`` HaMuCo's
    (mean absolute).

    Args:
        betas: (B, S) shape coefficients (unitless, S = 10 for MANO).
        p: 1 or 2.

    Returns:
        Scalar loss, unitless.
    """
    check_shape(betas, (None, None), "betas", "(B, S)")
    if p == 1:
        return betas.abs().mean()
    if p == 2:
        return (betas * betas).mean()
    raise ValueError(f"p must be 1 or 2, got {p}")


def pose_prior_loss(pose: Tensor, mean_pose: Tensor | None = None) -> Tensor:
    """HaMuCo's pose prior: L1 pull of the finger pose toward the mean pose.

    ``L = mean_{b,j,k} |theta_bjk - mu_jk|``. With a layer built with
    ``flat_hand_mean=False`` (HaMuCo's setting) the pose *parameter* 0 already is the mean
    pose, so ``mean_pose=None`` (``mu = 0``) is the original term.

    Args:
        pose: axis-angle pose parameters, radians: (B, 15, 3), (B, 45), or with the global
            rotation first (B, 16, 3) / (B, 48), which is ignored (as in the original).
        mean_pose: optional (15, 3) or (45,) pose to pull toward, radians; None means 0.

    Returns:
        Scalar loss, radians.
    """
    theta = finger_pose(pose)
    if mean_pose is None:
        return theta.abs().mean()
    check_tensor(mean_pose, "mean_pose")
    if mean_pose.numel() != 45 or mean_pose.shape not in ((15, 3), (45,)):
        raise ValueError(
            f"mean_pose must have shape (15, 3) or (45,), got {tuple(mean_pose.shape)}"
        )
    return (theta - mean_pose.reshape(15, 3).to(theta)).abs().mean()
