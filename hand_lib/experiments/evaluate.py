"""Run a model over a test split and turn its predictions into one row of the results table.

Columns (all from :mod:`hand_lib.eval`, millimetres unless noted):

- ``MPJPE``: joints relative to the wrist (joint 0), no alignment.
- ``PA-MPJPE``: per-sample similarity Procrustes on the 21 joints.
- ``N-JE``: HaMuCo's normalised joint error (root joint 9, scale from the 0-9 bone).
- ``PA-MPVPE``: per-sample similarity Procrustes on the mesh vertices.
- ``F@5``, ``F@15``: F-scores of the Procrustes-aligned vertices at 5 and 15 mm (unitless).
- ``AUC``: area under the 3D PCK curve of the PA-MPJPE errors over 0-50 mm (unitless).

Mesh columns need predicted vertices and a ground-truth MANO fit (``mano_cam`` in HanCo);
they are NaN where either is missing.

**Noise band.** With the sequence of every sample (``groups``), :func:`metrics_row` adds
``<metric> lo`` and ``<metric> hi``, the 95% interval of a bootstrap over test *sequences*
(:func:`hand_lib.eval.sequence_bootstrap`), for MPJPE, PA-MPJPE and N-JE; claims compare
two methods on the same samples with :func:`compare_methods` (paired bootstrap).

**The row to beat.** :func:`mean_hand_predictions` is the untrained answer: MANO's mean pose
and shape, either with the identity rotation (MANO's own frame, as a network whose output
layer starts at zero predicts it) or at the *best constant* rotation, the one rotation
that fits the training split's hands best (:func:`best_constant_rotation`, chosen on
training data, never on the test split).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from hand_lib.eval import (
    Comparison,
    compare,
    f_score,
    hamuco_nje,
    mpjpe,
    pa_mpjpe,
    pa_mpvpe,
    pck_curve,
    sequence_bootstrap,
)
from hand_lib.geometry import similarity_procrustes
from hand_lib.mano import ManoLayer
from hand_lib.train import move_to_device

#: ground-truth and label keys kept from each batch (when present)
GT_KEYS = ("joints_cam", "joints_2d", "pseudo_2d", "pseudo_conf", "K", "mano_cam",
           "has_mano_cam", "view_mask", "M", "seq", "frame", "cam", "cams")
METRIC_COLUMNS = ("MPJPE", "PA-MPJPE", "N-JE", "PA-MPVPE", "F@5", "F@15", "AUC")
#: metrics that get a bootstrap interval (``<name> lo``, ``<name> hi``)
INTERVAL_COLUMNS = ("MPJPE", "PA-MPJPE", "N-JE")

Predict = Callable[[Mapping[str, Any]], Mapping[str, Tensor]]


@torch.no_grad()
def collect_predictions(
    predict: Predict,
    dataset: Dataset,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    max_samples: int | None = None,
    keep_images: int = 0,
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Predictions and ground truth over (the first ``max_samples`` of) a dataset.

    Args:
        predict: maps a batch (on ``device``) to named tensors with a leading batch axis.
        dataset: yields sample dicts (e.g. :func:`hand_lib.experiments.hanco_dataset`).
        keep_images: also return the first ``keep_images`` input images (for figures).

    Returns:
        The prediction keys (prefixed ``pred_``), the :data:`GT_KEYS` present, and
        ``image`` when asked, as float32/int64 arrays concatenated over the batch axis.
    """
    if max_samples is not None and max_samples < len(dataset):
        dataset = Subset(dataset, range(max_samples))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: dict[str, list[np.ndarray]] = {}
    images: list[np.ndarray] = []
    for batch in loader:
        on_device = move_to_device(batch, torch.device(device))
        for key, value in predict(on_device).items():
            chunks.setdefault(f"pred_{key}", []).append(value.detach().float().cpu().numpy())
        for key in GT_KEYS:
            if key in batch:
                chunks.setdefault(key, []).append(batch[key].numpy())
        if sum(len(x) for x in images) < keep_images:
            images.append(batch["image"].numpy())
    result = {k: np.concatenate(v) for k, v in chunks.items()}
    if keep_images:
        result["image"] = np.concatenate(images)[:keep_images]
    return result


def ground_truth_vertices(mano_cam: np.ndarray, mano: ManoLayer | None = None) -> np.ndarray:
    """Camera-space ground-truth mesh (N, V, 3), metres, from HanCo's per-camera fits
    (N, 61) = 48 axis-angle pose (mean pose not included) + 10 shape + 3 translation."""
    mano = mano or ManoLayer()
    fit = torch.as_tensor(mano_cam, dtype=torch.float32)
    out = mano(fit[:, :48].view(-1, 16, 3), fit[:, 48:58], fit[:, 58:61])
    return out.vertices.reshape(len(fit), -1, 3).numpy()


def per_sample_metrics(pred_joints: np.ndarray | Tensor, gt_joints: np.ndarray | Tensor
                       ) -> dict[str, np.ndarray]:
    """(N,) per-sample MPJPE (wrist-relative), PA-MPJPE and N-JE, mm (the table's means are
    their means)."""
    pj = torch.as_tensor(np.asarray(pred_joints), dtype=torch.float64)
    gj = torch.as_tensor(np.asarray(gt_joints), dtype=torch.float64)
    return {
        "MPJPE": mpjpe(pj, gj, root_index=0).per_sample.numpy(),
        "PA-MPJPE": pa_mpjpe(pj, gj).per_sample.numpy(),
        "N-JE": hamuco_nje(pj, gj).per_sample.numpy(),
    }


def metrics_row(
    pred_joints: np.ndarray | Tensor,
    gt_joints: np.ndarray | Tensor,
    pred_vertices: np.ndarray | Tensor | None = None,
    gt_vertices: np.ndarray | Tensor | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, float]:
    """The results-table metrics (see the module docstring) of one method.

    Args:
        pred_joints, gt_joints: (N, 21, 3) metres, FreiHAND order, the same frame.
        pred_vertices, gt_vertices: optional (N, V, 3) metres, the same topology.
        groups: optional (N,) sequence of each sample: adds the bootstrap interval columns
            ``<metric> lo`` / ``<metric> hi`` of :data:`INTERVAL_COLUMNS`.
    """
    pj = torch.as_tensor(np.asarray(pred_joints), dtype=torch.float64)
    gj = torch.as_tensor(np.asarray(gt_joints), dtype=torch.float64)
    pa = pa_mpjpe(pj, gj)
    row = {
        "MPJPE": mpjpe(pj, gj, root_index=0).mean,
        "PA-MPJPE": pa.mean,
        "N-JE": hamuco_nje(pj, gj).mean,
        "PA-MPVPE": math.nan,
        "F@5": math.nan,
        "F@15": math.nan,
        "AUC": pck_curve(pa).auc,
    }
    if pred_vertices is not None and gt_vertices is not None:
        pv = torch.as_tensor(np.asarray(pred_vertices), dtype=torch.float64)
        gv = torch.as_tensor(np.asarray(gt_vertices), dtype=torch.float64)
        row["PA-MPVPE"] = pa_mpvpe(pv, gv).mean
        aligned = similarity_procrustes(pv, gv).apply(pv)
        row["F@5"] = float(f_score(aligned, gv, 0.005).f.mean())
        row["F@15"] = float(f_score(aligned, gv, 0.015).f.mean())
    if groups is not None:
        for name, values in per_sample_metrics(pj, gj).items():
            interval = sequence_bootstrap(values, np.asarray(groups))
            row[f"{name} lo"], row[f"{name} hi"] = interval.low, interval.high
    return {k: float(v) for k, v in row.items()}


def compare_methods(errors_a: np.ndarray, errors_b: np.ndarray, groups: np.ndarray
                    ) -> Comparison:
    """Paired sequence bootstrap of "method A has lower error than method B" on the same
    samples (see :func:`hand_lib.eval.compare`)."""
    return compare(errors_a, errors_b, groups)


def mean_hand_keypoints(mano: ManoLayer | None = None) -> np.ndarray:
    """(21, 3) MANO's mean hand (mean pose, mean shape, identity rotation), metres."""
    mano = mano or ManoLayer()
    with torch.no_grad():
        out = mano(torch.zeros(1, mano.num_joints, 3, dtype=mano.v_template.dtype))
    return out.keypoints[0].double().numpy()


def best_constant_rotation(mean_hand: np.ndarray, gt_joints: np.ndarray) -> np.ndarray:
    """(3, 3) the rotation R minimising ``sum_n || R m - g_n ||^2`` over samples, with the
    mean hand ``m`` (21, 3) and the ground truth ``g_n`` (N, 21, 3) both relative to the
    wrist: the best a network that ignores its input can do for MPJPE. Pass *training*
    joints (in the same crop frames the test uses)."""
    m = mean_hand - mean_hand[:1]
    g = np.asarray(gt_joints, dtype=np.float64)
    g = g - g[:, :1]
    H = np.einsum("jk,njl->kl", m, g)  # sum_n m^T g_n
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


def mean_hand_predictions(gt_joints: np.ndarray, mean_hand: np.ndarray,
                          rotation: np.ndarray | None = None) -> np.ndarray:
    """(N, 21, 3) the mean hand (optionally rotated) placed at each sample's true wrist:
    what the table scores as the no-learning rows (every metric is root-relative)."""
    hand = mean_hand - mean_hand[:1]
    if rotation is not None:
        hand = hand @ np.asarray(rotation).T
    g = np.asarray(gt_joints, dtype=np.float64)
    return g[:, :1] + hand[None]


def per_sample_errors(pred_joints: np.ndarray, gt_joints: np.ndarray) -> np.ndarray:
    """(N,) PA-MPJPE of each sample, mm (for best/median/worst figures)."""
    pj = torch.as_tensor(np.asarray(pred_joints), dtype=torch.float64)
    gj = torch.as_tensor(np.asarray(gt_joints), dtype=torch.float64)
    return pa_mpjpe(pj, gj).per_sample.numpy()


def pa_pck(pred_joints: np.ndarray, gt_joints: np.ndarray) -> dict[str, Any]:
    """3D PCK curve (0-50 mm, 100 thresholds) of Procrustes-aligned joints, as JSON-ready
    lists: ``{"thresholds_mm", "pck", "auc"}``."""
    pj = torch.as_tensor(np.asarray(pred_joints), dtype=torch.float64)
    gj = torch.as_tensor(np.asarray(gt_joints), dtype=torch.float64)
    curve = pck_curve(pa_mpjpe(pj, gj))
    return {"thresholds_mm": curve.thresholds.tolist(), "pck": curve.pck.tolist(),
            "auc": float(curve.auc)}  # fmt: skip


def results_table(rows: Mapping[str, Mapping[str, float]],
                  extra_columns: Sequence[str] = ("train s",)) -> pd.DataFrame:  # fmt: skip
    """The results table: one row per method, :data:`METRIC_COLUMNS`, the interval columns
    where any row has them, then ``extra_columns`` (missing values are NaN)."""
    intervals = [f"{m} {b}" for m in INTERVAL_COLUMNS for b in ("lo", "hi")
                 if any(f"{m} {b}" in row for row in rows.values())]
    columns = [*METRIC_COLUMNS, *intervals, *extra_columns]
    return pd.DataFrame({name: {c: row.get(c, math.nan) for c in columns}
                         for name, row in rows.items()}).T[columns]  # fmt: skip


def write_results_table(table: pd.DataFrame, path: str | os.PathLike[str], *,
                        digits: int = 2, note: str = "") -> list[Path]:  # fmt: skip
    """Write the table as ``<path>.csv`` and ``<path>.md`` (Markdown, rounded; ``note``
    below it). In the Markdown, a metric with interval columns is shown as
    ``mean [lo, hi]`` and the interval columns are folded into it. Returns the two paths."""
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv_path, float_format="%.6g")

    def fmt(v: float) -> str:
        return "" if pd.isna(v) else f"{v:.{digits if abs(v) >= 1 or v == 0 else 3}f}"

    folded = {c for c in table.columns for m in INTERVAL_COLUMNS if c in (f"{m} lo", f"{m} hi")}
    shown = [c for c in table.columns if c not in folded]
    lines = ["| method | " + " | ".join(shown) + " |", "|---|" + "---:|" * len(shown)]
    for name, row in table.iterrows():
        cells = []
        for c in shown:
            cell = fmt(row[c])
            lo, hi = row.get(f"{c} lo"), row.get(f"{c} hi")
            if cell and lo is not None and hi is not None and not (pd.isna(lo) or pd.isna(hi)):
                cell += f" [{lo:.1f}, {hi:.1f}]"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    md_path.write_text("\n".join(lines) + ("\n\n" + note if note else "") + "\n")
    return [csv_path, md_path]


def training_seconds(run_dir: str | os.PathLike[str]) -> float:
    """Wall-clock training time of a run folder (the last ``seconds`` of ``metrics.csv``)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log (train the run first)")
    seconds = pd.read_csv(path)["seconds"].dropna()
    return float(seconds.iloc[-1]) if len(seconds) else math.nan
