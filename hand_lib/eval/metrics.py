"""Evaluation metrics for 3D hand pose and shape.

Units: every 3D input is in **metres**; every output whose name ends in ``_mm`` (and the
``PointErrors`` returned by the 3D metrics, whose ``unit`` is ``"mm"``) is in millimetres.
2D inputs and outputs are in pixels. Inputs may be torch tensors or numpy arrays; they are
detached and computed in float64 on their device. Per-sample arrays are always kept so that
figures can pick the best, median and worst samples.

Joint order is FreiHAND's (21): 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16;
pinky 17-20.

Two families:

- Library metrics (:func:`mpjpe`, :func:`pa_mpjpe`, :func:`pa_mpvpe`, :func:`hamuco_nje`,
  :func:`hamuco_paje`, :func:`f_score`, :func:`pck_curve`, :func:`pck_2d`): standard
  definitions with a reflection-safe similarity Procrustes.
- :func:`freihand_official_eval`: the protocol of the official FreiHAND ``eval.py``, for
  numbers that are to be compared with published FreiHAND results (see its docstring for
  where it differs from the library metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from hand_lib.geometry.procrustes import (
    FreiHandAlignment,
    freihand_procrustes,
    similarity_procrustes,
)

__all__ = [
    "FScore",
    "FreiHandEvalResult",
    "PckCurve",
    "PointErrors",
    "f_score",
    "freihand_official_eval",
    "hamuco_nje",
    "hamuco_paje",
    "keypoint_errors_2d",
    "mpjpe",
    "nearest_neighbour_distances",
    "pa_mpjpe",
    "pa_mpvpe",
    "pck_2d",
    "pck_curve",
]

ArrayLike = Tensor | np.ndarray

NUM_JOINTS = 21
#: HaMuCo's root joint (middle-finger MCP) and the bone whose ground-truth length sets the scale.
HAMUCO_ROOT = 9
HAMUCO_SCALE_BONE = (0, 9)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_f64(x: ArrayLike, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.asarray(x, dtype=np.float64))
    if isinstance(x, Tensor):
        return x.detach().to(torch.float64)
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _points(x: ArrayLike, name: str, dims: int, count: int | None, unit: str) -> Tensor:
    t = _as_f64(x, name)
    n = "N" if count is None else str(count)
    expected = f"(B, {n}, {dims})"
    if t.ndim != 3 or t.shape[-1] != dims or (count is not None and t.shape[1] != count):
        raise ValueError(f"{name} must have shape {expected} ({unit}), got {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return t


def _pair(
    pred: ArrayLike,
    gt: ArrayLike,
    dims: int = 3,
    count: int | None = None,
    unit: str = "metres",
    names: tuple[str, str] = ("pred", "gt"),
) -> tuple[Tensor, Tensor]:
    p = _points(pred, names[0], dims, count, unit)
    g = _points(gt, names[1], dims, count, unit).to(p.device)
    if p.shape != g.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(p.shape)} and {tuple(g.shape)}"
        )
    return p, g


# --------------------------------------------------------------------------------------------
# Point errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointErrors:
    """Euclidean error of every point of every sample.

    Attributes:
        per_point: (B, N) float64 errors, in ``unit``.
        unit: ``"mm"`` for the 3D metrics, ``"px"`` for 2D.
        mask: optional (B, N) bool; False entries are excluded from every statistic.
    """

    per_point: Tensor
    unit: str
    mask: Tensor | None = None

    def _m(self) -> Tensor:
        return torch.ones_like(self.per_point, dtype=torch.bool) if self.mask is None else self.mask

    @property
    def per_sample(self) -> Tensor:
        """(B,) mean error of each sample over its (unmasked) points; NaN if none."""
        m = self._m().to(self.per_point.dtype)
        return (self.per_point * m).sum(1) / m.sum(1)

    @property
    def per_point_mean(self) -> Tensor:
        """(N,) mean error of each point (joint or vertex) over the samples; NaN if none."""
        m = self._m().to(self.per_point.dtype)
        return (self.per_point * m).sum(0) / m.sum(0)

    @property
    def mean(self) -> float:
        """Mean over all (unmasked) points of all samples."""
        m = self._m()
        if not bool(m.any()):
            return float("nan")
        return float(self.per_point[m].mean())

    def ranked(self) -> Tensor:
        """(B,) sample indices from best (lowest per-sample error) to worst; NaN samples last."""
        per_sample = torch.nan_to_num(self.per_sample, nan=float("inf"))
        return torch.argsort(per_sample, stable=True)

    def best_median_worst(self) -> tuple[int, int, int]:
        """Indices of the best, median (lower median) and worst sample."""
        order = self.ranked()
        return int(order[0]), int(order[(len(order) - 1) // 2]), int(order[-1])


def _distances(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).norm(dim=-1)


def mpjpe(pred: ArrayLike, gt: ArrayLike, root_index: int | None = 0) -> PointErrors:
    """Mean per-joint position error, root-relative, in mm.

    Both sets are translated so that joint ``root_index`` is at the origin; the root joint
    (error 0) stays in the mean, as in the common convention.

    Args:
        pred: (B, J, 3) predicted joints, metres.
        gt: (B, J, 3) ground-truth joints, metres.
        root_index: joint to centre on (0 = wrist); None for absolute coordinates.

    Returns:
        :class:`PointErrors` in mm (``.mean``, ``.per_sample``, ``.per_point_mean``).
    """
    p, g = _pair(pred, gt)
    if root_index is not None:
        _check_index(root_index, p.shape[1], "root_index")
        p = p - p[:, root_index : root_index + 1]
        g = g - g[:, root_index : root_index + 1]
    return PointErrors(_distances(p, g) * 1000.0, "mm")


def _check_index(i: int, n: int, name: str) -> None:
    if not -n <= i < n:
        raise ValueError(f"{name}={i} is out of range for {n} points")


def _pa_errors(p: Tensor, g: Tensor) -> PointErrors:
    aligned = similarity_procrustes(p, g).apply(p)
    return PointErrors(_distances(aligned, g) * 1000.0, "mm")


def pa_mpjpe(pred: ArrayLike, gt: ArrayLike) -> PointErrors:
    """Procrustes-aligned MPJPE, in mm.

    Each predicted sample is aligned to its ground truth by the least-squares similarity
    transform (rotation with ``det = +1``, scale, translation). The alignment removes
    translation, so centring on a root first would change nothing.

    Args:
        pred: (B, J, 3) predicted joints, metres.
        gt: (B, J, 3) ground-truth joints, metres.

    Returns:
        :class:`PointErrors` in mm.
    """
    return _pa_errors(*_pair(pred, gt))


def pa_mpvpe(pred_verts: ArrayLike, gt_verts: ArrayLike) -> PointErrors:
    """Procrustes-aligned mean per-vertex position error, in mm.

    Args:
        pred_verts: (B, V, 3) predicted vertices, metres (same topology as ``gt_verts``).
        gt_verts: (B, V, 3) ground-truth vertices, metres.

    Returns:
        :class:`PointErrors` in mm (per vertex).
    """
    return _pa_errors(*_pair(pred_verts, gt_verts))


def hamuco_nje(
    pred: ArrayLike,
    gt: ArrayLike,
    root_index: int = HAMUCO_ROOT,
    scale_bone: tuple[int, int] = HAMUCO_SCALE_BONE,
    eps: float = 1e-12,
) -> PointErrors:
    """HaMuCo's normalised joint error (N-JE), in mm.

    Exactly (per sample, joint j, FreiHAND order)::

        s      = |gt[9] - gt[0]| / |pred[9] - pred[0]|
        err_j  = 1000 * | s * (pred[j] - pred[9]) - (gt[j] - gt[9]) |

    i.e. both sets are made relative to the middle MCP (joint 9) and the *prediction* is
    rescaled so that its wrist-to-middle-MCP length equals the ground truth's; the ground
    truth keeps its metric size, so the error is in millimetres. The mean runs over all 21
    joints (joint 9, error 0, included) and all samples, as in HaMuCo's released training
    code. A prediction whose 0-9 bone has zero length is rescaled by ``1 / eps``.

    Args:
        pred: (B, J, 3) predicted joints, any unit/scale (only its shape matters).
        gt: (B, J, 3) ground-truth joints, metres.
        root_index: the centring joint (9).
        scale_bone: the joint pair whose ground-truth length sets the scale ((0, 9)).

    Returns:
        :class:`PointErrors` in mm.
    """
    p, g = _pair(pred, gt)
    J = p.shape[1]
    for i, name in ((root_index, "root_index"), *((k, "scale_bone") for k in scale_bone)):
        _check_index(i, J, name)
    a, b = scale_bone
    len_gt = (g[:, b] - g[:, a]).norm(dim=-1)
    len_pred = (p[:, b] - p[:, a]).norm(dim=-1).clamp_min(eps)
    p = (p - p[:, root_index : root_index + 1]) * (len_gt / len_pred)[:, None, None]
    g = g - g[:, root_index : root_index + 1]
    return PointErrors(_distances(p, g) * 1000.0, "mm")


def hamuco_paje(pred: ArrayLike, gt: ArrayLike) -> PointErrors:
    """HaMuCo's Procrustes-aligned joint error (PA-JE), in mm.

    HaMuCo aligns its bone-normalised, root-relative prediction to the root-relative ground
    truth with a similarity transform (reflection excluded); since that transform absorbs
    any prior scale and translation, PA-JE equals :func:`pa_mpjpe` and is computed by it.

    Args:
        pred: (B, J, 3) predicted joints (any scale).
        gt: (B, J, 3) ground-truth joints, metres.
    """
    return pa_mpjpe(pred, gt)


# --------------------------------------------------------------------------------------------
# F-score
# --------------------------------------------------------------------------------------------


def nearest_neighbour_distances(
    a: ArrayLike, b: ArrayLike, chunk: int = 16
) -> tuple[Tensor, Tensor]:
    """Exact nearest-neighbour distances between two batched point sets.

    Args:
        a: (B, Na, 3) points.
        b: (B, Nb, 3) points (Nb may differ from Na).
        chunk: samples per distance-matrix block (bounds memory at chunk * Na * Nb doubles).

    Returns:
        ``(d_ab, d_ba)``: (B, Na) distance from each point of ``a`` to its nearest point of
        ``b``, and (B, Nb) the other way round; same unit as the inputs.
    """
    ta = _points(a, "a", 3, None, "metres")
    tb = _points(b, "b", 3, None, "metres").to(ta.device)
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"a and b batch sizes differ: {ta.shape[0]} vs {tb.shape[0]}")
    d_ab, d_ba = [], []
    for s in range(0, ta.shape[0], chunk):
        # The matmul path of cdist loses precision; thresholds at 5 mm need exact distances.
        d = torch.cdist(
            ta[s : s + chunk], tb[s : s + chunk], compute_mode="donot_use_mm_for_euclid_dist"
        )
        d_ab.append(d.min(2).values)
        d_ba.append(d.min(1).values)
    return torch.cat(d_ab), torch.cat(d_ba)


@dataclass(frozen=True)
class FScore:
    """F-score between predicted and ground-truth point sets at one distance threshold.

    Attributes:
        threshold_m: the distance threshold, metres.
        f: (B,) harmonic mean of precision and recall (0 where both are 0).
        precision: (B,) share of ground-truth points whose nearest predicted point is closer
            than the threshold (the official FreiHAND naming, see :func:`f_score`).
        recall: (B,) share of predicted points whose nearest ground-truth point is closer
            than the threshold.
    """

    threshold_m: float
    f: Tensor
    precision: Tensor
    recall: Tensor

    @property
    def mean(self) -> float:
        """Mean F-score over samples."""
        return float(self.f.mean())


def _fscore_from_distances(d_gt_to_pred: Tensor, d_pred_to_gt: Tensor, th: float) -> FScore:
    precision = (d_gt_to_pred < th).to(torch.float64).mean(1)
    recall = (d_pred_to_gt < th).to(torch.float64).mean(1)
    denom = precision + recall
    f = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), 0.0)
    return FScore(threshold_m=float(th), f=f, precision=precision, recall=recall)


def f_score(pred_points: ArrayLike, gt_points: ArrayLike, threshold_m: float) -> FScore:
    """F-score between point sets (e.g. mesh vertices) at a distance threshold.

    Definition (REFERENCE.md section 6, identical to the official FreiHAND script):
    precision = share of *ground-truth* points whose nearest predicted point is strictly
    closer than the threshold; recall = share of *predicted* points whose nearest
    ground-truth point is strictly closer; F = 2 P R / (P + R), 0 when both are 0. The more
    common naming (Tanks and Temples) swaps precision and recall; F itself is symmetric, so
    the F-score is the same under either naming. Usual thresholds: 0.005 and 0.015 m.

    Args:
        pred_points: (B, Np, 3) predicted points, metres (Np may differ from Ng).
        gt_points: (B, Ng, 3) ground-truth points, metres.
        threshold_m: distance threshold, metres.

    Returns:
        :class:`FScore` with per-sample f, precision, recall.
    """
    if not threshold_m > 0:
        raise ValueError(f"threshold_m must be positive, got {threshold_m}")
    d_gt_pred, d_pred_gt = nearest_neighbour_distances(gt_points, pred_points)
    return _fscore_from_distances(d_gt_pred, d_pred_gt, threshold_m)


# --------------------------------------------------------------------------------------------
# PCK
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PckCurve:
    """Percentage of correct keypoints over a range of thresholds.

    Attributes:
        thresholds: (T,) thresholds, in the unit of the errors (mm for the 3D defaults).
        pck: (T,) share of errors <= each threshold, in [0, 1].
        auc: trapezoid-rule area under ``pck`` divided by the threshold range, in [0, 1].
    """

    thresholds: Tensor
    pck: Tensor
    auc: float


def _trapezoid_auc(pck: Tensor, thresholds: Tensor) -> float:
    span = float(thresholds[-1] - thresholds[0])
    return float(torch.trapezoid(pck, thresholds) / span)


def pck_curve(
    errors: PointErrors | ArrayLike,
    min_threshold: float = 0.0,
    max_threshold: float = 50.0,
    num_thresholds: int = 100,
) -> PckCurve:
    """PCK curve and its normalised AUC (default: 3D PCK over 0-50 mm, 100 thresholds).

    A point counts as correct when its error is <= the threshold (inclusive, as in the
    official FreiHAND script). The AUC is the trapezoid integral over the thresholds divided
    by ``max_threshold - min_threshold``.

    Args:
        errors: a :class:`PointErrors` (its mask is honoured) or an array of errors of any
            shape, in the unit of the thresholds (mm for the defaults).
        min_threshold, max_threshold: the threshold range.
        num_thresholds: number of evenly spaced thresholds (>= 2), both ends included.

    Returns:
        :class:`PckCurve`.
    """
    if num_thresholds < 2 or not max_threshold > min_threshold:
        raise ValueError("need num_thresholds >= 2 and max_threshold > min_threshold")
    if isinstance(errors, PointErrors):
        e = errors.per_point[errors._m()]
    else:
        e = _as_f64(errors, "errors").flatten()
    if e.numel() == 0:
        raise ValueError("errors is empty")
    if not bool(torch.isfinite(e).all()):
        raise ValueError("errors contains NaN or inf; mask those points instead")
    thresholds = torch.linspace(
        min_threshold, max_threshold, num_thresholds, dtype=torch.float64, device=e.device
    )
    pck = (e[None, :] <= thresholds[:, None]).to(torch.float64).mean(1)
    return PckCurve(thresholds=thresholds, pck=pck, auc=_trapezoid_auc(pck, thresholds))


def keypoint_errors_2d(
    pred_uv: ArrayLike, gt_uv: ArrayLike, mask: ArrayLike | None = None
) -> PointErrors:
    """2D keypoint errors in pixels.

    Args:
        pred_uv: (B, J, 2) predicted keypoints, pixels.
        gt_uv: (B, J, 2) reference keypoints, pixels.
        mask: optional (B, J) bool (or 0/1) of the keypoints to evaluate (e.g. visible).

    Returns:
        :class:`PointErrors` in px, carrying the mask.
    """
    p, g = _pair(pred_uv, gt_uv, dims=2, unit="pixels")
    m = None
    if mask is not None:
        m = _as_f64(mask, "mask").to(p.device)
        if tuple(m.shape) != tuple(p.shape[:2]):
            raise ValueError(
                f"mask must have shape (B, J) = {tuple(p.shape[:2])}, got {tuple(m.shape)}"
            )
        m = m > 0
    return PointErrors(_distances(p, g), "px", m)


def pck_2d(
    pred_uv: ArrayLike, gt_uv: ArrayLike, threshold_px: float, mask: ArrayLike | None = None
) -> float:
    """2D PCK: share of (unmasked) keypoints whose pixel error is <= ``threshold_px``.

    Args:
        pred_uv: (B, J, 2) predicted keypoints, pixels.
        gt_uv: (B, J, 2) reference keypoints, pixels.
        threshold_px: threshold, pixels.
        mask: optional (B, J) keypoints to evaluate.

    Returns:
        PCK in [0, 1] (NaN if the mask selects nothing).
    """
    err = keypoint_errors_2d(pred_uv, gt_uv, mask)
    sel = err.per_point[err._m()]
    if sel.numel() == 0:
        return float("nan")
    return float((sel <= threshold_px).to(torch.float64).mean())


# --------------------------------------------------------------------------------------------
# Official FreiHAND protocol
# --------------------------------------------------------------------------------------------

#: The official script's PCK thresholds: 100 values from 0 to 0.05 m.
FREIHAND_PCK_RANGE_M = (0.0, 0.05, 100)
#: The official script's F-score thresholds, metres.
FREIHAND_F_THRESHOLDS_M = (0.005, 0.015)


@dataclass(frozen=True)
class FreiHandEvalResult:
    """Scores of :func:`freihand_official_eval`, plus the per-sample arrays behind them.

    Scalar fields mirror the official ``scores.txt`` (there ``*_mean3d`` are in cm; here they
    are in mm and named so; :meth:`scores_txt` gives the official keys and units). Mesh fields
    are None when the predicted mesh topology differs from the ground truth's (the official
    script then writes -1 and skips mesh errors).

    Attributes:
        xyz_mean3d_mm, xyz_auc3d: unaligned keypoint error (absolute camera coordinates) and
            AUC of its PCK over 0-50 mm.
        xyz_al_mean3d_mm, xyz_al_auc3d: the same after the official alignment.
        mesh_mean3d_mm, mesh_auc3d, mesh_al_mean3d_mm, mesh_al_auc3d: per-vertex versions.
        f_score_5mm, f_score_15mm: mean F-scores of the unaligned vertices.
        f_al_score_5mm, f_al_score_15mm: mean F-scores of the aligned vertices (the ones
            usually published).
        shape_is_mano: True when predicted and ground-truth vertex counts match.
        thresholds_mm: (100,) PCK thresholds.
        pck_xyz, pck_xyz_al, pck_mesh, pck_mesh_al: (100,) PCK curves (mean over keypoints
            or vertices of their per-point curves).
        xyz_errors_mm, xyz_al_errors_mm: (N, 21) per-sample per-keypoint errors.
        mesh_errors_mm, mesh_al_errors_mm: (N, V) per-sample per-vertex errors (or None).
        f_scores, f_al_scores: (N, 2) per-sample F-scores at 5 mm and 15 mm.
    """

    xyz_mean3d_mm: float
    xyz_auc3d: float
    xyz_al_mean3d_mm: float
    xyz_al_auc3d: float
    mesh_mean3d_mm: float | None
    mesh_auc3d: float | None
    mesh_al_mean3d_mm: float | None
    mesh_al_auc3d: float | None
    f_score_5mm: float
    f_score_15mm: float
    f_al_score_5mm: float
    f_al_score_15mm: float
    shape_is_mano: bool
    thresholds_mm: Tensor
    pck_xyz: Tensor
    pck_xyz_al: Tensor
    pck_mesh: Tensor | None
    pck_mesh_al: Tensor | None
    xyz_errors_mm: Tensor
    xyz_al_errors_mm: Tensor
    mesh_errors_mm: Tensor | None
    mesh_al_errors_mm: Tensor | None
    f_scores: Tensor
    f_al_scores: Tensor

    def scores_txt(self) -> dict[str, float]:
        """The values the official script writes to ``scores.txt``, with its keys and units.

        ``*_mean3d`` in cm; mesh entries -100 (mean, the script's -1 times 100) and -1 (AUC)
        when the topology differs, as the script writes them.
        """

        def cm(x: float | None) -> float:
            return -100.0 if x is None else x / 10.0

        def auc(x: float | None) -> float:
            return -1.0 if x is None else x

        return {
            "xyz_mean3d": self.xyz_mean3d_mm / 10.0,
            "xyz_auc3d": self.xyz_auc3d,
            "xyz_al_mean3d": self.xyz_al_mean3d_mm / 10.0,
            "xyz_al_auc3d": self.xyz_al_auc3d,
            "mesh_mean3d": cm(self.mesh_mean3d_mm),
            "mesh_auc3d": auc(self.mesh_auc3d),
            "mesh_al_mean3d": cm(self.mesh_al_mean3d_mm),
            "mesh_al_auc3d": auc(self.mesh_al_auc3d),
            "f_score_5": self.f_score_5mm,
            "f_al_score_5": self.f_al_score_5mm,
            "f_score_15": self.f_score_15mm,
            "f_al_score_15": self.f_al_score_15mm,
        }


def _official_measures(errors_m: Tensor) -> tuple[float, float, Tensor, Tensor]:
    """Per-point statistics the way the official ``EvalUtil.get_measures`` forms them.

    Args:
        errors_m: (N, P) errors in metres (every point visible, as the script feeds them).

    Returns:
        mean over points of each point's mean error (metres), mean over points of each
        point's trapezoid AUC, the (T,) PCK curve averaged over points, the (T,) thresholds
        (metres).
    """
    lo, hi, steps = FREIHAND_PCK_RANGE_M
    # numpy's linspace, bit for bit, so that "error <= threshold" ties resolve as in the script
    thresholds = torch.from_numpy(np.linspace(lo, hi, steps)).to(errors_m.device)
    per_point_mean = errors_m.mean(0)  # (P,)
    # (T, P): for each threshold, the share of samples whose error for that point is <= t.
    pck_per_point = torch.stack([(errors_m <= t).to(torch.float64).mean(0) for t in thresholds])
    span = torch.trapezoid(torch.ones_like(thresholds), thresholds)
    auc_per_point = torch.trapezoid(pck_per_point, thresholds, dim=0) / span
    return (
        float(per_point_mean.mean()),
        float(auc_per_point.mean()),
        pck_per_point.mean(1),
        thresholds,
    )


def _official_keypoint_trafo_on_vertices(fit: FreiHandAlignment, verts: Tensor) -> Tensor:
    """The official script's ``align_by_trafo``: vertices moved by the keypoint alignment.

    Reproduced as written: the vertices are centred on *their own* centroid, rotated and
    scaled by ``procrustes_scale * gt_norm`` (the division by the prediction's keypoint norm
    is missing), and shifted by ``gt_centroid - pred_keypoint_centroid + vertex_centroid``.
    """
    v_centroid = verts.mean(1, keepdim=True)
    scale = (fit.procrustes_scale * fit.gt_norm)[:, None, None]
    offset = (fit.gt_centroid - fit.pred_centroid)[:, None]
    return (verts - v_centroid) @ fit.R.transpose(-1, -2) * scale + offset + v_centroid


def freihand_official_eval(
    pred_xyz: ArrayLike,
    pred_verts: ArrayLike,
    gt_xyz: ArrayLike,
    gt_verts: ArrayLike,
    *,
    nonmatching_mesh_alignment: Literal["official", "keypoint_similarity"] = "official",
) -> FreiHandEvalResult:
    """Reproduce the official FreiHAND evaluation (lmb-freiburg/freihand ``eval.py``).

    Protocol, as the script implements it (checked against its source):

    - Unaligned errors use absolute camera-space coordinates (no root centring).
    - Alignment per sample: centre both sets, divide each by its Frobenius norm (+1e-8),
      orthogonal Procrustes (``scipy.linalg.orthogonal_procrustes``: reflections are *not*
      excluded) with the scale it returns, then undo the ground truth's norm and centroid
      (:func:`hand_lib.geometry.procrustes.freihand_procrustes`). Keypoints are aligned on
      keypoints. Vertices are aligned on vertices when the predicted vertex count equals the
      ground truth's (decided on the first sample, as the script does); otherwise with the
      transform estimated from keypoints, applied as the script's ``align_by_trafo`` does
      (``nonmatching_mesh_alignment="official"``, which omits the prediction's norm and
      rotates about the vertex centroid) or as a proper similarity transform
      (``"keypoint_similarity"``, not comparable with leaderboard numbers).
    - Errors are kept per keypoint (per vertex); the reported mean is the mean over
      keypoints of each keypoint's mean; the PCK of a keypoint at threshold t is the share
      of its errors <= t over 100 thresholds in [0, 0.05] m; its AUC is the trapezoid
      integral divided by the range; curves and AUCs are averaged over keypoints.
    - F-scores at 0.005 and 0.015 m between ground-truth and predicted vertices, strict
      ``<``, precision = share of ground-truth vertices matched (see :func:`f_score`),
      computed for unaligned and aligned vertices; the means over samples are reported.
    - Mesh errors are computed only when the topology matches.

    Distances are exact (the script uses Open3D's nearest-neighbour search); all arithmetic
    is float64.

    Args:
        pred_xyz: (N, 21, 3) predicted keypoints, camera space, metres.
        pred_verts: (N, Vp, 3) predicted vertices, metres (Vp = 778 for MANO).
        gt_xyz: (N, 21, 3) ground-truth keypoints, metres.
        gt_verts: (N, Vg, 3) ground-truth vertices, metres.
        nonmatching_mesh_alignment: see above; only used when Vp != Vg.

    Returns:
        :class:`FreiHandEvalResult` (scalars in mm where named so, per-sample arrays kept).
    """
    p_xyz, g_xyz = _pair(pred_xyz, gt_xyz, count=NUM_JOINTS, names=("pred_xyz", "gt_xyz"))
    p_v = _points(pred_verts, "pred_verts", 3, None, "metres").to(p_xyz.device)
    g_v = _points(gt_verts, "gt_verts", 3, None, "metres").to(p_xyz.device)
    n = p_xyz.shape[0]
    if p_v.shape[0] != n or g_v.shape[0] != n:
        raise ValueError(
            f"sample counts differ: pred_xyz {n}, pred_verts {p_v.shape[0]}, "
            f"gt_xyz {g_xyz.shape[0]}, gt_verts {g_v.shape[0]}"
        )
    if nonmatching_mesh_alignment not in ("official", "keypoint_similarity"):
        raise ValueError(f"unknown nonmatching_mesh_alignment {nonmatching_mesh_alignment!r}")
    shape_is_mano = p_v.shape[1] == g_v.shape[1]

    xyz_err = _distances(p_xyz, g_xyz)
    kp_fit = freihand_procrustes(p_xyz, g_xyz)
    xyz_al_err = _distances(kp_fit.apply(p_xyz), g_xyz)
    if shape_is_mano:
        verts_al = freihand_procrustes(p_v, g_v).apply(p_v)
    elif nonmatching_mesh_alignment == "official":
        verts_al = _official_keypoint_trafo_on_vertices(kp_fit, p_v)
    else:
        verts_al = kp_fit.apply(p_v)

    xyz_mean, xyz_auc, pck_xyz, thresholds = _official_measures(xyz_err)
    xyz_al_mean, xyz_al_auc, pck_xyz_al, _ = _official_measures(xyz_al_err)
    mesh_err = mesh_al_err = pck_mesh = pck_mesh_al = None
    mesh_mean = mesh_auc = mesh_al_mean = mesh_al_auc = None
    if shape_is_mano:
        mesh_err = _distances(p_v, g_v)
        mesh_al_err = _distances(verts_al, g_v)
        mesh_mean, mesh_auc, pck_mesh, _ = _official_measures(mesh_err)
        mesh_al_mean, mesh_al_auc, pck_mesh_al, _ = _official_measures(mesh_al_err)
        mesh_mean, mesh_al_mean = mesh_mean * 1000.0, mesh_al_mean * 1000.0

    def scores(pred_vertices: Tensor) -> Tensor:
        d_gt_pred, d_pred_gt = nearest_neighbour_distances(g_v, pred_vertices)
        return torch.stack(
            [_fscore_from_distances(d_gt_pred, d_pred_gt, t).f for t in FREIHAND_F_THRESHOLDS_M],
            dim=1,
        )

    f_raw = scores(p_v)
    f_al = scores(verts_al)
    return FreiHandEvalResult(
        xyz_mean3d_mm=xyz_mean * 1000.0,
        xyz_auc3d=xyz_auc,
        xyz_al_mean3d_mm=xyz_al_mean * 1000.0,
        xyz_al_auc3d=xyz_al_auc,
        mesh_mean3d_mm=mesh_mean,
        mesh_auc3d=mesh_auc,
        mesh_al_mean3d_mm=mesh_al_mean,
        mesh_al_auc3d=mesh_al_auc,
        f_score_5mm=float(f_raw[:, 0].mean()),
        f_score_15mm=float(f_raw[:, 1].mean()),
        f_al_score_5mm=float(f_al[:, 0].mean()),
        f_al_score_15mm=float(f_al[:, 1].mean()),
        shape_is_mano=shape_is_mano,
        thresholds_mm=thresholds * 1000.0,
        pck_xyz=pck_xyz,
        pck_xyz_al=pck_xyz_al,
        pck_mesh=pck_mesh,
        pck_mesh_al=pck_mesh_al,
        xyz_errors_mm=xyz_err * 1000.0,
        xyz_al_errors_mm=xyz_al_err * 1000.0,
        mesh_errors_mm=None if mesh_err is None else mesh_err * 1000.0,
        mesh_al_errors_mm=None if mesh_al_err is None else mesh_al_err * 1000.0,
        f_scores=f_raw,
        f_al_scores=f_al,
    )
