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

from hand_lib.experiments.data import (
    data_provenance,
    guard_run_data,
    hanco_dataset,
    validation_subset,
)
from hand_lib.experiments.settings import SuiteSettings, training_config
from hand_lib.losses import keypoint_2d_l1_loss
from hand_lib.mano import ManoLayer
from hand_lib.models import S2HandConfig, S2HandNet
from hand_lib.tasks import S2HandTask
from hand_lib.train import Trainer, TrainSummary, latest_checkpoint, load_weights, seed_everything

#: suite stage -> S2HAND task stage
TASK_STAGE = {"s2hand_shape": "shape", "s2hand_kp": "kp", "s2hand_finetune": "finetune",
              "s2hand_e2e": "e2e", "supervised": "shape"}  # fmt: skip


#: What the suite's single-view networks do differently from the papers, in every profile
#: (chosen on the validation split, see benchmarks/RESULTS.md "learning on a CPU"): 2D
#: keypoint heatmaps on the encoder, lifted to the hand by an MLP that learns from the pseudo
#: labels themselves (the tasks' lifter terms); the encoder learns from the 2D terms only
#: (the 3D heads read its features); the global rotation in 6D, starting upright.
SUITE_NETWORK_CHOICES: dict[str, Any] = {"keypoint_features": True, "regressor_gradient": 0.0,
                                         "train_lifter_through_image": False,
                                         "rotation": "rot6d"}


def s2hand_config(settings: SuiteSettings, mano_path: str = "", **changes: Any) -> S2HandConfig:
    """The network configuration of a profile (texture and hourglass heads included), with
    :data:`SUITE_NETWORK_CHOICES`."""
    base = S2HandConfig(**SUITE_NETWORK_CHOICES,
        encoder=settings.encoder, encoder_width=settings.encoder_width, hidden=settings.hidden,
        hourglass_width=settings.hourglass_width, hourglass_stacks=settings.hourglass_stacks,
        heatmap_size=settings.heatmap_size, mano_path=str(mano_path or ""),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class SupervisedWeights:
    """Weights of the supervised bound's terms (ours; the papers train no such network).

    Attributes:
        joints_3d: mean L1 of camera-frame joints relative to keypoint 9, mm.
        articulation: mean L1 of the joints posed with the finger pose alone (global
            rotation removed, mean shape), mm: the hand's articulation in its own frame.
        rotation: mean L1 of the global rotation matrix entries (x100 puts it near mm).
        keypoint_2d: mean L1 of the projected joints against the true 2D keypoints, px.
        keypoint_heatmap, keypoint_integral: the keypoint head against the true 2D
            keypoints (:func:`hand_lib.losses.heatmap_cross_entropy_loss`, integral, px).
        lifter: multiplies the 3D terms computed again with the lifter fed jittered copies of
            the true 2D keypoints (as :class:`hand_lib.tasks.S2HandTask` does with the pseudo
            labels).
    """

    joints_3d: float = 1.0
    articulation: float = 1.0
    rotation: float = 100.0
    keypoint_2d: float = 0.01
    keypoint_heatmap: float = 1.0
    keypoint_integral: float = 1e-2
    lifter: float = 1.0


class SupervisedTask(nn.Module):
    """The fully supervised bound: S2HAND's single-view network trained with the ground
    truth: the 3D joints, and the MANO fit's global rotation and finger pose
    (HanCo's per-camera fit ``mano_cam``, its rotation turned with the crop's ``R_inplane``),
    so that orientation and articulation are both supervised and neither has to be traded
    for the other (a wrist-relative camera-frame loss alone is dominated by orientation);
    with the keypoint head, the true 2D keypoints too. See :class:`SupervisedWeights`.
    """

    def __init__(self, net: S2HandNet, weights: SupervisedWeights | None = None,
                 lifter_repeats: int = 4, lifter_noise: float = 0.03) -> None:
        super().__init__()
        self.net = net
        self.weights = weights or SupervisedWeights()
        self.lifter_repeats = lifter_repeats
        self.lifter_noise = lifter_noise

    def forward(self, batch: Mapping[str, Any]):
        return self.net(batch["image"], batch["K"], run_hourglass=False, run_texture=False)

    def _articulated(self, finger_rotmats: Tensor) -> Tensor:
        """Keypoints (B, 21, 3) of the mean-shape hand posed by its finger rotations only."""
        eye = torch.eye(3, dtype=finger_rotmats.dtype, device=finger_rotmats.device)
        rots = torch.cat([eye.expand(len(finger_rotmats), 1, 3, 3), finger_rotmats], dim=1)
        return self.net.mano(rots, pose_type="rotmat").keypoints

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, Tensor]:
        from hand_lib.geometry import axis_angle_to_matrix
        from hand_lib.losses import heatmap_cross_entropy_loss, heatmap_integral_loss

        size = tuple(batch["image"].shape[-2:])
        w = self.weights
        out = self(batch)
        fit = batch["mano_cam"]
        mano = self.net.mano
        gt_rot = batch["R_inplane"] @ axis_angle_to_matrix(fit[:, :3])
        gt_fingers = axis_angle_to_matrix((fit[:, 3:48] + mano.hands_mean).view(-1, 15, 3))
        terms = self._hand_terms(out, batch["joints_cam"], gt_rot, gt_fingers, 1.0)
        terms["keypoint_2d"] = w.keypoint_2d * keypoint_2d_l1_loss(out.joints_2d,
                                                                   batch["joints_2d"])
        if out.keypoints is not None:
            terms["keypoint_heatmap"] = w.keypoint_heatmap * heatmap_cross_entropy_loss(
                out.keypoints.logits, batch["joints_2d"], size)
            terms["keypoint_integral"] = w.keypoint_integral * heatmap_integral_loss(
                out.keypoints.keypoints_2d, batch["joints_2d"])
            if w.lifter > 0 and self.lifter_repeats > 0:  # the lifter on the true 2D
                R = self.lifter_repeats
                kp = batch["joints_2d"].repeat(R, 1, 1)
                box = (kp.amax(1) - kp.amin(1)).amax(-1)
                kp = kp + torch.randn_like(kp) * (self.lifter_noise * box)[:, None, None]
                K = batch["K"].repeat(R, 1, 1)
                hand = self.net.decode(self.net.lift(kp, K, size), K, size)
                lifted = self._hand_terms(hand, batch["joints_cam"].repeat(R, 1, 1),
                                          gt_rot.repeat(R, 1, 1),
                                          gt_fingers.repeat(R, 1, 1, 1), w.lifter)
                terms.update({f"lifter_{k}": v for k, v in lifted.items()})
        return terms

    def _hand_terms(self, out, gt: Tensor, gt_rot: Tensor, gt_fingers: Tensor,  # noqa: ANN001
                    scale: float) -> dict[str, Tensor]:
        w = self.weights
        rel = (out.joints - out.joints[:, 9:10]) - (gt - gt[:, 9:10])
        return {
            "joints_3d": scale * w.joints_3d * 1000.0 * rel.abs().mean(),
            "articulation": scale * w.articulation * 1000.0 * (
                self._articulated(out.rot_mats[:, 1:]) - self._articulated(gt_fingers)
            ).abs().mean(),
            "rotation": scale * w.rotation * (out.global_rotmat - gt_rot).abs().mean(),
        }

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Per-sample errors against the ground truth (the learning curve)."""
        from hand_lib.tasks.metrics import validation_metrics

        return validation_metrics(self(batch), batch)

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        out = self(batch)
        result = {"joints": out.joints, "vertices": out.vertices, "joints_2d": out.joints_2d}
        if out.keypoints is not None:
            result["keypoints_2d"] = out.keypoints.keypoints_2d
        return result


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
    return S2HandTask(net, TASK_STAGE[stage], render_downsample=settings.render_downsample,
                      render_samples=settings.render_samples)


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
    val_data = validation_subset(hanco_dataset(data_root, "val", settings.image_size),
                                 settings.max_val_samples)
    config = training_config(stage, settings, **{"train.seed": seed, **config_updates})
    trainer = Trainer(task, train_data, config, out_dir, device=device, resume=True,
                      val_data=val_data)
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
                    gt_vertices, groups=preds.get("seq"))
    row["2D px"] = float(np.linalg.norm(preds["pred_joints_2d"] - preds["joints_2d"], axis=-1)
                         .mean())  # fmt: skip
    if "pred_keypoints_2d" in preds:
        row["HG 2D px"] = float(np.linalg.norm(preds["pred_keypoints_2d"] - preds["joints_2d"],
                                               axis=-1).mean())  # fmt: skip
    return row, preds
