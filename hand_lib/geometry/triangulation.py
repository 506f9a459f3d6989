"""Multi-view triangulation of 2D keypoints: confidence-weighted DLT and RANSAC over views.

Cameras follow HanCo's calibration: ``K`` (3, 3) intrinsics in pixels and ``M`` (4, 4)
world-to-camera extrinsics, ``X_cam = M[:3, :3] @ X_world + M[:3, 3]`` (OpenCV axes, z forward).

Validity contract (all functions): a joint that cannot be triangulated gets NaN coordinates
and ``valid = False``. That happens when fewer than ``min_views`` views have a positive
confidence and finite 2D coordinates, or when the linear system is degenerate (the rays are
(nearly) identical, the homogeneous solution lies at infinity, or the inputs are not finite).
Nothing is silently replaced by zeros.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hand_lib.geometry.camera import project_points, world_to_camera

__all__ = [
    "RansacTriangulation",
    "Triangulation",
    "reprojection_error",
    "triangulate_dlt",
    "triangulate_ransac",
]


@dataclass(frozen=True)
class Triangulation:
    """Result of :func:`triangulate_dlt`.

    Attributes:
        points_world: (B, J, 3) triangulated points, world frame, metres; NaN where invalid.
        valid: (B, J) bool, True where the point was triangulated.
        num_views: (B, J) int64, views that took part (positive confidence, finite 2D point).
        reprojection_error_px: (B, V, J) pixel distance between each view's 2D point and the
            projection of the triangulated point; NaN where the point is invalid or that view's
            2D point is not finite, ``inf`` where the point is behind that camera.
        mean_reprojection_error_px: (B, J) mean of ``reprojection_error_px`` over the views
            that took part; NaN where invalid.
    """

    points_world: Tensor
    valid: Tensor
    num_views: Tensor
    reprojection_error_px: Tensor
    mean_reprojection_error_px: Tensor


@dataclass(frozen=True)
class RansacTriangulation(Triangulation):
    """Result of :func:`triangulate_ransac`; ``num_views`` counts the inlier views.

    Attributes:
        inliers: (B, V, J) bool, the views used for the final triangulation of each joint.
    """

    inliers: Tensor


def _check_inputs(
    points_2d: Tensor, K: Tensor, M: Tensor, confidences: Tensor | None
) -> tuple[int, int, int]:
    if points_2d.ndim != 4 or points_2d.shape[-1] != 2:
        raise ValueError(f"points_2d must have shape (B, V, J, 2), got {tuple(points_2d.shape)}")
    B, V, J, _ = points_2d.shape
    if tuple(K.shape) != (B, V, 3, 3):
        raise ValueError(f"K must have shape (B, V, 3, 3) = {(B, V, 3, 3)}, got {tuple(K.shape)}")
    if tuple(M.shape) not in ((B, V, 4, 4), (B, V, 3, 4)):
        raise ValueError(
            f"M must have shape (B, V, 4, 4) or (B, V, 3, 4) with B, V = {B}, {V}, "
            f"got {tuple(M.shape)}"
        )
    if confidences is not None:
        if tuple(confidences.shape) != (B, V, J):
            raise ValueError(
                f"confidences must have shape (B, V, J) = {(B, V, J)}, "
                f"got {tuple(confidences.shape)}"
            )
        if bool((confidences < 0).any()):
            raise ValueError("confidences must be non-negative")
    if not points_2d.is_floating_point():
        raise ValueError(f"points_2d must be a floating tensor, got {points_2d.dtype}")
    return B, V, J


def _projection_matrices(K: Tensor, M: Tensor) -> Tensor:
    """(B, V, 3, 3) K and (B, V, 4|3, 4) M -> (B, V, 3, 4) projection matrices P = K [R | t]."""
    return K @ M[..., :3, :]


def _dlt(
    points_2d: Tensor, P: Tensor, weights: Tensor, min_views: int, rank_tol: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Core DLT on float64 inputs.

    Args:
        points_2d: (B, V, J, 2) pixels, finite wherever ``weights > 0``.
        P: (B, V, 3, 4) projection matrices.
        weights: (B, V, J) non-negative row weights (0 = view unused).

    Returns:
        points (B, J, 3) (NaN where invalid), valid (B, J) bool, num_views (B, J) int64.
    """
    used = weights > 0
    num_views = used.sum(1)  # (B, J)
    u = points_2d[..., 0:1]  # (B, V, J, 1)
    v = points_2d[..., 1:2]
    P = P[:, :, None]  # (B, V, 1, 3, 4)
    rows_u = u * P[..., 2, :] - P[..., 0, :]  # (B, V, J, 4)
    rows_v = v * P[..., 2, :] - P[..., 1, :]
    rows = torch.stack([rows_u, rows_v], dim=2)  # (B, V, 2, J, 4)
    # Unit-norm rows make the weight the only thing that sets a view's influence (otherwise
    # views with larger focal lengths or pixel coordinates would count more).
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    rows = rows * weights[:, :, None, :, None]
    B, V, _, J, _ = rows.shape
    A = rows.permute(0, 3, 1, 2, 4).reshape(B, J, 2 * V, 4)
    if 2 * V < 4:  # SVD needs a square-or-taller system to expose the null vector
        A = torch.cat([A, A.new_zeros(B, J, 4 - 2 * V, 4)], dim=2)
    _, S, Vh = torch.linalg.svd(A, full_matrices=False)
    X = Vh[..., -1, :]  # (B, J, 4) right singular vector of the smallest singular value
    w = X[..., 3]
    # Degenerate if the null space is more than one-dimensional (coincident rays) or the
    # solution is at infinity (parallel rays). X has unit norm, so |w| is scale-free.
    nondegenerate = (S[..., -2] > rank_tol * S[..., 0]) & (w.abs() > 1e-12)
    valid = (num_views >= min_views) & nondegenerate & torch.isfinite(X).all(-1)
    points = X[..., :3] / torch.where(valid, w, torch.ones_like(w))[..., None]
    points = torch.where(valid[..., None], points, torch.full_like(points, math.nan))
    return points, valid, num_views


def reprojection_error(
    points_world: Tensor, points_2d: Tensor, K: Tensor, M: Tensor
) -> Tensor:
    """Pixel distance between observed 2D points and the projections of 3D points.

    Args:
        points_world: (B, J, 3) world points, metres (NaN allowed: gives NaN).
        points_2d: (B, V, J, 2) observed points, pixels.
        K: (B, V, 3, 3) intrinsics, pixels.
        M: (B, V, 4, 4) or (B, V, 3, 4) world-to-camera extrinsics.

    Returns:
        (B, V, J) Euclidean reprojection error in pixels; ``inf`` where the point is at or
        behind the camera (z <= 0), so such views never count as inliers.
    """
    if points_world.ndim != 3 or points_world.shape[-1] != 3:
        raise ValueError(f"points_world must have shape (B, J, 3), got {tuple(points_world.shape)}")
    B, V, J = _check_inputs(points_2d, K, M, None)
    if tuple(points_world.shape) != (B, J, 3):
        raise ValueError(
            f"points_world must have shape (B, J, 3) = {(B, J, 3)}, got {tuple(points_world.shape)}"
        )
    cam = world_to_camera(points_world[:, None].to(M.dtype), M)  # (B, V, J, 3)
    uv = project_points(cam, K)
    err = (uv.to(points_2d.dtype) - points_2d).norm(dim=-1)
    behind = cam[..., 2] <= 0
    return torch.where(behind, torch.full_like(err, math.inf), err)


def _usable_weights(points_2d: Tensor, confidences: Tensor | None) -> Tensor:
    finite = torch.isfinite(points_2d).all(-1)
    if confidences is None:
        conf = finite.to(torch.float64)
    else:
        conf = confidences.to(torch.float64)
        conf = torch.where(finite, conf, torch.zeros_like(conf))
    return conf


def _finalise(
    points: Tensor,
    valid: Tensor,
    num_views: Tensor,
    used: Tensor,
    points_2d: Tensor,
    K: Tensor,
    M: Tensor,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    err = reprojection_error(points, points_2d.to(torch.float64), K, M)  # (B, V, J)
    used_f = used.to(torch.float64)
    mean_err = (torch.where(used, err, torch.zeros_like(err)) * used_f).sum(1) / used_f.sum(
        1
    ).clamp_min(1)
    mean_err = torch.where(valid, mean_err, torch.full_like(mean_err, math.nan))
    return points.to(dtype), valid, num_views, err.to(dtype), mean_err.to(dtype)


def triangulate_dlt(
    points_2d: Tensor,
    K: Tensor,
    M: Tensor,
    confidences: Tensor | None = None,
    *,
    min_views: int = 2,
    rank_tol: float = 1e-9,
) -> Triangulation:
    """Confidence-weighted linear (DLT) triangulation of J joints seen from V views.

    Each view contributes the two equations ``u P3 - P1 = 0`` and ``v P3 - P2 = 0`` on the
    homogeneous point; each equation is scaled to unit norm and then multiplied by the view's
    confidence, so the squared algebraic residual of a view is weighted by ``confidence**2``.
    The solution is the right singular vector of the smallest singular value, computed in
    float64 whatever the input dtype.

    Args:
        points_2d: (B, V, J, 2) detections, pixels. Non-finite entries are treated as
            confidence 0.
        K: (B, V, 3, 3) intrinsics, pixels.
        M: (B, V, 4, 4) (or (B, V, 3, 4)) world-to-camera extrinsics, metres.
        confidences: optional (B, V, J) non-negative weights; 0 removes the view for that
            joint. None means weight 1 for every finite detection.
        min_views: fewer contributing views than this gives NaN and ``valid = False``
            (must be >= 2: one view fixes only a ray).
        rank_tol: a system whose second-smallest singular value is below ``rank_tol`` times
            the largest is rank-deficient (coincident rays) and marked invalid.

    Returns:
        :class:`Triangulation` (points in the world frame, metres; outputs in the dtype of
        ``points_2d``).
    """
    if min_views < 2:
        raise ValueError(f"min_views must be >= 2, got {min_views}")
    _check_inputs(points_2d, K, M, confidences)
    dtype = points_2d.dtype
    K64, M64 = K.to(torch.float64), M.to(torch.float64)
    weights = _usable_weights(points_2d, confidences)
    pts = torch.nan_to_num(points_2d.to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    points, valid, num_views = _dlt(
        pts, _projection_matrices(K64, M64), weights, min_views, rank_tol
    )
    out = _finalise(points, valid, num_views, weights > 0, points_2d, K64, M64, dtype)
    return Triangulation(*out)


def _view_pairs(V: int, max_hypotheses: int, seed: int) -> list[tuple[int, int]]:
    pairs = list(itertools.combinations(range(V), 2))
    if len(pairs) <= max_hypotheses:
        return pairs
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(pairs), generator=gen)[:max_hypotheses]
    return [pairs[i] for i in sorted(pick.tolist())]


def triangulate_ransac(
    points_2d: Tensor,
    K: Tensor,
    M: Tensor,
    confidences: Tensor | None = None,
    *,
    threshold_px: float = 10.0,
    min_inliers: int = 2,
    max_hypotheses: int = 64,
    seed: int = 0,
    rank_tol: float = 1e-9,
) -> RansacTriangulation:
    """RANSAC over views: pick each joint's inlier views by reprojection error, re-triangulate.

    Hypotheses are view pairs, shared by all joints. When there are at most
    ``max_hypotheses`` pairs (28 for HanCo's 8 views) every pair is tried, so the result does
    not depend on ``seed``; otherwise ``max_hypotheses`` pairs are drawn without replacement
    from a generator seeded with ``seed`` (deterministic, independent of the global RNG).

    For each joint and hypothesis: triangulate from the two views (confidence-weighted),
    count the views with positive confidence whose reprojection error is below
    ``threshold_px``; the hypothesis with the most inliers wins, ties broken by the smaller
    sum of inlier errors. The joint is then re-triangulated from its inlier views with their
    confidences (DLT), and the inlier set is refreshed against the refined point.

    Args:
        points_2d: (B, V, J, 2) detections, pixels (non-finite = confidence 0).
        K: (B, V, 3, 3) intrinsics, pixels.
        M: (B, V, 4, 4) (or (B, V, 3, 4)) world-to-camera extrinsics, metres.
        confidences: optional (B, V, J) non-negative weights (None = 1 for finite detections).
        threshold_px: inlier threshold on the reprojection error, pixels.
        min_inliers: joints whose best hypothesis has fewer inliers are NaN, ``valid = False``.
        max_hypotheses: cap on the number of view pairs tried.
        seed: seed for the pair sampling (used only when pairs are capped).
        rank_tol: see :func:`triangulate_dlt`.

    Returns:
        :class:`RansacTriangulation`; ``num_views`` is the number of inlier views and
        ``mean_reprojection_error_px`` is averaged over them.
    """
    if min_inliers < 2:
        raise ValueError(f"min_inliers must be >= 2, got {min_inliers}")
    B, V, J = _check_inputs(points_2d, K, M, confidences)
    dtype = points_2d.dtype
    K64, M64 = K.to(torch.float64), M.to(torch.float64)
    P = _projection_matrices(K64, M64)
    weights = _usable_weights(points_2d, confidences)  # (B, V, J)
    pts = torch.nan_to_num(points_2d.to(torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    usable = weights > 0

    pairs = _view_pairs(V, max_hypotheses, seed)
    if not pairs:  # V < 2: nothing can be triangulated
        nan_points = torch.full((B, J, 3), math.nan, dtype=torch.float64, device=pts.device)
        no_views = torch.zeros_like(usable)
        out = _finalise(
            nan_points, no_views[:, 0], no_views.sum(1), no_views, points_2d, K64, M64, dtype
        )
        return RansacTriangulation(*out, inliers=no_views)
    H = len(pairs)
    pair_mask = torch.zeros(H, V, dtype=torch.float64, device=pts.device)
    for h, (a, b) in enumerate(pairs):
        pair_mask[h, a] = 1.0
        pair_mask[h, b] = 1.0
    # Fold hypotheses into the batch: (B * H, V, J, ...).
    hyp_weights = (weights[:, None] * pair_mask[None, :, :, None]).reshape(B * H, V, J)
    hyp_points, hyp_valid, _ = _dlt(
        pts.repeat_interleave(H, dim=0), P.repeat_interleave(H, dim=0), hyp_weights, 2, rank_tol
    )
    hyp_err = reprojection_error(
        hyp_points, pts.repeat_interleave(H, dim=0), K64.repeat_interleave(H, 0),
        M64.repeat_interleave(H, 0),
    ).reshape(B, H, V, J)
    hyp_valid = hyp_valid.reshape(B, H, J)
    hyp_inl = (hyp_err < threshold_px) & usable[:, None] & hyp_valid[:, :, None]
    count = hyp_inl.sum(2)  # (B, H, J)
    err_sum = torch.where(hyp_inl, hyp_err, torch.zeros_like(hyp_err)).sum(2)
    # Lexicographic (most inliers, then smallest error): error sums are < threshold * V,
    # so scaling the count by more than that keeps the ordering exact.
    score = count.to(torch.float64) * (threshold_px * (V + 1)) - err_sum
    score = torch.where(hyp_valid, score, torch.full_like(score, -math.inf))
    best = score.argmax(1)  # (B, J)
    inliers = torch.gather(hyp_inl, 1, best[:, None, None].expand(B, 1, V, J))[:, 0]  # (B, V, J)

    def refine(inl: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _dlt(pts, P, weights * inl, min_inliers, rank_tol)

    points, valid, _ = refine(inliers)
    # One refresh: views that agree with the refined point join, ones that do not leave.
    err = reprojection_error(points, pts, K64, M64)
    refreshed = (err < threshold_px) & usable & valid[:, None]
    points2, valid2, _ = refine(refreshed)
    keep_refreshed = valid2 & (refreshed.sum(1) >= inliers.sum(1))
    inliers = torch.where(keep_refreshed[:, None], refreshed, inliers)
    points = torch.where(keep_refreshed[..., None], points2, points)
    valid = torch.where(keep_refreshed, valid2, valid)
    inliers = inliers & valid[:, None]
    num_views = inliers.sum(1)
    out = _finalise(points, valid, num_views, inliers, points_2d, K64, M64, dtype)
    return RansacTriangulation(*out, inliers=inliers)
