"""HaMuCo's multi-view terms: consistency under similarity alignment, and distillation.

Each of the V views of a sample predicts the same hand in its own camera frame (HaMuCo's
points are root-relative and only known up to scale), so view ``u``'s points ``P_u`` are
brought into view ``v``'s frame by a similarity transform ``A_{u->v}(x) = s R x + t``:

- ``rotation="svd"``: ``R``, ``s``, ``t`` all estimated by weighted-least-squares similarity
  Procrustes (:func:`hand_lib.geometry.similarity_procrustes`);
- ``rotation="calibrated"``: ``R = R_v R_u^T`` from the known world-to-camera rotations
  (HanCo's ``M[:3, :3]``), and only ``s`` and ``t`` are estimated in closed form.

The consistency loss alternates between two phases (:func:`consistency_phase`):
``"others_to_view"`` pulls every other view's aligned points onto view ``v``'s (detached)
points; ``"view_to_mean"`` pulls view ``v``'s points onto the detached mean of all views
aligned into ``v``'s frame. The same mean (:func:`fused_points`) is the fused output and the
teacher for :func:`distillation_loss`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from hand_lib.geometry.procrustes import SimilarityTransform, similarity_procrustes
from hand_lib.losses._checks import check_same_shape, check_shape

__all__ = [
    "ConsistencyPhase",
    "RotationMode",
    "align_views",
    "consistency_phase",
    "distillation_loss",
    "fused_points",
    "multiview_consistency_loss",
    "relative_rotations",
    "similarity_with_rotation",
]

RotationMode = Literal["svd", "calibrated"]
ConsistencyPhase = Literal["others_to_view", "view_to_mean"]


def _check_views(points: object, name: str = "points") -> Tensor:
    points = check_shape(points, (None, None, None, 3), name, "(B, V, N, 3)")
    if points.shape[1] < 2:
        raise ValueError(f"{name} needs at least 2 views (V >= 2), got {tuple(points.shape)}")
    return points


def relative_rotations(rotations_world_to_cam: Tensor) -> Tensor:
    """Rotations between every pair of cameras.

    ``R_{u->v} = R_v R_u^T`` maps camera-``u`` coordinates to camera-``v`` coordinates
    (translations ignored), for world-to-camera rotations ``X_cam = R X_world + t``.

    Args:
        rotations_world_to_cam: (B, V, 3, 3) world-to-camera rotations (HanCo ``M[:3, :3]``).

    Returns:
        (B, V, V, 3, 3) with ``[b, v, u] = R_{u->v}`` (target view first).
    """
    check_shape(rotations_world_to_cam, (None, None, 3, 3), "rotations_world_to_cam",
                "(B, V, 3, 3)")
    R = rotations_world_to_cam
    return R.unsqueeze(2) @ R.unsqueeze(1).transpose(-1, -2)


def similarity_with_rotation(
    source: Tensor, target: Tensor, rotation: Tensor, *, eps: float = 1e-12
) -> SimilarityTransform:
    """Least-squares scale and translation for a *given* rotation.

    Minimises ``sum_i || s R x_i + t - y_i ||^2`` over ``s`` and ``t``:
    ``s = sum_i <R (x_i - x_mean), y_i - y_mean> / sum_i ||x_i - x_mean||^2`` and
    ``t = y_mean - s R x_mean``. ``s`` is not clamped: a wrong rotation can give ``s <= 0``.

    Args:
        source: (B, N, 3) points to move.
        target: (B, N, 3) reference points.
        rotation: (B, 3, 3) rotation applied to ``source``.
        eps: guards the division for a collapsed source.

    Returns:
        :class:`~hand_lib.geometry.SimilarityTransform` with ``R = rotation``.
    """
    check_shape(source, (None, None, 3), "source", "(B, N, 3)")
    check_same_shape(source, target, "source", "target")
    check_shape(rotation, (source.shape[0], 3, 3), "rotation", f"({source.shape[0]}, 3, 3)")
    mu_src, mu_tgt = source.mean(1), target.mean(1)
    rotated = (source - mu_src[:, None]) @ rotation.transpose(-1, -2)
    centred_tgt = target - mu_tgt[:, None]
    var_src = ((source - mu_src[:, None]) ** 2).sum(dim=(1, 2))
    scale = (rotated * centred_tgt).sum(dim=(1, 2)) / var_src.clamp_min(eps)
    t = mu_tgt - scale[:, None] * (mu_src[:, None] @ rotation.transpose(-1, -2))[:, 0]
    return SimilarityTransform(R=rotation, scale=scale, t=t)


def align_views(
    points: Tensor,
    *,
    rotation: RotationMode = "svd",
    rotations_world_to_cam: Tensor | None = None,
    detach_transform: bool = False,
) -> Tensor:
    """Every view's points aligned into every view's frame.

    Args:
        points: (B, V, N, 3) per-view points, each in its own camera frame (any units).
        rotation: ``"svd"`` (similarity Procrustes) or ``"calibrated"`` (known rotations).
        rotations_world_to_cam: (B, V, 3, 3), required for ``"calibrated"``, else unused.
        detach_transform: estimate the transforms from detached points (gradients then flow
            only through the points being moved). Default False, the original's behaviour.

    Returns:
        (B, V, V, N, 3) with ``[b, v, u] = A_{u->v}(P_u)`` (target view first); the
        diagonal ``[b, v, v]`` is view ``v`` aligned to itself.
    """
    _check_views(points)
    B, V, N, _ = points.shape
    source = points.unsqueeze(1).expand(B, V, V, N, 3).reshape(B * V * V, N, 3)
    target = points.unsqueeze(2).expand(B, V, V, N, 3).reshape(B * V * V, N, 3)
    fit_src, fit_tgt = (source.detach(), target.detach()) if detach_transform else (source, target)
    if rotation == "svd":
        transform = similarity_procrustes(fit_src, fit_tgt)
    elif rotation == "calibrated":
        if rotations_world_to_cam is None:
            raise ValueError('rotation="calibrated" needs rotations_world_to_cam (B, V, 3, 3)')
        check_shape(rotations_world_to_cam, (B, V, 3, 3), "rotations_world_to_cam",
                    f"(B, V, 3, 3) = ({B}, {V}, 3, 3)")
        R = relative_rotations(rotations_world_to_cam.to(points.dtype)).reshape(B * V * V, 3, 3)
        transform = similarity_with_rotation(fit_src, fit_tgt, R)
    else:
        raise ValueError(f'rotation must be "svd" or "calibrated", got {rotation!r}')
    if detach_transform:
        transform = SimilarityTransform(
            R=transform.R.detach(), scale=transform.scale.detach(), t=transform.t.detach()
        )
    return transform.apply(source).view(B, V, V, N, 3)


def fused_points(aligned: Tensor) -> Tensor:
    """The fused prediction in each view's frame: the mean over views of the aligned points.

    ``F_v = mean_u A_{u->v}(P_u)`` (view ``v`` itself included).

    Args:
        aligned: (B, V, V, N, 3) from :func:`align_views`.

    Returns:
        (B, V, N, 3) fused points, one copy per view frame.
    """
    check_shape(aligned, (None, None, None, None, 3), "aligned", "(B, V, V, N, 3)")
    return aligned.mean(2)


def consistency_phase(step: int, interval: int = 1) -> ConsistencyPhase:
    """HaMuCo's alternation: ``"others_to_view"`` for even blocks of ``interval`` steps,
    ``"view_to_mean"`` for odd ones (the original switches every step)."""
    if interval < 1:
        raise ValueError(f"interval must be >= 1, got {interval}")
    return "others_to_view" if (step // interval) % 2 == 0 else "view_to_mean"


def multiview_consistency_loss(
    points: Tensor,
    *,
    phase: ConsistencyPhase,
    rotation: RotationMode = "svd",
    rotations_world_to_cam: Tensor | None = None,
    detach_transform: bool = False,
    xy_only: bool = False,
) -> Tensor:
    """HaMuCo's multi-view consistency of the cross-view 3D points (L1).

    With ``A_{u->v}`` from :func:`align_views` and ``sg`` = stop-gradient:

    - ``"others_to_view"``: ``L = mean_v mean_{u != v} mean_{i,k} |A_{u->v}(P_u) - sg(P_v)|``;
    - ``"view_to_mean"``:   ``L = mean_v mean_{i,k} |P_v - sg(F_v)|`` with
      ``F_v = mean_u A_{u->v}(P_u)`` (:func:`fused_points`).

    Zero when the views are exact similarity transforms of one another (and, with
    ``"calibrated"``, when their rotations are the calibrated ones).

    Args:
        points: (B, V, N, 3) cross-view points (e.g. 778 vertices + 21 joints), each view in
            its own camera frame, any units (HaMuCo: root-relative, normalised).
        phase: ``"others_to_view"`` or ``"view_to_mean"`` (see :func:`consistency_phase`).
        rotation: ``"svd"`` or ``"calibrated"``.
        rotations_world_to_cam: (B, V, 3, 3) world-to-camera rotations, for ``"calibrated"``.
        detach_transform: see :func:`align_views`.
        xy_only: compare only x and y. The released HaMuCo code does so in the
            ``"others_to_view"`` phase; the default (False) compares all three coordinates.

    Returns:
        Scalar loss, units of ``points``.
    """
    _check_views(points)
    aligned = align_views(
        points, rotation=rotation, rotations_world_to_cam=rotations_world_to_cam,
        detach_transform=detach_transform,
    )
    B, V, N, _ = points.shape
    dims = 2 if xy_only else 3
    if phase == "others_to_view":
        diff = (aligned - points.detach().unsqueeze(2))[..., :dims].abs()  # (B, V, V, N, d)
        off_diagonal = ~torch.eye(V, dtype=torch.bool, device=points.device)
        return diff[:, off_diagonal].mean()
    if phase == "view_to_mean":
        return (points - fused_points(aligned).detach())[..., :dims].abs().mean()
    raise ValueError(f'phase must be "others_to_view" or "view_to_mean", got {phase!r}')


def distillation_loss(single_view_points: Tensor, fused: Tensor) -> Tensor:
    """HaMuCo's distillation: single-view points pulled toward the detached fused points.

    ``L = mean |S - sg(F)|`` over every view, point and coordinate. No gradient reaches the
    fused (cross-view) branch.

    Args:
        single_view_points: (B, V, N, 3) single-view branch points, each view in its frame.
        fused: (B, V, N, 3) fused points in the same frames (:func:`fused_points`).

    Returns:
        Scalar loss, units of the points.
    """
    check_shape(single_view_points, (None, None, None, 3), "single_view_points",
                "(B, V, N, 3)")
    check_same_shape(single_view_points, fused, "single_view_points", "fused")
    return (single_view_points - fused.detach()).abs().mean()
