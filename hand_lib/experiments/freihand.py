"""HaMuCo on FreiHAND: single-view inference, absolute coordinates, ``pred.json``, scores.

HaMuCo's authors released no FreiHAND evaluation; this is ours. Each FreiHAND image (224x224,
already centred on the hand) is cropped to the network's input size (the whole image by
default, or a centred square), passed as a one-view sample through :class:`HaMuCoNet`, and
the single-view branch's output is used (``output="cross"`` takes the cross-view network's,
run with one view). HaMuCo predicts the hand root-relative (keypoint 9) in metres plus 2D
keypoints in the crop; FreiHAND's ``pred.json`` wants absolute camera coordinates, so the
translation is recovered per image by :func:`hand_lib.geometry.solve_translation` from the
predicted 2D keypoints and the crop's intrinsics (the translation that makes the predicted
3D joints reproject onto the predicted 2D joints). HaMuCo's 2D keypoints are a
weak-perspective view of its 3D joints, so no translation matches them exactly: the
least-squares one puts the hand at roughly ``f / s`` (focal length over the predicted
weak-perspective scale, in matching units) and centres its reprojection on the 2D keypoints;
the 2D-to-perspective mismatch stays small for a hand far from the camera. The result is
expressed in the original image's camera frame (FreiHAND's), written with
:func:`hand_lib.eval.write_freihand_pred_json` and, on the training split (which has ground
truth), scored with the official protocol (:func:`hand_lib.eval.freihand_official_eval`) so
the whole path can be checked locally.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from hand_lib.data import CropConfig, FreiHAND, HandCrop
from hand_lib.data.freihand import FREIHAND_EVALUATION_SIZE
from hand_lib.eval import freihand_official_eval, write_freihand_pred_json
from hand_lib.experiments.s2hand import StageRun
from hand_lib.geometry import solve_translation
from hand_lib.models import HaMuCoNet, normalized_to_pixels
from hand_lib.tasks import HaMuCoTask

__all__ = ["evaluate_freihand", "export_freihand_pred_json", "predict_freihand"]

logger = logging.getLogger(__name__)

Split = Literal["training", "evaluation"]
Output = Literal["single", "cross"]


def _net_of(task_or_net: StageRun | HaMuCoTask | HaMuCoNet) -> HaMuCoNet:
    obj = task_or_net.task if isinstance(task_or_net, StageRun) else task_or_net
    if isinstance(obj, HaMuCoTask):
        obj = obj.net
    if not isinstance(obj, HaMuCoNet):
        raise TypeError(f"expected a HaMuCo StageRun, HaMuCoTask or HaMuCoNet, "
                        f"got {type(obj).__name__}")
    return obj


class _CentredBox:
    """Adds a centred square ``hand_box`` (xyxy pixels) of side ``crop_scale`` x the image's
    shorter side, then crops it with ``crop``."""

    def __init__(self, crop: HandCrop, crop_scale: float) -> None:
        self.crop = crop
        self.crop_scale = crop_scale

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        H, W = sample["image"].shape[-2:]
        half = self.crop_scale * min(H, W) / 2.0
        cx, cy = (W - 1) / 2.0, (H - 1) / 2.0
        sample = dict(sample, hand_box=torch.tensor([cx - half, cy - half, cx + half, cy + half],
                                                    dtype=torch.float64))
        return self.crop(sample)


def _dataset(freihand_root: str | os.PathLike[str], split: Split, image_size: int,
             crop_scale: float, indices: Sequence[int] | None,
             load_verts: bool = False) -> Dataset:
    if not crop_scale > 0:
        raise ValueError(f"crop_scale must be > 0, got {crop_scale}")
    config = CropConfig(out_size=image_size, margin=1.0, min_box_size=1.0)
    if crop_scale == 1.0:
        transform: Any = HandCrop(config, box_from="image", augment=False)
    else:
        transform = _CentredBox(HandCrop(config, box_from="hand_box", augment=False), crop_scale)
    data: Dataset = FreiHAND(freihand_root, split, version="gs", transform=transform,
                             load_verts=load_verts)
    if indices is not None:
        data = Subset(data, list(indices))
    return data


@torch.no_grad()
def predict_freihand(
    task_or_net: StageRun | HaMuCoTask | HaMuCoNet,
    freihand_root: str | os.PathLike[str],
    split: Split = "evaluation",
    *,
    image_size: int = 256,
    crop_scale: float = 1.0,
    output: Output = "single",
    device: str | torch.device = "cpu",
    batch_size: int = 32,
    indices: Sequence[int] | None = None,
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Absolute camera-space HaMuCo predictions for FreiHAND images (green-screen version).

    Args:
        task_or_net: the trained model (run, task or network); put in eval mode here.
        freihand_root: FreiHAND root (see :class:`hand_lib.data.FreiHAND`).
        split: ``"evaluation"`` (for ``pred.json``) or ``"training"`` (has ground truth).
        image_size: side of the network's input crop, pixels: the size it was trained on
            (``settings.hamuco_image_size``; HaMuCo: 256).
        crop_scale: side of the centred square crop as a fraction of the image's shorter
            side; 1.0 (default) takes the whole image, already centred on the hand.
        output: ``"single"`` (single-view branch, default) or ``"cross"`` (the cross-view
            network run on the one view).
        device: where the network runs.
        batch_size: images per forward pass.
        indices: optional subset of the split's samples, in that order (None: all).
        num_workers: DataLoader workers.

    Returns:
        ``xyz`` (N, 21, 3) and ``verts`` (N, 778, 3) float64, metres, FreiHAND's camera frame
        (OpenCV axes), FreiHAND keypoint order; ``translation`` (N, 3) metres (the position of
        keypoint 9); ``keypoints_2d`` (N, 21, 2) predicted keypoints in the original image,
        pixels; ``index`` (N,) sample indices in the split.
    """
    if output not in ("single", "cross"):
        raise ValueError(f"output must be 'single' or 'cross', got {output!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    net = _net_of(task_or_net).to(device).eval()
    data = _dataset(freihand_root, split, image_size, crop_scale, indices)
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("xyz", "verts", "translation",
                                                      "keypoints_2d", "index")}
    for batch in loader:
        images = batch["image"].to(device).unsqueeze(1)  # (B, 1, 3, S, S): one view each
        out = net(images)
        view = out.single_view if output == "single" else out.cross_view
        joints = view.joints_rel[:, 0].double().cpu()  # (B, 21, 3) crop camera axes
        verts = view.vertices_rel[:, 0].double().cpu()
        kps_px = normalized_to_pixels(view.keypoints_2d[:, 0].double().cpu(),
                                      tuple(images.shape[-2:]))
        K_crop = batch["K"].double()
        t = solve_translation(joints, kps_px, K_crop)
        # crop camera -> original camera: X_crop = R_inplane X (identity without rotation)
        R = batch["R_inplane"].double()
        parts["xyz"].append((joints + t[:, None]) @ R)
        parts["verts"].append((verts + t[:, None]) @ R)
        parts["translation"].append((t[:, None] @ R)[:, 0])
        A_inv = torch.linalg.inv(batch["crop_affine"].double())
        kps_h = torch.cat([kps_px, torch.ones_like(kps_px[..., :1])], -1) @ A_inv.transpose(1, 2)
        parts["keypoints_2d"].append(kps_h[..., :2] / kps_h[..., 2:3])
        parts["index"].append(batch["index"])
    result = {k: torch.cat(v).numpy() for k, v in parts.items()}
    if not np.isfinite(result["xyz"]).all() or not np.isfinite(result["verts"]).all():
        raise FloatingPointError("non-finite FreiHAND predictions (diverged model?)")
    behind = int((result["xyz"][..., 2] <= 0).any(-1).sum())
    if behind:
        logger.warning("%d of %d FreiHAND predictions have keypoints behind the camera",
                       behind, len(result["xyz"]))
    return result


def export_freihand_pred_json(
    task_or_net: StageRun | HaMuCoTask | HaMuCoNet,
    freihand_root: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    split: Split = "evaluation",
    expected_count: int | None = None,
    **predict_kwargs: Any,
) -> Path:
    """Predict a FreiHAND split and write the server's ``pred.json`` (then
    :func:`hand_lib.eval.zip_submission` for the upload).

    Args:
        task_or_net: the trained model.
        freihand_root: FreiHAND root.
        out_path: the ``pred.json`` to write (atomically).
        split: ``"evaluation"`` for a submission.
        expected_count: if given, the number of predictions must equal it (3,960 for the
            official evaluation split); a different count on the full evaluation split is
            logged as a warning.
        predict_kwargs: passed to :func:`predict_freihand` (``image_size``, ``output``,
            ``device``, ``batch_size``, ``crop_scale``, ``indices``).

    Returns:
        The path written.
    """
    pred = predict_freihand(task_or_net, freihand_root, split, **predict_kwargs)
    n = len(pred["xyz"])
    if split == "evaluation" and expected_count is None and n != FREIHAND_EVALUATION_SIZE:
        logger.warning("writing %d predictions; the FreiHAND server expects %d", n,
                       FREIHAND_EVALUATION_SIZE)
    return write_freihand_pred_json(out_path, pred["xyz"], pred["verts"],
                                    expected_count=expected_count)


def evaluate_freihand(
    task_or_net: StageRun | HaMuCoTask | HaMuCoNet,
    freihand_root: str | os.PathLike[str],
    *,
    split: Split = "training",
    indices: Sequence[int] | None = None,
    **predict_kwargs: Any,
) -> dict[str, float]:
    """Score HaMuCo on a FreiHAND split that has ground truth, with the official protocol.

    FreiHAND's evaluation ground truth is held by the server, so this runs on the training
    split (``training_xyz.json`` and ``training_verts.json``, green-screen images) or on an
    evaluation split whose ``evaluation_xyz.json``/``evaluation_verts.json`` you have. The
    predictions are the ones :func:`export_freihand_pred_json` would write; a good score
    here validates the pipeline (crop, translation, frame, units) before a submission.

    Args:
        task_or_net: the trained model.
        freihand_root: FreiHAND root.
        split: the split to score.
        indices: optional subset (the training split has 32,560 samples).
        predict_kwargs: passed to :func:`predict_freihand`.

    Returns:
        The official ``scores.txt`` values (:meth:`hand_lib.eval.FreiHandEvalResult.scores_txt`:
        ``xyz_mean3d``, ``xyz_al_mean3d``, ``mesh_*`` in cm, AUCs, F-scores), plus
        ``num_samples``.

    Raises:
        FileNotFoundError: the split has no ground-truth keypoints or vertices.
    """
    gt = FreiHAND(freihand_root, split, version="gs", load_verts=True)
    if gt.xyz is None or gt.verts is None:
        raise FileNotFoundError(
            f"{freihand_root}: scoring needs {split}_xyz.json and {split}_verts.json")
    rows = np.arange(gt.num_annotations) if indices is None else np.asarray(indices, dtype=int)
    pred = predict_freihand(task_or_net, freihand_root, split, indices=rows.tolist(),
                            **predict_kwargs)
    result = freihand_official_eval(pred["xyz"], pred["verts"], gt.xyz[rows], gt.verts[rows])
    return {**result.scores_txt(), "num_samples": float(len(rows))}
