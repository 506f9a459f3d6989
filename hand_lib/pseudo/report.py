"""How good are the pseudo labels? 2D error, its link to confidence, multi-view 3D error.

:func:`pseudo_label_report` takes multi-view labels with their cameras (and ground truth when
there is some), triangulates every joint with confidence-weighted DLT + RANSAC over views
(:func:`hand_lib.geometry.triangulate_ransac`) and returns tables a notebook can show:

- ``summary``: one dict of headline numbers;
- ``per_joint``: a DataFrame indexed by joint name (detection rate, 2D error, reprojection
  error, inlier views, 3D error);
- ``by_confidence``: a DataFrame of the 2D error per confidence bin (does a low confidence
  flag a bad label?).

:func:`hanco_pseudo_label_report` does the same for a HanCo-layout folder on disk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from hand_lib.data.joints import FREIHAND_JOINT_NAMES
from hand_lib.geometry.triangulation import RansacTriangulation, triangulate_ransac

__all__ = [
    "PseudoLabelReport",
    "extreme_views",
    "hanco_pseudo_label_report",
    "pseudo_label_report",
]

DEFAULT_CONFIDENCE_BINS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class PseudoLabelReport:
    """Quality of a set of multi-view pseudo labels.

    Attributes:
        summary: headline numbers (keys listed in :func:`pseudo_label_report`).
        per_joint: DataFrame, one row per joint (index: joint names).
        by_confidence: DataFrame, one row per confidence bin (detected joints only).
        triangulation: the RANSAC triangulation (points in the world frame, metres).
        error_2d_px: (N, V, 21) label-to-truth distance, pixels; NaN where undetected or no
            ground truth.
        error_3d_m: (N, 21) triangulated-to-truth distance, metres; NaN where not
            triangulated or no ground truth.
    """

    summary: dict[str, Any]
    per_joint: pd.DataFrame
    by_confidence: pd.DataFrame
    triangulation: RansacTriangulation
    error_2d_px: np.ndarray
    error_3d_m: np.ndarray


def _nan_stat(fn: Any, values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else math.nan


def _p95(v: np.ndarray) -> float:
    return float(np.percentile(v, 95))


def pseudo_label_report(
    keypoints_px: np.ndarray,
    confidence: np.ndarray,
    K: np.ndarray,
    M: np.ndarray,
    gt_2d: np.ndarray | None = None,
    gt_world: np.ndarray | None = None,
    *,
    threshold_px: float = 10.0,
    min_inliers: int = 2,
    confidence_bins: Sequence[float] = DEFAULT_CONFIDENCE_BINS,
    joint_names: Sequence[str] = FREIHAND_JOINT_NAMES,
) -> PseudoLabelReport:
    """Report the quality of multi-view pseudo labels.

    Args:
        keypoints_px: (N, V, J, 2) labels, pixels.
        confidence: (N, V, J) confidences; 0 = not detected (excluded everywhere).
        K: (N, V, 3, 3) intrinsics, pixels.
        M: (N, V, 4, 4) world-to-camera extrinsics, metres.
        gt_2d: optional (N, V, J, 2) true projections, pixels (for the 2D error).
        gt_world: optional (N, J, 3) true keypoints, world frame, metres (3D error).
        threshold_px: RANSAC inlier threshold on the reprojection error, pixels.
        min_inliers: fewest inlier views for a joint to be triangulated.
        confidence_bins: bin edges for ``by_confidence`` (a confidence equal to the last edge
            falls in the last bin).
        joint_names: J names for ``per_joint``'s index.

    Returns:
        :class:`PseudoLabelReport`. ``summary`` keys: ``frames``, ``views``,
        ``hand_found_rate`` (views with a detected joint), ``joint_detection_rate``,
        ``triangulated_rate`` (joints), ``mean_inlier_views``, ``inlier_rate`` (detected
        views kept by RANSAC), ``mean_reprojection_error_px``; with ``gt_2d``:
        ``mean_error_2d_px``, ``median_error_2d_px``, ``p95_error_2d_px``,
        ``mean_error_2d_box`` (in hand boxes, the longer side of the true keypoints' box),
        ``weighted_error_2d_px`` (confidence-weighted mean, sum(c e) / sum(c)),
        ``spearman_confidence_error``; with ``gt_world``: ``mean_error_3d_mm``,
        ``median_error_3d_mm``, ``p95_error_3d_mm``.
    """
    from scipy.stats import spearmanr

    kps = np.asarray(keypoints_px, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if kps.ndim != 4 or kps.shape[-1] != 2:
        raise ValueError(f"keypoints_px must have shape (N, V, J, 2), got {kps.shape}")
    N, V, J, _ = kps.shape
    if conf.shape != (N, V, J):
        raise ValueError(f"confidence must have shape {(N, V, J)}, got {conf.shape}")
    if len(joint_names) != J:
        raise ValueError(f"joint_names has {len(joint_names)} names for {J} joints")
    if gt_2d is not None and np.shape(gt_2d) != (N, V, J, 2):
        raise ValueError(f"gt_2d must have shape {(N, V, J, 2)}, got {np.shape(gt_2d)}")
    if gt_world is not None and np.shape(gt_world) != (N, J, 3):
        raise ValueError(f"gt_world must have shape {(N, J, 3)}, got {np.shape(gt_world)}")
    detected = conf > 0

    tri = triangulate_ransac(
        torch.tensor(kps), torch.tensor(np.asarray(K, dtype=np.float64)),
        torch.tensor(np.asarray(M, dtype=np.float64)), torch.tensor(conf),
        threshold_px=threshold_px, min_inliers=min_inliers)
    valid = tri.valid.numpy()
    inliers = tri.inliers.numpy()
    reproj = tri.reprojection_error_px.numpy()
    reproj_inl = np.where(inliers, reproj, np.nan)

    summary: dict[str, Any] = {
        "frames": N, "views": N * V,
        "hand_found_rate": float(detected.any(-1).mean()) if N else math.nan,
        "joint_detection_rate": float(detected.mean()) if N else math.nan,
        "triangulated_rate": float(valid.mean()) if N else math.nan,
        "mean_inlier_views": _nan_stat(np.mean, np.where(valid, inliers.sum(1), np.nan)),
        "inlier_rate": float(inliers.sum() / max(detected.sum(), 1)),
        "mean_reprojection_error_px": _nan_stat(np.mean, reproj_inl),
    }
    rows: dict[str, Any] = {
        "detected_rate": detected.mean(axis=(0, 1)) if N else np.full(J, np.nan),
        "mean_confidence": np.array([_nan_stat(np.mean, conf[..., j][detected[..., j]])
                                     for j in range(J)]),
        "triangulated_rate": valid.mean(0) if N else np.full(J, np.nan),
        "mean_inlier_views": np.array([_nan_stat(np.mean, inliers.sum(1)[:, j][valid[:, j]])
                                       for j in range(J)]),
        "reprojection_error_px": np.array([_nan_stat(np.mean, reproj_inl[..., j])
                                           for j in range(J)]),
    }

    err2d = np.full((N, V, J), np.nan)
    bins = pd.DataFrame()
    if gt_2d is not None:
        gt = np.asarray(gt_2d, dtype=np.float64)
        err2d = np.where(detected, np.linalg.norm(kps - gt, axis=-1), np.nan)
        box = np.maximum(np.ptp(gt[..., 0], axis=-1), np.ptp(gt[..., 1], axis=-1))  # (N, V)
        err_box = err2d / np.maximum(box, 1e-9)[..., None]
        summary.update({
            "mean_error_2d_px": _nan_stat(np.mean, err2d),
            "median_error_2d_px": _nan_stat(np.median, err2d),
            "p95_error_2d_px": _nan_stat(_p95, err2d),
            "mean_error_2d_box": _nan_stat(np.mean, err_box),
            # What a confidence-weighted loss sees: labels count as much as they are trusted.
            "weighted_error_2d_px": (float(np.nansum(conf * err2d) / conf[np.isfinite(err2d)]
                                           .sum()) if np.isfinite(err2d).any() else math.nan),
        })
        ok = np.isfinite(err2d)
        varies = ok.sum() > 2 and np.ptp(conf[ok]) > 0 and np.ptp(err2d[ok]) > 0
        summary["spearman_confidence_error"] = (
            float(spearmanr(conf[ok], err2d[ok])[0]) if varies else math.nan)
        rows.update({
            "error_2d_mean_px": np.array([_nan_stat(np.mean, err2d[..., j]) for j in range(J)]),
            "error_2d_median_px": np.array([_nan_stat(np.median, err2d[..., j])
                                            for j in range(J)]),
            "error_2d_p95_px": np.array([_nan_stat(_p95, err2d[..., j]) for j in range(J)]),
            "error_2d_mean_box": np.array([_nan_stat(np.mean, err_box[..., j])
                                           for j in range(J)]),
        })
        edges = np.asarray(confidence_bins, dtype=np.float64)
        which = np.clip(np.searchsorted(edges, conf[ok], side="right") - 1, 0, len(edges) - 2)
        records = []
        for b in range(len(edges) - 1):
            e, eb = err2d[ok][which == b], err_box[ok][which == b]
            records.append({
                "confidence_low": edges[b], "confidence_high": edges[b + 1], "count": e.size,
                "error_2d_mean_px": _nan_stat(np.mean, e),
                "error_2d_median_px": _nan_stat(np.median, e),
                "error_2d_mean_box": _nan_stat(np.mean, eb),
            })
        bins = pd.DataFrame.from_records(records)

    err3d = np.full((N, J), np.nan)
    if gt_world is not None:
        pts = tri.points_world.numpy()
        err3d = np.linalg.norm(pts - np.asarray(gt_world, dtype=np.float64), axis=-1)
        err3d = np.where(valid, err3d, np.nan)
        summary.update({
            "mean_error_3d_mm": 1000 * _nan_stat(np.mean, err3d),
            "median_error_3d_mm": 1000 * _nan_stat(np.median, err3d),
            "p95_error_3d_mm": 1000 * _nan_stat(_p95, err3d),
        })
        rows["error_3d_mean_mm"] = 1000 * np.array([_nan_stat(np.mean, err3d[:, j])
                                                    for j in range(J)])
        rows["error_3d_median_mm"] = 1000 * np.array([_nan_stat(np.median, err3d[:, j])
                                                      for j in range(J)])
    per_joint = pd.DataFrame(rows, index=pd.Index(list(joint_names), name="joint"))
    return PseudoLabelReport(summary, per_joint, bins, tri, err2d, err3d)


def hanco_pseudo_label_report(
    root: str | os.PathLike[str],
    *,
    label_dir: str | None = None,
    image_dir: str = "rgb",
    sequences: Sequence[int] | None = None,
    max_frames: int | None = None,
    **kwargs: Any,
) -> PseudoLabelReport:
    """:func:`pseudo_label_report` of the labels in a HanCo-layout folder (ground truth from
    ``xyz/`` and ``calib/``). Arguments as in
    :func:`hand_lib.pseudo.hanco_labels.load_hanco_multiview`; ``kwargs`` go to the report.
    """
    from hand_lib.pseudo.hanco_labels import load_hanco_multiview

    data = load_hanco_multiview(root, label_dir=label_dir, image_dir=image_dir,
                                sequences=sequences, max_frames=max_frames)
    report = pseudo_label_report(data.keypoints_px, data.confidence, data.K, data.M,
                                 data.gt_2d, data.gt_world, **kwargs)
    report.summary["views_with_label"] = int(data.has_label.sum())
    return report


def extreme_views(
    error_2d_px: np.ndarray, n: int = 4, *, min_joints: int = 10
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The views with the best and the worst labels, by mean 2D error over detected joints.

    Args:
        error_2d_px: (N, V, J) label-to-truth distance, NaN where undetected
            (:attr:`PseudoLabelReport.error_2d_px`).
        n: views to return of each kind.
        min_joints: a view needs this many detected joints to be ranked (a hand found).

    Returns:
        ``(best, worst)``: lists of ``(frame_index, view)``, best first / worst first.
    """
    err = np.asarray(error_2d_px, dtype=np.float64)
    counted = np.isfinite(err).sum(-1)
    with np.errstate(invalid="ignore"):
        mean = np.where(counted >= min_joints, np.nansum(err, -1) / np.maximum(counted, 1),
                        np.nan)
    flat = np.flatnonzero(np.isfinite(mean).reshape(-1))
    order = flat[np.argsort(mean.reshape(-1)[flat], kind="stable")]
    V = err.shape[1]
    pairs = [(int(i // V), int(i % V)) for i in order]
    return pairs[:n], pairs[::-1][:n]
