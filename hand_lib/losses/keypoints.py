"""2D keypoint losses: S2HAND's robust keypoint term, bone directions, the heatmap integral
loss and the 2D-3D consistency, plus HaMuCo's confidence-weighted L1.

Keypoints are in FreiHAND order (see :mod:`hand_lib.mano.joints`): 0 wrist, thumb 1-4,
index 5-8, middle 9-12, ring 13-16, pinky 17-20. Pixel coordinates are (u right, v down).
Confidences are the 2D detector's scores in [0, 1] (e.g. OpenPose); a confidence of 0
removes a joint from every term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hand_lib.losses._checks import (
    check_confidence,
    check_same_shape,
    check_shape,
    check_tensor,
    safe_norm,
    weighted_mean,
)
from hand_lib.mano.joints import KEYPOINT_PARENTS

__all__ = [
    "HUBER_THRESHOLD_PX",
    "KEYPOINT_BONES",
    "S2HAND_KEYPOINT_WEIGHTS",
    "bone_direction_loss",
    "heatmap_cross_entropy_loss",
    "heatmap_integral_loss",
    "huber_like",
    "keypoint_2d_l1_loss",
    "keypoint_2d_loss",
    "keypoint_consistency_loss",
]

NUM_KEYPOINTS = 21

#: S2HAND's threshold between the quadratic and the linear part of the 2D loss, pixels.
HUBER_THRESHOLD_PX = 5.0

#: S2HAND's per-keypoint weights: wrist x2, the five fingertips x1.5, the rest x1.
S2HAND_KEYPOINT_WEIGHTS: tuple[float, ...] = (
    2.0,
    1.0, 1.0, 1.0, 1.5,
    1.0, 1.0, 1.0, 1.5,
    1.0, 1.0, 1.0, 1.5,
    1.0, 1.0, 1.0, 1.5,
    1.0, 1.0, 1.0, 1.5,
)  # fmt: skip

#: The 20 bones as (parent, child) keypoint pairs, from ``KEYPOINT_PARENTS``.
KEYPOINT_BONES: tuple[tuple[int, int], ...] = tuple(
    (parent, child) for child, parent in enumerate(KEYPOINT_PARENTS) if parent >= 0
)


def _check_kp2d(x: object, name: str) -> Tensor:
    return check_shape(x, (None, NUM_KEYPOINTS, 2), name, "(B, 21, 2)")


def huber_like(distance_sq: Tensor, threshold: float = HUBER_THRESHOLD_PX) -> Tensor:
    """S2HAND's robust penalty of a Euclidean distance ``d`` (elementwise).

    ``f(d) = d^2 / (2 delta)`` for ``d < delta`` and ``d - delta / 2`` otherwise: quadratic near
    zero, linear (slope 1) beyond ``delta``, continuous with a continuous slope at ``delta``.
    With ``delta = 5`` px: ``f(3) = 0.9``, ``f(10) = 7.5``.

    Args:
        distance_sq: (...) *squared* distances ``d^2`` (taking the square avoids the NaN
            gradient of ``sqrt`` at ``d = 0``), units^2.
        threshold: ``delta`` (> 0), same units as ``d``.

    Returns:
        (...) penalties, units of ``d``.
    """
    check_tensor(distance_sq, "distance_sq")
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    quadratic = distance_sq < threshold * threshold
    # sqrt only where it is used, with a harmless stand-in elsewhere, so gradients stay finite.
    d = torch.where(quadratic, torch.full_like(distance_sq, threshold), distance_sq).sqrt()
    return torch.where(quadratic, distance_sq / (2.0 * threshold), d - 0.5 * threshold)


def keypoint_2d_loss(
    keypoints_px: Tensor,
    target_px: Tensor,
    confidence: Tensor | None = None,
    *,
    joint_weights: Sequence[float] | Tensor = S2HAND_KEYPOINT_WEIGHTS,
    threshold_px: float = HUBER_THRESHOLD_PX,
) -> Tensor:
    """S2HAND's 2D keypoint loss: robust distance, confidence^2 and joint weighted.

    ``L = sum_{b,j} w_bj f(||x_bj - y_bj||) / sum_{b,j} w_bj`` with ``w_bj = (a_j c_bj)^2``,
    ``f`` = :func:`huber_like` (quadratic below ``threshold_px``), ``a_j`` the per-joint
    weights (wrist 2, tips 1.5) and ``c_bj`` the detector confidences. As in the original,
    the joint weight multiplies the confidence *before* squaring, so the wrist counts 4x and a
    tip 2.25x relative to another joint of the same confidence. 0 when every weight is 0.

    Args:
        keypoints_px: (B, 21, 2) predicted keypoints (e.g. projected MANO joints), pixels.
        target_px: (B, 21, 2) pseudo-label keypoints, pixels.
        confidence: optional (B, 21) confidences in [0, 1]; None means all 1.
        joint_weights: (21,) per-joint weights ``a_j``.
        threshold_px: quadratic/linear threshold of :func:`huber_like`, pixels.

    Returns:
        Scalar loss, pixels.
    """
    _check_kp2d(keypoints_px, "keypoints_px")
    _check_kp2d(target_px, "target_px")
    check_same_shape(keypoints_px, target_px, "keypoints_px", "target_px")
    B = keypoints_px.shape[0]
    check_confidence(confidence, (B, NUM_KEYPOINTS), "confidence")
    a = torch.as_tensor(joint_weights, dtype=keypoints_px.dtype, device=keypoints_px.device)
    if a.shape != (NUM_KEYPOINTS,):
        raise ValueError(f"joint_weights must have shape (21,), got {tuple(a.shape)}")
    c = keypoints_px.new_ones(B, NUM_KEYPOINTS) if confidence is None else confidence
    weights = (a * c) ** 2
    penalty = huber_like(((keypoints_px - target_px) ** 2).sum(-1), threshold_px)
    return weighted_mean(penalty, weights)


def keypoint_2d_l1_loss(
    keypoints: Tensor, target: Tensor, confidence: Tensor | None = None
) -> Tensor:
    """HaMuCo's confidence-weighted 2D L1 loss (used for the single- and cross-view outputs).

    ``L = mean_{..., j, k} c_j |x_jk - y_jk|``, the mean over every coordinate of every
    keypoint (not normalised by the confidences, as in the original), with ``c`` used
    linearly.

    Args:
        keypoints: (..., J, 2) predicted 2D keypoints (any units, e.g. normalised crop
            coordinates in [-1, 1] or pixels).
        target: (..., J, 2) pseudo labels, same units.
        confidence: optional (..., J) confidences; None means all 1.

    Returns:
        Scalar loss, units of the keypoints.
    """
    check_tensor(keypoints, "keypoints")
    check_tensor(target, "target")
    if keypoints.ndim < 2 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., J, 2), got {tuple(keypoints.shape)}")
    check_same_shape(keypoints, target, "keypoints", "target")
    check_confidence(confidence, tuple(keypoints.shape[:-1]), "confidence")
    err = (keypoints - target).abs()
    if confidence is not None:
        err = err * confidence.unsqueeze(-1)
    return err.mean()


def bone_direction_loss(
    keypoints_px: Tensor,
    target_px: Tensor,
    confidence: Tensor | None = None,
    *,
    eps: float = 1e-4,
) -> Tensor:
    """S2HAND's 2D bone-direction loss, weighted by the confidences of both bone ends.

    For each of the 20 bones ``(p, q)`` of :data:`KEYPOINT_BONES`, with
    ``u = (x_q - x_p) / (||x_q - x_p|| + eps)`` the unit direction of the predicted bone and
    ``v`` that of the target bone:
    ``L = mean_{b, bones} c_bp c_bq ||u_b - v_b||^2`` (a plain mean over B x 20, as in the
    original). Insensitive to bone length, so it constrains the pose, not the scale.

    Args:
        keypoints_px: (B, 21, 2) predicted keypoints, pixels.
        target_px: (B, 21, 2) pseudo-label keypoints, pixels.
        confidence: optional (B, 21) confidences; None means all 1.
        eps: added to bone lengths (pixels) before dividing.

    Returns:
        Scalar loss, unitless (each term in [0, 4]).
    """
    _check_kp2d(keypoints_px, "keypoints_px")
    _check_kp2d(target_px, "target_px")
    check_same_shape(keypoints_px, target_px, "keypoints_px", "target_px")
    B = keypoints_px.shape[0]
    check_confidence(confidence, (B, NUM_KEYPOINTS), "confidence")
    parent = torch.tensor([p for p, _ in KEYPOINT_BONES], device=keypoints_px.device)
    child = torch.tensor([q for _, q in KEYPOINT_BONES], device=keypoints_px.device)

    def unit_bones(x: Tensor) -> Tensor:
        bones = x[:, child] - x[:, parent]  # (B, 20, 2)
        return bones / (safe_norm(bones).unsqueeze(-1) + eps)

    sq = ((unit_bones(keypoints_px) - unit_bones(target_px)) ** 2).sum(-1)  # (B, 20)
    if confidence is not None:
        sq = sq * confidence[:, parent] * confidence[:, child]
    return sq.mean()


def heatmap_integral_loss(
    keypoints_px: Tensor | Sequence[Tensor],
    target_px: Tensor,
    confidence: Tensor | None = None,
) -> Tensor:
    """S2HAND's heatmap integral loss: confidence^2-weighted Euclidean distance, per stack.

    For each hourglass stack ``s`` with integral (soft-argmax) keypoints ``x^s`` in image
    pixels (``HourglassOutput.keypoints_2d_stacks`` of ``hand_lib.models``, whose
    ``soft_argmax`` is the library's one readout):
    ``L = sum_s [ sum_{b,j} c_bj^2 ||x^s_bj - y_bj|| / sum_{b,j} c_bj^2 ]``
    (summed, not averaged, over stacks, as in the original). 0 when every confidence is 0.

    Args:
        keypoints_px: (B, 21, 2) integral keypoints of one stack, or a sequence of them (one
            per stack), image pixels.
        target_px: (B, 21, 2) pseudo-label keypoints, pixels.
        confidence: optional (B, 21) confidences; None means all 1.

    Returns:
        Scalar loss, pixels.
    """
    stacks = [keypoints_px] if isinstance(keypoints_px, Tensor) else list(keypoints_px)
    if not stacks:
        raise ValueError("keypoints_px must hold at least one (B, 21, 2) tensor")
    _check_kp2d(target_px, "target_px")
    B = target_px.shape[0]
    check_confidence(confidence, (B, NUM_KEYPOINTS), "confidence")
    weights = target_px.new_ones(B, NUM_KEYPOINTS) if confidence is None else confidence**2
    total = target_px.new_zeros(())
    for i, kp in enumerate(stacks):
        _check_kp2d(kp, f"keypoints_px[{i}]")
        check_same_shape(kp, target_px, f"keypoints_px[{i}]", "target_px")
        total = total + weighted_mean(safe_norm(kp - target_px), weights)
    return total


def heatmap_cross_entropy_loss(
    logits: Tensor,
    target_px: Tensor,
    image_size: tuple[int, int],
    confidence: Tensor | None = None,
    *,
    sigma_cells: float = 1.0,
) -> Tensor:
    """Cross-entropy of softmax heatmaps against a Gaussian around each target keypoint.

    ``L = sum_{b,j} c_bj^2 H(t_bj, softmax(h_bj)) / sum_{b,j} c_bj^2`` with ``t_bj`` the
    normalised Gaussian of standard deviation ``sigma_cells`` heatmap cells centred on the
    target, evaluated at the cell centres. Unlike the integral loss, its gradient does not
    vanish while the heatmap is still spread out, so heatmaps learn faster from scratch;
    the integral readout (:func:`heatmap_integral_loss`) still gives sub-cell precision.

    Args:
        logits: (B, 21, h, w) heatmap logits covering the image; cell ``(i, j)`` is centred
            on pixel ``((j + 0.5) * W / w - 0.5, (i + 0.5) * H / h - 0.5)``.
        target_px: (B, 21, 2) keypoints, image pixels.
        image_size: (H, W) of the image, pixels.
        confidence: optional (B, 21) confidences (squared as weights); None means all 1.
        sigma_cells: width of the target Gaussian, heatmap cells.

    Returns:
        Scalar loss, nats (0 when every confidence is 0).
    """
    check_shape(logits, (None, NUM_KEYPOINTS, None, None), "logits", "(B, 21, h, w)")
    _check_kp2d(target_px, "target_px")
    B, K, h, w = logits.shape
    if target_px.shape[0] != B:
        raise ValueError(f"target_px must have {B} samples like logits, got {target_px.shape[0]}")
    check_confidence(confidence, (B, NUM_KEYPOINTS), "confidence")
    if sigma_cells <= 0:
        raise ValueError(f"sigma_cells must be > 0, got {sigma_cells}")
    H, W = image_size
    sx, sy = W / w, H / h
    xs = (torch.arange(w, dtype=logits.dtype, device=logits.device) + 0.5) * sx - 0.5
    ys = (torch.arange(h, dtype=logits.dtype, device=logits.device) + 0.5) * sy - 0.5
    tx, ty = target_px[..., 0:1].to(logits.dtype), target_px[..., 1:2].to(logits.dtype)
    log_gx = -((xs - tx) / sx) ** 2 / (2 * sigma_cells**2)  # (B, K, w)
    log_gy = -((ys - ty) / sy) ** 2 / (2 * sigma_cells**2)  # (B, K, h)
    log_target = (log_gy.unsqueeze(-1) + log_gx.unsqueeze(-2)).flatten(2)
    target = torch.softmax(log_target, dim=-1)
    ce = -(target * torch.log_softmax(logits.flatten(2), dim=-1)).sum(-1)  # (B, K)
    weights = target_px.new_ones(B, K) if confidence is None else confidence**2
    return weighted_mean(ce, weights.to(ce.dtype))


def keypoint_consistency_loss(
    keypoints_hm_px: Tensor,
    keypoints_proj_px: Tensor,
    *,
    threshold_px: float = HUBER_THRESHOLD_PX,
) -> Tensor:
    """S2HAND's 2D-3D consistency between the hourglass and the projected MANO keypoints.

    ``L = mean_{b,j} f(||h_bj - m_bj||)`` with ``f`` = :func:`huber_like`. Both inputs keep
    their gradients, so each branch is pulled toward the other (the original's behaviour);
    detach one side at the call site for a one-way teacher.

    Args:
        keypoints_hm_px: (B, 21, 2) integral keypoints of the last hourglass stack, pixels.
        keypoints_proj_px: (B, 21, 2) projected MANO keypoints, pixels.
        threshold_px: quadratic/linear threshold, pixels.

    Returns:
        Scalar loss, pixels.
    """
    _check_kp2d(keypoints_hm_px, "keypoints_hm_px")
    _check_kp2d(keypoints_proj_px, "keypoints_proj_px")
    check_same_shape(keypoints_hm_px, keypoints_proj_px, "keypoints_hm_px", "keypoints_proj_px")
    dist_sq = ((keypoints_hm_px - keypoints_proj_px) ** 2).sum(-1)
    return huber_like(dist_sq, threshold_px).mean()
