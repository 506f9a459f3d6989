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

from hand_lib.eval import f_score, hamuco_nje, mpjpe, pa_mpjpe, pa_mpvpe, pck_curve
from hand_lib.geometry import similarity_procrustes
from hand_lib.mano import ManoLayer
from hand_lib.train import move_to_device

#: ground-truth and label keys kept from each batch (when present)
GT_KEYS = ("joints_cam", "joints_2d", "pseudo_2d", "pseudo_conf", "K", "mano_cam",
           "has_mano_cam", "view_mask", "M", "seq", "frame", "cam")  # fmt: skip
METRIC_COLUMNS = ("MPJPE", "PA-MPJPE", "N-JE", "PA-MPVPE", "F@5", "F@15", "AUC")

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


def metrics_row(
    pred_joints: np.ndarray | Tensor,
    gt_joints: np.ndarray | Tensor,
    pred_vertices: np.ndarray | Tensor | None = None,
    gt_vertices: np.ndarray | Tensor | None = None,
) -> dict[str, float]:
    """The results-table metrics (see the module docstring) of one method.

    Args:
        pred_joints, gt_joints: (N, 21, 3) metres, FreiHAND order, the same frame.
        pred_vertices, gt_vertices: optional (N, V, 3) metres, the same topology.
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
    return {k: float(v) for k, v in row.items()}


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
    """The results table: one row per method, :data:`METRIC_COLUMNS` then ``extra_columns``
    (missing values are NaN)."""
    columns = [*METRIC_COLUMNS, *extra_columns]
    return pd.DataFrame({name: {c: row.get(c, math.nan) for c in columns}
                         for name, row in rows.items()}).T[columns]  # fmt: skip


def write_results_table(table: pd.DataFrame, path: str | os.PathLike[str], *,
                        digits: int = 2, note: str = "") -> list[Path]:  # fmt: skip
    """Write the table as ``<path>.csv`` and ``<path>.md`` (Markdown, rounded; ``note``
    below it). Returns the two paths."""
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv_path, float_format="%.6g")
    lines = ["| method | " + " | ".join(table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]  # fmt: skip
    for name, row in table.iterrows():
        cells = ["" if pd.isna(v) else f"{v:.{digits if abs(v) >= 1 or v == 0 else 3}f}"
                 for v in row.to_numpy()]  # fmt: skip
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
