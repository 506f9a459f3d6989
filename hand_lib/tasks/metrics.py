"""Per-sample metrics that tasks report from ``validation_step`` (learning curves).

The results table is computed by :mod:`hand_lib.eval`; these are the same definitions in
their simplest form (mean over the 21 joints, float64), cheap enough to run on a validation
split every few hundred steps.
"""

from __future__ import annotations

from torch import Tensor

from hand_lib.geometry import similarity_procrustes

__all__ = ["joint_metrics"]


def joint_metrics(pred_joints: Tensor, gt_joints: Tensor, pred_2d: Tensor | None = None,
                  gt_2d: Tensor | None = None) -> dict[str, Tensor]:
    """Per-sample errors of a batch.

    Args:
        pred_joints, gt_joints: (B, 21, 3) metres, the same camera frame.
        pred_2d, gt_2d: optional (B, 21, 2) pixels.

    Returns:
        ``pa_mpjpe_mm`` (after similarity Procrustes) and ``mpjpe_mm`` (relative to the wrist),
        (B,) each; with 2D, ``keypoints_2d_px`` (B,).
    """
    p, g = pred_joints.double(), gt_joints.double()
    aligned = similarity_procrustes(p, g).apply(p)
    out = {
        "pa_mpjpe_mm": 1000.0 * (aligned - g).norm(dim=-1).mean(-1),
        "mpjpe_mm": 1000.0 * ((p - p[:, :1]) - (g - g[:, :1])).norm(dim=-1).mean(-1),
    }
    if pred_2d is not None and gt_2d is not None:
        out["keypoints_2d_px"] = (pred_2d.double() - gt_2d.double()).norm(dim=-1).mean(-1)
    return {k: v.float() for k, v in out.items()}


def validation_metrics(out, batch) -> dict[str, Tensor]:  # noqa: ANN001 (S2HandOutput, dict)
    """:func:`joint_metrics` of a single-view network output against a batch, plus the
    keypoint head's 2D error (``heatmap_2d_px``) when the network has one."""
    metrics = joint_metrics(out.joints, batch["joints_cam"], out.joints_2d, batch["joints_2d"])
    if getattr(out, "keypoints", None) is not None:
        metrics["heatmap_2d_px"] = (out.keypoints.keypoints_2d - batch["joints_2d"]).norm(
            dim=-1).mean(-1)
    return metrics


__all__ += ["validation_metrics"]
