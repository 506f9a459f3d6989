"""HaMuCo's training task: the networks, the multi-view loss terms and the evaluation outputs.

A *task* is what :class:`hand_lib.train.Trainer` trains (see :mod:`hand_lib.tasks`). Terms
(REFERENCE.md section 5; names and default weights from :class:`HaMuCoLossWeights`), all L1:

========================= ================================================================
term                      definition (present views only)
========================= ================================================================
keypoint_2d_single        ``mean c |x_sv - y|``: single-view 2D keypoints against the pseudo
                          labels ``y``, both in normalised crop coordinates, ``c`` the
                          detector confidence used linearly (:func:`keypoint_2d_l1_loss`)
keypoint_2d_cross         the same for the cross-view output
multiview_consistency     cross-view 3D points (778 vertices + 21 joints) of the views of a
                          frame made consistent under similarity alignment, alternating
                          "others to view v" and "view v to the detached mean" by step
                          (:func:`multiview_consistency_loss`, :func:`consistency_phase`)
distillation              ``mean |P_sv - sg(F)|``: single-view 3D points toward the detached
                          fused cross-view points ``F_v = mean_u A_{u->v}(P_cv,u)``
shape_prior               ``mean |beta|`` of the single-view shape (the cross-view shape is
                          the single-view one, detached)
pose_prior_single/_cross  ``mean |theta|``: finger axis-angle pose toward MANO's mean pose
========================= ================================================================

With a keypoint head and lifter (``HaMuCoConfig.keypoint_features``; not in the paper) the
task adds the head's heatmap cross-entropy and integral terms, and the *lifter terms*: the
lifter is fed jittered copies of the pseudo labels and the hands it lifts get the
single-view 2D, pose and shape prior terms, S2HAND's joint-angle prior and the multi-view
consistency across the views of each frame (:meth:`HaMuCoTask._lifter_terms`).

**3D units.** The 3D points enter the multi-view terms root-relative (keypoint 9) in units of
:data:`POINT_UNIT_M` = 0.2 m (half of HaMuCo's 0.4 m bounding cube, the unit of the
original's ``coord_xyz``), so their L1 has the magnitude of the 2D terms (normalised crop
units, where a hand spans about 1) and the original weights apply unchanged.

**Rotations.** ``rotation="svd"`` estimates every view-to-view similarity by Procrustes (no
calibration needed); ``"calibrated"`` takes the relative rotations from the extrinsics ``M``
of the batch. :class:`hand_lib.data.HandCrop` rotates each crop's camera about its optical
axis and updates ``M`` to match, so the crops' camera axes (the axes the network predicts
in) are exactly the axes ``M[:3, :3]`` maps the world into.

**Missing views.** ``view_mask`` (B, N) False marks views that do not exist; the network
does not encode them and their outputs are NaN. Every term is computed on the present views
only: the 2D and prior terms index them out, the multi-view terms run per group of samples
that share a view pattern (a frame with a single present view has no consistency term; its
fused teacher is its own cross-view output).

Batch keys (a collated multi-view sample after :class:`hand_lib.data.HandCrop`):
``image`` (B, N, 3, S, S) in [0, 1], ``pseudo_2d`` (B, N, 21, 2) crop pixels,
``pseudo_conf`` (B, N, 21), optional ``view_mask`` (B, N) bool and ``pseudo_valid`` (B, N)
bool, and ``M`` (B, N, 4, 4) world-to-camera for ``rotation="calibrated"`` or calibrated
fusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from hand_lib.losses import (
    HaMuCoLossWeights,
    align_views,
    consistency_phase,
    distillation_loss,
    fused_points,
    heatmap_cross_entropy_loss,
    heatmap_integral_loss,
    joint_angle_prior_loss,
    keypoint_2d_l1_loss,
    multiview_consistency_loss,
    pose_prior_loss,
    shape_regularizer,
)
from hand_lib.losses.multiview import ConsistencyPhase
from hand_lib.models import HaMuCoNet, HaMuCoOutput, fuse_views, pixels_to_normalized
from hand_lib.models.hamuco import SingleViewOutput
from hand_lib.tasks.lifter import jittered_labels
from hand_lib.tasks.metrics import joint_metrics

__all__ = ["POINT_UNIT_M", "HaMuCoTask"]

#: Unit of the 3D points in the multi-view terms, metres (half of HaMuCo's 0.4 m cube).
POINT_UNIT_M = 0.2

Rotation = Literal["svd", "calibrated"]
ROTATIONS: tuple[str, ...] = ("svd", "calibrated")


class HaMuCoTask(nn.Module):
    """HaMuCo's collaborative self-supervised training (one stage, everything trains).

    Args:
        net: the :class:`HaMuCoNet`.
        weights: loss weights (HaMuCo's released values by default).
        rotation: ``"svd"`` (estimated view-to-view rotations) or ``"calibrated"`` (from the
            batch's ``M``); used by the consistency term, the distillation teacher and the
            default fusion of :meth:`predict`.
        consistency_interval: steps per consistency phase (HaMuCo alternates every step).
        point_unit_m: unit of the 3D points in the multi-view terms, metres.
        lifter_repeats, lifter_noise: with a keypoint head, the single-view 2D and pose-prior
            terms are also computed with the lifter fed ``lifter_repeats`` jittered copies of
            the pseudo labels (as :class:`hand_lib.tasks.S2HandTask` does).
    """

    def __init__(
        self,
        net: HaMuCoNet,
        weights: HaMuCoLossWeights | None = None,
        rotation: Rotation = "svd",
        *,
        consistency_interval: int = 1,
        point_unit_m: float = POINT_UNIT_M,
        lifter_repeats: int = 4,
        lifter_noise: float = 0.03,
    ) -> None:
        super().__init__()
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if consistency_interval < 1:
            raise ValueError(f"consistency_interval must be >= 1, got {consistency_interval}")
        if not point_unit_m > 0:
            raise ValueError(f"point_unit_m must be > 0, got {point_unit_m}")
        self.net = net
        self.weights = weights or HaMuCoLossWeights()
        self.rotation: Rotation = rotation
        self.consistency_interval = consistency_interval
        self.point_unit_m = point_unit_m
        self.lifter_repeats = lifter_repeats
        self.lifter_noise = lifter_noise

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Mapping[str, Any]) -> HaMuCoOutput:
        """The network's prediction for a batch (``image``, optional ``view_mask``)."""
        return self.net(batch["image"], batch.get("view_mask"))

    def _rotations(self, batch: Mapping[str, Any]) -> Tensor:
        """(B, N, 3, 3) world-to-camera rotations of the crops' cameras."""
        if "M" not in batch:
            raise KeyError('calibrated rotations need the batch key "M" (B, N, 4, 4)')
        return batch["M"][..., :3, :3]

    def _points(self, view: SingleViewOutput) -> Tensor:
        """(B, N, 799, 3) vertices then joints, root-relative, in units of point_unit_m."""
        return torch.cat([view.vertices_rel, view.joints_rel], dim=2) / self.point_unit_m

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, Tensor]:
        """Weighted loss terms (keys: the fields of :class:`HaMuCoLossWeights`).

        Args:
            batch: see the module docstring.
            step: global step; selects the consistency phase.

        Returns:
            name -> weighted scalar term.
        """
        out = self(batch)
        mask = out.view_mask  # (B, N) the views that exist
        H, W = batch["image"].shape[-2:]
        target = pixels_to_normalized(batch["pseudo_2d"], (H, W))  # (B, N, 21, 2)
        conf = batch["pseudo_conf"]
        if "pseudo_valid" in batch:  # a view without a label file has no 2D term
            conf = conf * batch["pseudo_valid"].to(conf.dtype)[..., None]
        sv, cv = out.single_view, out.cross_view
        w = self.weights

        terms = {
            "keypoint_2d_single": w.keypoint_2d_single * keypoint_2d_l1_loss(
                sv.keypoints_2d[mask], target[mask], conf[mask]),
            "keypoint_2d_cross": w.keypoint_2d_cross * keypoint_2d_l1_loss(
                cv.keypoints_2d[mask], target[mask], conf[mask]),
        }  # fmt: skip
        rotations = self._rotations(batch) if self.rotation == "calibrated" else None
        consistency, distillation = self._multiview_terms(
            self._points(cv), self._points(sv), mask, rotations,
            consistency_phase(step, self.consistency_interval),
        )  # fmt: skip
        terms["multiview_consistency"] = w.multiview_consistency * consistency
        terms["distillation"] = w.distillation * distillation
        terms["shape_prior"] = w.shape_prior * shape_regularizer(sv.betas[mask], p=1)
        terms["pose_prior_single"] = w.pose_prior_single * pose_prior_loss(
            sv.pose_axis_angle[mask])  # fmt: skip
        terms["pose_prior_cross"] = w.pose_prior_cross * pose_prior_loss(
            cv.pose_axis_angle[mask])  # fmt: skip
        if sv.heatmap_logits is not None and sv.heatmap_keypoints_2d is not None:
            # the single-view branch's keypoint head (HaMuCoConfig.keypoint_features)
            pixels, c = batch["pseudo_2d"][mask], conf[mask]
            terms["keypoint_heatmap"] = w.keypoint_heatmap * heatmap_cross_entropy_loss(
                sv.heatmap_logits[mask], pixels, (H, W), c)
            terms["keypoint_integral"] = w.keypoint_integral * heatmap_integral_loss(
                sv.heatmap_keypoints_2d[mask], pixels, c)
            if self.net.lifter is not None and w.lifter > 0 and self.lifter_repeats > 0:
                terms.update(self._lifter_terms(sv, mask, pixels, c, (H, W), rotations,
                                                consistency_phase(step, self.consistency_interval)))
        return terms

    def _lifter_terms(self, sv: SingleViewOutput, mask: Tensor, pixels: Tensor, conf: Tensor,
                      size: tuple[int, int], rotations: Tensor | None,
                      phase: ConsistencyPhase) -> dict[str, Tensor]:
        """Terms of the hands lifted from jittered copies of the present views' pseudo labels
        (joints without a label: the keypoint head's): the single-view 2D and prior terms,
        and the multi-view consistency of the lifted hands of each frame's views.

        The consistency is the multi-view signal of HaMuCo applied where the 3D is decided:
        a lifter trained by 2D reprojection alone learns whatever depth fits the 2D (the
        monocular ambiguity; measured: PA-MPJPE 13.6 -> 21-27 mm within 200 steps on the
        quick set), while the views of one frame must agree on a single hand."""
        w, R = self.weights, self.lifter_repeats
        inputs, targets, confs = jittered_labels(pixels, conf,
                                                 sv.heatmap_keypoints_2d[mask].detach(), R,
                                                 self.lifter_noise, size)
        hand = self.net.decode_params(self.net.lift(inputs, size))
        points = torch.cat([hand["vertices_rel"], hand["joints_rel"]], dim=1) / self.point_unit_m
        B, N = mask.shape
        present = mask.reshape(-1).nonzero().squeeze(1)
        grid = points.new_full((R, B * N, *points.shape[1:]), float("nan"))
        grid[:, present] = points.view(R, -1, *points.shape[1:])
        grid = grid.view(R * B, N, *points.shape[1:])
        rot = None if rotations is None else rotations.repeat(R, 1, 1, 1)
        consistency, _ = self._multiview_terms(grid, None, mask.repeat(R, 1), rot, phase)
        return {
            "lifter_consistency": w.lifter * w.multiview_consistency * consistency,
            "lifter_keypoint_2d": w.lifter * w.keypoint_2d_single * keypoint_2d_l1_loss(
                hand["keypoints_2d"], pixels_to_normalized(targets, size), confs),
            "lifter_pose_prior": w.lifter * w.pose_prior_single * pose_prior_loss(
                hand["pose_axis_angle"]),
            "lifter_shape_prior": w.lifter * w.shape_prior * shape_regularizer(
                hand["betas"], p=1),
            "lifter_angle_prior": w.lifter * w.lifter_angle_prior * joint_angle_prior_loss(
                self._full_finger_pose(hand["pose_axis_angle"])),
        }

    def _full_finger_pose(self, pose_axis_angle: Tensor) -> Tensor:
        """(P, 16, 3) offsets from MANO's mean pose -> (P, 15, 3) full finger rotations."""
        mean = self.net.mano.hands_mean.view(-1, 3).to(pose_axis_angle.dtype)
        return pose_axis_angle[:, 1:] + mean

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Per-view errors of the single-view and cross-view outputs against the ground
        truth (present views; the learning curve): PA-MPJPE and wrist-relative MPJPE, mm."""
        out = self(batch)
        mask = out.view_mask
        gt = batch["joints_cam"][mask]
        metrics = {}
        for name, view in (("single", out.single_view), ("cross", out.cross_view)):
            m = joint_metrics(view.joints_rel[mask], gt)
            metrics[f"pa_mpjpe_mm_{name}"] = m["pa_mpjpe_mm"]
            metrics[f"mpjpe_mm_{name}"] = m["mpjpe_mm"]
        return metrics

    def _multiview_terms(
        self,
        cross: Tensor,
        single: Tensor | None,
        mask: Tensor,
        rotations: Tensor | None,
        phase: ConsistencyPhase,
    ) -> tuple[Tensor, Tensor]:
        """Consistency and distillation over the present views.

        Samples are grouped by their view pattern so that each group is a dense
        (b, v, P, 3) batch. The consistency is averaged over the samples with at least two
        views (each sample counts once, as in a full batch), the distillation over every
        present view.

        Args:
            cross: (B, N, P, 3) cross-view points (NaN for missing views).
            single: (B, N, P, 3) single-view points, same frames; None: no distillation
                (returned as zero), only the consistency.
            mask: (B, N) bool present views.
            rotations: (B, N, 3, 3) world-to-camera rotations, or None for SVD alignment.
            phase: the consistency phase.

        Returns:
            (consistency, distillation) scalars, in point units.
        """
        consistency = cross.new_zeros(())
        distillation = cross.new_zeros(())
        multi_samples = int((mask.sum(1) >= 2).sum())
        present = int(mask.sum())
        rotation: Rotation = "calibrated" if rotations is not None else "svd"
        for pattern in torch.unique(mask, dim=0):
            rows = (mask == pattern).all(dim=1).nonzero().squeeze(1)
            views = pattern.nonzero().squeeze(1)
            c = cross[rows][:, views]  # (b, v, P, 3)
            s = None if single is None else single[rows][:, views]
            if len(views) < 2 and s is None:
                continue
            if len(views) < 2:  # one view: it is its own fused result
                distillation = distillation + distillation_loss(s, c) * s.shape[0] / present
                continue
            R = None if rotations is None else rotations[rows][:, views]
            loss = multiview_consistency_loss(
                c, phase=phase, rotation=rotation, rotations_world_to_cam=R
            )
            consistency = consistency + loss * len(rows) / multi_samples
            if s is None:  # consistency only (the lifter terms)
                continue
            with torch.no_grad():
                teacher = fused_points(align_views(c, rotation=rotation, rotations_world_to_cam=R))
            weight = len(rows) * len(views) / present
            distillation = distillation + distillation_loss(s, teacher) * weight
        return consistency, distillation

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(
        self, batch: Mapping[str, Any], fusion: Rotation | None = None
    ) -> dict[str, Tensor]:
        """Evaluation outputs for every view (call in eval mode).

        Every 3D output is root-relative at keypoint 9, metres, in the axes of *each view's
        own crop camera* (the frame of the batch's ``joints_cam``), so each can be compared
        view by view with the ground truth. The fused hand (:func:`fuse_views`) is computed
        once per frame and expressed in every present view's axes:

        - ``"calibrated"``: the views' cross-view points rotated to world axes by ``R_u^T``,
          averaged, and rotated into view ``v`` by ``R_v`` (``R`` = ``M[:3, :3]``);
        - ``"svd"``: every view aligned to view ``v`` by a similarity transform fitted on
          the joints, averaged, re-centred on keypoint 9 (view ``v``'s scale).

        Args:
            batch: ``image`` (B, N, 3, S, S), optional ``view_mask`` (B, N), and ``M`` for
                calibrated fusion.
            fusion: ``"svd"`` or ``"calibrated"``; None uses the task's ``rotation``.

        Returns:
            ``joints_single``, ``joints_cross``, ``joints_fused`` (B, N, 21, 3) and
            ``vertices_single``, ``vertices_cross``, ``vertices_fused`` (B, N, V, 3), metres;
            ``keypoints_2d_single``, ``keypoints_2d_cross`` (B, N, 21, 2) crop pixels;
            ``view_mask`` (B, N) bool. Entries of missing views are NaN.
        """
        fusion = fusion or self.rotation
        if fusion not in ROTATIONS:
            raise ValueError(f"fusion must be one of {ROTATIONS}, got {fusion!r}")
        out = self(batch)
        mask = out.view_mask
        sv, cv = out.single_view, out.cross_view
        size = tuple(batch["image"].shape[-2:])
        fused_j = torch.full_like(cv.joints_rel, float("nan"))
        fused_v = torch.full_like(cv.vertices_rel, float("nan"))
        rotations = self._rotations(batch) if fusion == "calibrated" else None
        for b in range(mask.shape[0]):
            views = mask[b].nonzero().squeeze(1)
            joints, vertices = cv.joints_rel[b, views], cv.vertices_rel[b, views]
            if rotations is not None:
                R = rotations[b, views].to(joints.dtype)  # (v, 3, 3)
                world_j, world_v = fuse_views(joints, vertices, R)
                fused_j[b, views] = world_j @ R.transpose(-1, -2)  # x_cam = R x_world
                fused_v[b, views] = world_v @ R.transpose(-1, -2)
                continue
            for k, view in enumerate(views.tolist()):
                fused_j[b, view], fused_v[b, view] = fuse_views(joints, vertices,
                                                                reference_view=k)  # fmt: skip
        return {
            "joints_single": sv.joints_rel, "vertices_single": sv.vertices_rel,
            "joints_cross": cv.joints_rel, "vertices_cross": cv.vertices_rel,
            "joints_fused": fused_j, "vertices_fused": fused_v,
            "keypoints_2d_single": sv.keypoints_2d_px(size),  # type: ignore[arg-type]
            "keypoints_2d_cross": cv.keypoints_2d_px(size),  # type: ignore[arg-type]
            "view_mask": mask,
        }  # fmt: skip
