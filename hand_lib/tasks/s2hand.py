"""S2HAND's training stages as one task: the network, the renderer and the loss terms.

A *task* is what :class:`hand_lib.train.Trainer` trains: an ``nn.Module`` whose
``training_step(batch, step)`` returns the named, already weighted loss terms (the trainer
sums and logs them). The stage decides which heads run, which parameters train and which
terms count (REFERENCE.md section 4):

======== ==================================== ============================================
stage    trains                               terms
======== ==================================== ============================================
shape    encoder + hand regressor             2D keypoints, bone direction, scale anchor,
                                              joint-angle prior (+ shape regulariser when
                                              the shape is free)
kp       hourglass                            heatmap integral loss on pseudo labels
finetune everything (loads shape + kp)        shape terms + heatmap + 2D-3D consistency
                                              + photometric, mean colour, texture outlier,
                                              Laplacian smoothness
e2e      everything from scratch              all of the above
======== ==================================== ============================================

Batch keys (a collated single-view sample after :class:`hand_lib.data.HandCrop`):
``image`` (B, 3, S, S) in [0, 1], ``K`` (B, 3, 3) crop intrinsics, ``pseudo_2d`` (B, 21, 2)
crop pixels, ``pseudo_conf`` (B, 21). Evaluation also reads ``joints_cam`` (B, 21, 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from hand_lib.losses import (
    S2HandLossWeights,
    bone_direction_loss,
    bone_length_anchor_loss,
    heatmap_integral_loss,
    image_confidence,
    joint_angle_prior_loss,
    keypoint_2d_loss,
    keypoint_consistency_loss,
    laplacian_smoothness_loss,
    mean_colour_loss,
    photometric_loss,
    shape_regularizer,
    texture_outlier_loss,
    uniform_laplacian,
)
from hand_lib.models import S2HandNet, S2HandOutput
from hand_lib.render import MeshRenderer, RenderOutput, RenderSettings

Stage = Literal["shape", "kp", "finetune", "e2e"]
STAGES: tuple[str, ...] = ("shape", "kp", "finetune", "e2e")
#: which network parts train in each stage
TRAINABLE: dict[str, tuple[str, ...]] = {
    "shape": ("encoder", "regressor"),
    "kp": ("hourglass",),
    "finetune": ("encoder", "regressor", "texture_head", "hourglass"),
    "e2e": ("encoder", "regressor", "texture_head", "hourglass"),
}


class S2HandTask(nn.Module):
    """One S2HAND training stage.

    Args:
        net: the :class:`S2HandNet` (built with the heads the stage needs).
        stage: "shape", "kp", "finetune" or "e2e".
        weights: loss weights (the originals by default).
        background: the renderer's background colour; the photometric target is
            composited over the same colour (the trap of the original, fixed).
        sigma: softness of the rendered silhouette edge, squared pixels.
    """

    def __init__(
        self,
        net: S2HandNet,
        stage: Stage,
        weights: S2HandLossWeights | None = None,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        sigma: float = 0.5,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        needs = {"kp": ("hourglass",), "finetune": ("hourglass", "texture_head"),
                 "e2e": ("hourglass", "texture_head")}.get(stage, ())  # fmt: skip
        for part in needs:
            if getattr(net, part) is None:
                raise ValueError(f"stage {stage!r} needs the network's {part}: build it with "
                                 f"S2HandConfig({part.split('_')[0]}=True)")  # fmt: skip
        self.net = net
        self.stage = stage
        self.weights = weights or S2HandLossWeights()
        self.background = background
        self.sigma = sigma
        self.register_buffer(
            "laplacian", uniform_laplacian(net.mano.faces, net.mano.num_vertices), persistent=False
        )
        for name, module in net.named_children():
            if name != "mano":
                module.requires_grad_(name in TRAINABLE[stage])

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Mapping[str, Any]) -> S2HandOutput:
        """The network's prediction for a batch (heads as the stage needs)."""
        return self.net(
            batch["image"], batch["K"],
            run_hourglass=self.stage != "shape", run_texture=self.stage in ("finetune", "e2e"),
        )  # fmt: skip

    def training_step(self, batch: Mapping[str, Any], step: int) -> dict[str, Tensor]:
        """Weighted loss terms of the stage (keys: :class:`S2HandLossWeights` fields)."""
        target, conf = batch["pseudo_2d"], batch["pseudo_conf"]
        w = self.weights
        if self.stage == "kp":  # only the hourglass trains: skip the frozen encoder and MANO
            hg = self.net.hourglass(batch["image"])
            return {"heatmap_integral": w.heatmap_integral * heatmap_integral_loss(
                hg.keypoints_2d_stacks, target, conf)}  # fmt: skip
        out = self(batch)
        terms: dict[str, Tensor] = {}
        if self.stage != "kp":
            terms["keypoint_2d"] = w.keypoint_2d * keypoint_2d_loss(out.joints_2d, target, conf)
            terms["bone_direction"] = w.bone_direction * bone_direction_loss(
                out.joints_2d, target, conf)  # fmt: skip
            terms["scale_anchor"] = w.scale_anchor * bone_length_anchor_loss(out.joints)
            terms["angle_prior"] = w.angle_prior * joint_angle_prior_loss(out.pose_axis_angle)
            if not self.net.config.use_mean_shape:
                terms["shape_regularizer"] = w.shape_regularizer * shape_regularizer(out.betas)
        if self.stage != "shape":  # finetune and e2e
            hg = out.hourglass
            terms["heatmap_integral"] = w.heatmap_integral * heatmap_integral_loss(
                hg.keypoints_2d_stacks, target, conf)  # fmt: skip
        if self.stage in ("finetune", "e2e"):
            terms["keypoint_consistency"] = w.keypoint_consistency * keypoint_consistency_loss(
                out.hourglass.keypoints_2d, out.joints_2d)  # fmt: skip
            terms.update(self._appearance_terms(batch["image"], batch["K"], out, conf))
        return terms

    def render(self, out: S2HandOutput, K: Tensor, image_size: tuple[int, int]) -> RenderOutput:
        """Render a prediction's textured, lit mesh (soft silhouette) with the crop's K."""
        renderer = MeshRenderer(RenderSettings(image_size=image_size, sigma=self.sigma,
                                               background=self.background))  # fmt: skip
        return renderer.render(out.vertices, self.net.mano.faces, K,
                               face_colors=out.face_colors, lighting=out.lighting)  # fmt: skip

    def _appearance_terms(
        self, image: Tensor, K: Tensor, out: S2HandOutput, conf: Tensor
    ) -> dict[str, Tensor]:
        w = self.weights
        rendered = self.render(out, K, tuple(image.shape[-2:]))
        rgb = rendered.rgb.permute(0, 3, 1, 2)
        img_conf = image_confidence(conf)
        common = {"background": self.background, "image_confidence": img_conf}
        return {
            "photometric": w.photometric * photometric_loss(image, rgb, rendered.alpha, **common),
            "mean_colour": w.mean_colour * mean_colour_loss(image, rgb, rendered.alpha, **common),
            "texture_outlier": w.texture_outlier * texture_outlier_loss(
                out.face_colors, image_confidence=img_conf),
            "laplacian": w.laplacian * laplacian_smoothness_loss(out.vertices, self.laplacian),
        }  # fmt: skip

    @torch.no_grad()
    def predict(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Evaluation outputs: camera-space ``joints`` (B, 21, 3) and ``vertices`` (B, V, 3)
        metres, ``joints_2d`` (B, 21, 2) pixels, and the hourglass's ``keypoints_2d``."""
        out = self.net(batch["image"], batch["K"], run_texture=False,
                       run_hourglass=self.net.hourglass is not None)  # fmt: skip
        result = {"joints": out.joints, "vertices": out.vertices, "joints_2d": out.joints_2d}
        if out.hourglass is not None:
            result["keypoints_2d"] = out.hourglass.keypoints_2d
        return result

    @torch.no_grad()
    def predict_appearance(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The rendered prediction for figures: ``rgb`` (B, H, W, 3) composited over the
        background and ``alpha`` (B, H, W); needs the texture head."""
        if self.net.texture_head is None:
            raise ValueError("predict_appearance needs the texture head (finetune or e2e stage)")
        out = self.net(batch["image"], batch["K"], run_hourglass=False)
        rendered = self.render(out, batch["K"], tuple(batch["image"].shape[-2:]))
        return {"rgb": rendered.rgb, "alpha": rendered.alpha}
