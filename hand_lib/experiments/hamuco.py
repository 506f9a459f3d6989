"""HaMuCo in the suite: build the networks for a profile, train, evaluate, error vs views.

Runs live in ``<runs_dir>/hamuco/`` (``rotation="svd"``, no calibration) or
``<runs_dir>/hamuco_calibrated/`` (``metrics.csv``, ``config.yaml``, ``checkpoints/``) and
always resume from their newest checkpoint, so a finished run is only reloaded.

**Evaluation frame.** Every output is compared with the ground truth *view by view*, in the
axes of that view's crop camera (``joints_cam``, which :class:`hand_lib.data.HandCrop` keeps
in the crop camera's axes): the single-view and cross-view outputs are predicted there, and
the fused hand is expressed in every present view's axes by
:meth:`hand_lib.tasks.HaMuCoTask.predict` (calibrated fusion: averaged in world axes and
rotated by each view's ``R``; SVD fusion: averaged after similarity alignment to that view).
With calibrated fusion the fused rows are therefore the world-frame error (a rotation
applied to both sides leaves every metric unchanged), averaged over the views of a frame.
All joint metrics are root-relative (``MPJPE`` at the wrist, ``N-JE`` at keypoint 9 with the
0-9 bone's scale, HaMuCo's main metric); vertex metrics are Procrustes-aligned, so the crop's
in-plane rotation, absent from HanCo's per-camera MANO fits, does not enter them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from hand_lib.data.hanco import HANCO_NUM_CAMERAS
from hand_lib.experiments.data import (
    data_provenance,
    guard_run_data,
    hanco_dataset,
    validation_subset,
)
from hand_lib.experiments.evaluate import collect_predictions, ground_truth_vertices, metrics_row
from hand_lib.experiments.s2hand import SUITE_NETWORK_CHOICES, StageRun
from hand_lib.experiments.settings import SuiteSettings, training_config
from hand_lib.mano import ManoLayer
from hand_lib.models import HaMuCoConfig, HaMuCoNet
from hand_lib.tasks import HaMuCoTask
from hand_lib.tasks.hamuco import ROTATIONS, Rotation
from hand_lib.train import Trainer, latest_checkpoint, load_weights, seed_everything

__all__ = [
    "HAMUCO_OUTPUTS",
    "build_hamuco_task",
    "error_vs_views",
    "evaluate_hamuco",
    "hamuco_config",
    "hamuco_metrics",
    "hamuco_predictions",
    "hamuco_run_name",
    "load_hamuco",
    "train_hamuco",
]

#: the three outputs evaluated: row name -> suffix of the prediction keys
HAMUCO_OUTPUTS: dict[str, str] = {"single_view": "single", "cross_view": "cross",
                                  "fused": "fused"}  # fmt: skip
#: HaMuCo's in-plane rotation augmentation, degrees (REFERENCE.md section 5)
HAMUCO_ROTATION_DEG = 180.0


def hamuco_run_name(rotation: Rotation = "svd") -> str:
    """Run folder name: ``hamuco`` (SVD rotations) or ``hamuco_calibrated``."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    return "hamuco" if rotation == "svd" else "hamuco_calibrated"


#: PCA coefficients of the suite's HaMuCo finger poses (:class:`HaMuCoConfig` ``pose_pca``;
#: S2HAND's 30). With free 6D fingers, every head HaMuCo trains from 2D drifted away from the
#: mean hand on the validation split (13.6 -> 15.4-18.8 mm PA-MPJPE in 100 steps); in the
#: PCA span the lifter held 13.7 (benchmarks/RESULTS.md, "Learning on a CPU").
HAMUCO_POSE_PCA = 30


def hamuco_config(settings: SuiteSettings, mano_path: str = "", **changes: Any) -> HaMuCoConfig:
    """The network configuration of a profile (encoder and token width from ``settings``)."""
    choices = {k: v for k, v in SUITE_NETWORK_CHOICES.items() if k != "rotation"}  # 6D already
    # the finger poses of the lifter and of both corrections in S2HAND's 30-PCA space
    choices["pose_pca"] = HAMUCO_POSE_PCA
    base = HaMuCoConfig(**choices, encoder=settings.hamuco_encoder,
                        encoder_width=settings.encoder_width,
                        token_dim=settings.hamuco_token_dim, mano_path=str(mano_path or ""))
    return dataclasses.replace(base, **changes)


def build_hamuco_task(settings: SuiteSettings, mano_path: str = "", rotation: Rotation = "svd",
                      mano: ManoLayer | None = None, **changes: Any) -> HaMuCoTask:  # fmt: skip
    """A fresh :class:`HaMuCoTask` (network inside) for a profile; ``changes`` go to
    :class:`HaMuCoConfig`."""
    net = HaMuCoNet(hamuco_config(settings, mano_path, **changes), mano=mano)
    return HaMuCoTask(net, rotation=rotation)


def train_hamuco(
    data_root: str | os.PathLike[str],
    runs_dir: str | os.PathLike[str],
    settings: SuiteSettings,
    *,
    device: str = "cpu",
    mano_path: str = "",
    rotation: Rotation = "svd",
    seed: int = 0,
    rotation_deg: float | None = None,
    max_steps: int | None = None,
    **config_updates: Any,
) -> StageRun:
    """Train (or resume, or just reload) HaMuCo on the multi-view training split.

    Args:
        data_root: HanCo-layout dataset with pseudo labels.
        runs_dir: parent of the run folder (:func:`hamuco_run_name`).
        settings: the profile's sizes (crop side, encoder, tokens, batch, epochs).
        device: "cpu", "cuda", ...
        mano_path: MANO file or folder ("" = the open hand model).
        rotation: ``"svd"`` (no calibration) or ``"calibrated"`` (relative rotations from
            the extrinsics) for the consistency term and the distillation teacher.
        seed: initialisation, shuffling and augmentation seed.
        rotation_deg: in-plane rotation jitter, degrees; None: the suite's, as for S2HAND
            (the crops are turned upright from the pseudo labels first, so HaMuCo's +-180
            degrees would undo that; :data:`HAMUCO_ROTATION_DEG` gives HaMuCo's).
        max_steps: stop after this many steps in total (None: the whole schedule).
        config_updates: dotted trainer-config overrides, e.g. ``**{"optim.lr": 1e-4}``.

    Returns:
        :class:`StageRun` whose ``task`` is the trained :class:`HaMuCoTask` in eval mode.
    """
    name = hamuco_run_name(rotation)
    out_dir = Path(runs_dir) / name
    seed_everything(seed)  # a reproducible initialisation (the trainer seeds after it)
    task = build_hamuco_task(settings, mano_path, rotation)
    guard_run_data(out_dir, data_provenance(data_root))
    train_data = hanco_dataset(data_root, "train", settings.hamuco_image_size, mode="multi",
                               seed=seed, rotation_deg=rotation_deg)  # fmt: skip
    val_frames = None if settings.max_val_samples is None else max(
        1, settings.max_val_samples // HANCO_NUM_CAMERAS)
    val_data = validation_subset(
        hanco_dataset(data_root, "val", settings.hamuco_image_size, mode="multi"), val_frames)
    config = training_config("hamuco", settings, **{"train.seed": seed, **config_updates})
    trainer = Trainer(task, train_data, config, out_dir, device=device, resume=True,
                      val_data=val_data)
    try:
        summary = trainer.fit(max_steps)
    finally:
        trainer.close()
    task.eval()
    checkpoint = summary.last_checkpoint or latest_checkpoint(out_dir / "checkpoints")
    return StageRun(name, out_dir, checkpoint, summary, task)


def load_hamuco(runs_dir: str | os.PathLike[str], settings: SuiteSettings, mano_path: str = "",
                rotation: Rotation = "svd", device: str = "cpu") -> HaMuCoTask:  # fmt: skip
    """The trained task from its run folder's newest checkpoint, in eval mode.

    Raises:
        FileNotFoundError: no checkpoint (run notebook 05_hamuco first).
    """
    run_dir = Path(runs_dir) / hamuco_run_name(rotation)
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise FileNotFoundError(f"no HaMuCo checkpoint in {run_dir}: run notebook 05_hamuco")
    task = build_hamuco_task(settings, mano_path, rotation)
    load_weights(task, checkpoint)
    return task.to(device).eval()


# ---------------------------------------------------------------------------- evaluation


def _task_of(run_or_task: StageRun | HaMuCoTask) -> HaMuCoTask:
    task = run_or_task.task if isinstance(run_or_task, StageRun) else run_or_task
    if not isinstance(task, HaMuCoTask):
        raise TypeError(f"expected a HaMuCo StageRun or HaMuCoTask, got {type(task).__name__}")
    return task


def _view_subset(mask: Tensor, num_views: int, generator: torch.Generator) -> Tensor:
    """(B, N) bool: ``num_views`` present views per sample drawn uniformly (all present
    views where fewer are present)."""
    scores = torch.rand(mask.shape, generator=generator).to(mask.device)
    scores = scores.masked_fill(~mask, -1.0)
    keep = scores.topk(min(num_views, mask.shape[1]), dim=1).indices
    return torch.zeros_like(mask).scatter(1, keep, True) & mask


def _collect(
    predict: Any,
    data_root: str | os.PathLike[str],
    settings: SuiteSettings,
    device: str,
    max_samples: int | None,
    keep_images: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`collect_predictions` over the multi-view test split of a profile."""
    test = hanco_dataset(data_root, "test", settings.hamuco_image_size, mode="multi")
    return collect_predictions(
        predict, test, batch_size=settings.hamuco_batch_size or 8, device=device,
        max_samples=max_samples if max_samples is not None else settings.max_test_samples,
        keep_images=keep_images, num_workers=settings.loader_workers,
    )  # fmt: skip


def hamuco_predictions(
    run_or_task: StageRun | HaMuCoTask,
    data_root: str | os.PathLike[str],
    settings: SuiteSettings,
    device: str = "cpu",
    *,
    num_views: int | None = None,
    seed: int = 0,
    fusion: Rotation | None = None,
    max_samples: int | None = None,
    keep_images: int = 0,
) -> dict[str, np.ndarray]:
    """Predictions and ground truth on the test split (multi-view frames).

    Args:
        run_or_task: a trained run or task (set to eval mode here).
        data_root: HanCo-layout dataset.
        settings: the profile (crop size, batch size, test-sample cap, loader workers).
        device: where the network runs.
        num_views: use only this many views of each frame, drawn at random (seeded by
            ``seed``); None uses every view.
        fusion: ``"svd"`` or ``"calibrated"``; None = the task's rotation mode.
        max_samples: cap on test frames (default ``settings.max_test_samples``).
        keep_images: also return the first frames' crops (``image`` (n, N, 3, S, S)).

    Returns:
        :func:`collect_predictions`'s arrays: ``pred_<key>`` for every key of
        :meth:`HaMuCoTask.predict` (``pred_view_mask`` holds the views used, as 0/1) and the
        ground-truth keys (``joints_cam`` (F, N, 21, 3), ``mano_cam`` (F, N, 61), ...).
    """
    if num_views is not None and num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    task = _task_of(run_or_task).to(device).eval()
    generator = torch.Generator().manual_seed(int(seed))

    def predict(batch: Mapping[str, Any]) -> Mapping[str, Tensor]:
        if num_views is not None:
            batch = {**batch, "view_mask": _view_subset(batch["view_mask"], num_views, generator)}
        return task.predict(batch, fusion)

    return _collect(predict, data_root, settings, device, max_samples, keep_images)


def hamuco_metrics(
    predictions: Mapping[str, np.ndarray],
    mano: ManoLayer | None = None,
    *,
    vertices: bool = True,
) -> dict[str, dict[str, float]]:
    """Results-table rows of the single-view, cross-view and fused outputs.

    Each row is :func:`metrics_row` over every (frame, used view) pair, in that view's crop
    camera axes (see the module docstring), plus ``views`` (mean views used per frame), with
    bootstrap intervals over the frames' sequences when ``predictions`` has ``seq``.

    Args:
        predictions: from :func:`hamuco_predictions`.
        mano: the MANO layer of the ground-truth fits (default: the open hand model); used
            when ``vertices`` and every used view has a fit (``has_mano_cam``).
        vertices: compute the mesh columns (PA-MPVPE, F@5, F@15; the slow part).

    Returns:
        ``{"single_view": row, "cross_view": row, "fused": row}``.
    """
    used = predictions["pred_view_mask"] > 0.5  # (F, N)
    gt_joints = predictions["joints_cam"][used]
    groups = None
    if "seq" in predictions:
        groups = np.broadcast_to(np.asarray(predictions["seq"])[:, None], used.shape)[used]
    gt_vertices = None
    if vertices and "mano_cam" in predictions and bool(predictions["has_mano_cam"][used].all()):
        gt_vertices = ground_truth_vertices(predictions["mano_cam"][used], mano)
    rows = {}
    for name, suffix in HAMUCO_OUTPUTS.items():
        pred_vertices = None
        if gt_vertices is not None:
            pred_vertices = predictions[f"pred_vertices_{suffix}"][used]
        row = metrics_row(predictions[f"pred_joints_{suffix}"][used], gt_joints, pred_vertices,
                          gt_vertices, groups=groups)
        row["views"] = float(used.sum(1).mean())
        rows[name] = row
    return rows


def evaluate_hamuco(
    run_or_task: StageRun | HaMuCoTask,
    data_root: str | os.PathLike[str],
    settings: SuiteSettings,
    device: str = "cpu",
    *,
    num_views: int | None = None,
    seed: int = 0,
    fusion: Rotation | None = None,
    vertices: bool = True,
    max_samples: int | None = None,
) -> dict[str, dict[str, float]]:
    """Single-view, cross-view and fused rows on the test split.

    Args: as :func:`hamuco_predictions` and :func:`hamuco_metrics`.

    Returns:
        ``{"single_view": row, "cross_view": row, "fused": row}``; each row has the
        :data:`~hand_lib.experiments.METRIC_COLUMNS` (mm, F-scores and AUC unitless) and
        ``views``.
    """
    task = _task_of(run_or_task)
    predictions = hamuco_predictions(task, data_root, settings, device, num_views=num_views,
                                     seed=seed, fusion=fusion, max_samples=max_samples)  # fmt: skip
    mano = ManoLayer(task.net.config.mano_path or None) if vertices else None
    return hamuco_metrics(predictions, mano, vertices=vertices)


def error_vs_views(
    run_or_task: StageRun | HaMuCoTask,
    data_root: str | os.PathLike[str],
    settings: SuiteSettings,
    device: str = "cpu",
    *,
    views: Iterable[int] = range(1, 9),
    seed: int = 0,
    fusion: Rotation | None = None,
    metric: str = "N-JE",
    max_samples: int | None = None,
    samples: dict[int, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """The error of each output against the number of input views, as a paired comparison.

    For every test frame a random order of its views is drawn once (seeded by ``seed``).
    With ``k`` views the networks and the fusion see the first ``k`` views of that order,
    and the error is measured on the first one, the *target* view, only. Every ``k`` is
    thus evaluated on the same (frame, target view) pairs with nested view sets, so the
    differences between rows come from the added views alone and not from which views
    happened to be drawn (the single-view column is the same in every row). The test split
    is read once: each batch is predicted for every ``k``.

    Args:
        samples: when given, filled with ``{k: {output: MethodErrors}}``, the per-sample
            errors behind each cell (for paired claims such as "8 views beat 1 view").

    Returns:
        DataFrame indexed by ``views`` with columns ``single_view``, ``cross_view``,
        ``fused``: ``metric`` (a column of :func:`metrics_row`, default N-JE, mm) on the
        target views, and ``<output> lo`` / ``<output> hi``, its 95% interval over test
        sequences.
    """
    from hand_lib.experiments.claims import multi_view_errors

    counts = [int(k) for k in views]
    if not counts or min(counts) < 1:
        raise ValueError(f"views must be a non-empty list of counts >= 1, got {counts}")
    task = _task_of(run_or_task).to(device).eval()
    generator = torch.Generator().manual_seed(int(seed))

    def predict(batch: Mapping[str, Any]) -> Mapping[str, Tensor]:
        mask = batch["view_mask"]
        scores = torch.rand(mask.shape, generator=generator).to(mask.device)
        order = scores.masked_fill(~mask, -1.0).argsort(dim=1, descending=True)
        target = torch.zeros_like(mask).scatter(1, order[:, :1], True)
        out = {}
        for k in counts:
            subset = torch.zeros_like(mask).scatter(1, order[:, :k], True) & mask
            for key, value in task.predict({**batch, "view_mask": subset}, fusion).items():
                if key.startswith("joints_"):
                    out[f"{key}@{k}"] = value
            out[f"view_mask@{k}"] = target
        return out

    predictions = _collect(predict, data_root, settings, device, max_samples)
    records = []
    for k in counts:
        per_k = {key.removesuffix(f"@{k}"): value for key, value in predictions.items()
                 if key.endswith(f"@{k}") or not key.startswith("pred_")}  # fmt: skip
        rows = hamuco_metrics(per_k, vertices=False)
        record: dict[str, float] = {"views": k}
        for name, row in rows.items():
            record[name] = row[metric]
            for bound in ("lo", "hi"):
                if f"{metric} {bound}" in row:
                    record[f"{name} {bound}"] = row[f"{metric} {bound}"]
        records.append(record)
        if samples is not None and "seq" in per_k:
            samples[k] = {name: multi_view_errors(per_k, suffix)
                          for name, suffix in HAMUCO_OUTPUTS.items()}
    return pd.DataFrame.from_records(records).set_index("views")
