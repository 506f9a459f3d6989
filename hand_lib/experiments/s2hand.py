"""S2HAND in the suite: build the network for a profile, train a stage, evaluate it.

Runs live in ``<runs_dir>/<stage>/`` (``metrics.csv``, ``config.yaml``, ``checkpoints/``).
Training always resumes from the newest checkpoint there, so re-executing a notebook after
an interruption continues where it stopped, and re-executing a finished one costs nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from hand_lib.experiments.data import data_provenance, guard_run_data, hanco_dataset
from hand_lib.experiments.settings import SuiteSettings, training_config
from hand_lib.losses import keypoint_2d_l1_loss
from hand_lib.mano import ManoLayer
from hand_lib.models import S2HandConfig, S2HandNet
from hand_lib.tasks import S2HandTask
from hand_lib.train import Trainer, TrainSummary, latest_checkpoint, load_weights, seed_everything

#: suite stage -> S2HAND task stage
TASK_STAGE = {"s2hand_shape": "shape", "s2hand_kp": "kp", "s2hand_finetune": "finetune",
              "s2hand_e2e": "e2e", "supervised": "shape"}  # fmt: skip


def s2hand_config(settings: SuiteSettings, mano_path: str = "", **changes: Any) -> S2HandConfig:
    """The network configuration of a profile (texture and hourglass heads included)."""
    base = S2HandConfig(
        encoder=settings.encoder, hidden=settings.hidden,
        hourglass_width=settings.hourglass_width, hourglass_stacks=settings.hourglass_stacks,
        heatmap_size=settings.heatmap_size, mano_path=str(mano_path or ""),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


class SupervisedTask(nn.Module):
    """The fully supervised upper bound: S2HAND's single-view network trained with the 3D
    ground truth (root-relative joints, L1 in millimetres) and ground-truth 2D keypoints.

    ``training_step`` returns ``joints_3d`` (mean L1 of wrist-relative joints, mm) and
    ``keypoint_2d`` (mean L1 of the projected joints against the true 2D keypoints, px,
    weighted 0.01).
    """

    def __init__(self, net: S2HandNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Mapping[str, Any]):
        return self.net(batch["image"], batch["K"], run_hourglass=False, run_texture=False)

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, Tensor]:
        out = self(batch)
        gt = batch["joints_cam"]
        rel = (out.joints - out.joints[:, :1]) - (gt - gt[:, :1])
        return {
            "joints_3d": 1000.0 * rel.abs().mean(),
            "keypoint_2d": 0.01 * keypoint_2d_l1_loss(out.joints_2d, batch["joints_2d"]),
        }

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        out = self(batch)
        return {"joints": out.joints, "vertices": out.vertices, "joints_2d": out.joints_2d}


@dataclass
class StageRun:
    """A trained stage: where it lives and what it reported.

    Attributes:
        stage: suite stage name; out_dir: its run folder; checkpoint: newest checkpoint.
        summary: the trainer's :class:`TrainSummary`; task: the trained task (eval mode).
    """

    stage: str
    out_dir: Path
    checkpoint: Path
    summary: TrainSummary
    task: nn.Module

    def losses(self) -> pd.DataFrame:
        """The logged training losses (``metrics.csv``) as a DataFrame."""
        return pd.read_csv(self.out_dir / "metrics.csv")


def build_task(stage: str, settings: SuiteSettings, mano_path: str = "",
               mano: ManoLayer | None = None) -> nn.Module:  # fmt: skip
    """A fresh task (network inside) for a suite stage."""
    if stage not in TASK_STAGE:
        raise ValueError(f"stage must be one of {sorted(TASK_STAGE)}, got {stage!r}")
    heads = {"texture": stage in ("s2hand_finetune", "s2hand_e2e"),
             "hourglass": stage not in ("s2hand_shape", "supervised")}  # fmt: skip
    net = S2HandNet(s2hand_config(settings, mano_path, **heads), mano=mano)
    if stage == "supervised":
        return SupervisedTask(net)
    return S2HandTask(net, TASK_STAGE[stage])


def train_s2hand_stage(
    stage: str,
    data_root: str | os.PathLike[str],
    runs_dir: str | os.PathLike[str],
    settings: SuiteSettings,
    *,
    device: str = "cpu",
    mano_path: str = "",
    init_from: Mapping[str, str | os.PathLike[str]] | None = None,
    seed: int = 0,
    **config_updates: Any,
) -> StageRun:
    """Train (or resume, or just reload) one stage.

    Args:
        stage: ``s2hand_shape``, ``s2hand_kp``, ``s2hand_finetune``, ``s2hand_e2e`` or
            ``supervised``.
        data_root: HanCo-layout dataset with pseudo labels.
        runs_dir: parent folder of the run folders.
        settings: the profile's sizes.
        init_from: for finetuning, ``{"s2hand_shape": ckpt, "s2hand_kp": ckpt}``: the
            encoder and regressor come from the first, the hourglass from the second.
        config_updates: dotted trainer-config overrides, e.g. ``**{"optim.lr": 1e-4}``.
    """
    out_dir = Path(runs_dir) / stage
    seed_everything(seed)  # a reproducible initialisation (the trainer seeds after it)
    task = build_task(stage, settings, mano_path)
    if stage == "s2hand_finetune":
        if not init_from or not {"s2hand_shape", "s2hand_kp"} <= set(init_from):
            raise ValueError("s2hand_finetune needs init_from={'s2hand_shape': checkpoint, "
                             "'s2hand_kp': checkpoint}")  # fmt: skip
        if latest_checkpoint(out_dir / "checkpoints") is None:  # resuming needs no init
            load_weights(task, init_from["s2hand_shape"],
                         {"net.encoder.": "net.encoder.", "net.regressor.": "net.regressor."})
            load_weights(task, init_from["s2hand_kp"], {"net.hourglass.": "net.hourglass."})
    guard_run_data(out_dir, data_provenance(data_root))
    train_data = hanco_dataset(data_root, "train", settings.image_size, seed=seed)
    config = training_config(stage, settings, **{"train.seed": seed, **config_updates})
    trainer = Trainer(task, train_data, config, out_dir, device=device, resume=True)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    task.eval()
    return StageRun(stage, out_dir, summary.last_checkpoint or latest_checkpoint(
        out_dir / "checkpoints"), summary, task)  # fmt: skip


def load_stage(stage: str, runs_dir: str | os.PathLike[str], settings: SuiteSettings,
               mano_path: str = "", device: str = "cpu") -> nn.Module:  # fmt: skip
    """The task of a trained stage, weights from its newest checkpoint, in eval mode.

    Raises:
        FileNotFoundError: the stage has not been trained (names the notebook to run).
    """
    ckpt = latest_checkpoint(Path(runs_dir) / stage / "checkpoints")
    if ckpt is None:
        notebook = {"s2hand_shape": "02_s2hand_shape", "s2hand_kp": "03_s2hand_keypoints"}.get(
            stage, "04_s2hand_finetune / 06_evaluation")
        raise FileNotFoundError(f"no checkpoint of {stage} in {Path(runs_dir) / stage}: run "
                                f"notebook {notebook} first")  # fmt: skip
    task = build_task(stage, settings, mano_path)
    load_weights(task, ckpt)
    return task.to(device).eval()


def evaluate_s2hand(
    task: nn.Module,
    data_root: str | os.PathLike[str],
    settings: SuiteSettings,
    *,
    device: str = "cpu",
    keep_images: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Results-table row of a single-view task on the test split, and the raw predictions.

    Returns:
        ``(row, predictions)``: the :func:`metrics_row` values plus ``2D px`` (mean error of
        the projected joints against the true 2D keypoints, crop pixels) and, for tasks with
        an hourglass, ``HG 2D px``; the predictions of :func:`collect_predictions` with
        ``gt_vertices`` added when the split has MANO fits.
    """
    import numpy as np

    from hand_lib.experiments.evaluate import collect_predictions, ground_truth_vertices
    from hand_lib.experiments.evaluate import metrics_row as table_row

    test = hanco_dataset(data_root, "test", settings.image_size)
    task = task.to(device).eval()
    preds = collect_predictions(task.predict, test, batch_size=settings.batch_size or 16,
                                device=device, max_samples=settings.max_test_samples,
                                keep_images=keep_images)  # fmt: skip
    gt_vertices = None
    if "mano_cam" in preds and bool(np.all(preds.get("has_mano_cam", False))):
        mano = task.net.mano.to("cpu")
        gt_vertices = ground_truth_vertices(preds["mano_cam"], mano)
        task.net.mano.to(device)
        preds["gt_vertices"] = gt_vertices
    row = table_row(preds["pred_joints"], preds["joints_cam"], preds["pred_vertices"],
                    gt_vertices)  # fmt: skip
    row["2D px"] = float(np.linalg.norm(preds["pred_joints_2d"] - preds["joints_2d"], axis=-1)
                         .mean())  # fmt: skip
    if "pred_keypoints_2d" in preds:
        row["HG 2D px"] = float(np.linalg.norm(preds["pred_keypoints_2d"] - preds["joints_2d"],
                                               axis=-1).mean())  # fmt: skip
    return row, preds
