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

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from hand_lib.losses import (
    SCALE_ANCHOR_BONE,
    S2HandLossWeights,
    bone_direction_loss,
    bone_length_anchor_loss,
    heatmap_cross_entropy_loss,
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
from hand_lib.tasks.lifter import jittered_labels
from hand_lib.tasks.metrics import validation_metrics

Stage = Literal["shape", "kp", "finetune", "e2e"]
STAGES: tuple[str, ...] = ("shape", "kp", "finetune", "e2e")
#: which network parts train in each stage
TRAINABLE: dict[str, tuple[str, ...]] = {
    "shape": ("encoder", "regressor", "keypoint_head", "lifter"),
    "kp": ("hourglass",),
    "finetune": ("encoder", "regressor", "keypoint_head", "lifter", "texture_head", "hourglass"),
    "e2e": ("encoder", "regressor", "keypoint_head", "lifter", "texture_head", "hourglass"),
}


def anchor_bone_length(net: S2HandNet) -> float:
    """The scale anchor's target, metres: the length of the anchored bone
    (:data:`hand_lib.losses.SCALE_ANCHOR_BONE`, middle MCP -> PIP) of the network's own hand
    model at the mean shape and pose. S2HAND's constant, 0.0282 m, is that bone in its
    MANO joints; a model with other proportions (the open hand's is 0.045 m) must be anchored
    to its own length, or every predicted hand is scaled by the ratio."""
    mano = net.mano
    with torch.no_grad():
        k = mano(torch.zeros(1, 16, 3, dtype=mano.v_template.dtype,
                             device=mano.v_template.device)).keypoints[0]
    p, q = SCALE_ANCHOR_BONE
    return float((k[q] - k[p]).norm())


class S2HandTask(nn.Module):
    """One S2HAND training stage.

    Args:
        net: the :class:`S2HandNet` (built with the heads the stage needs).
        stage: "shape", "kp", "finetune" or "e2e".
        weights: loss weights (the originals by default).
        background: the renderer's background colour; the photometric target is
            composited over the same colour (the trap of the original, fixed).
        sigma: softness of the rendered silhouette edge, squared pixels.
        lifter_repeats, lifter_noise: the lifter term (networks with a keypoint head) feeds
            the lifter ``lifter_repeats`` copies of the batch's pseudo labels, each jittered
            by Gaussian noise of ``lifter_noise`` hand boxes, and asks the hand it lifts to
            satisfy the shape terms against the same labels. The lifter thus learns the
            2D-to-hand mapping from the labels (2D only, no image, no 3D) many times per step,
            instead of only from the keypoint head's still-poor early output.
        render_downsample: the appearance terms render at ``1 / render_downsample`` of the
            crop's resolution and compare with the crop average-pooled to it (the camera
            rescaled exactly, pixel centres kept, ``sigma`` divided by its square so the soft
            edge keeps its width in the crop's pixels); 1 renders at the crop's own size. The
            soft rasteriser's cost grows with the pixels; at 64 px crops a factor 2 cuts the
            render from 527 to 175 ms per 32 crops (forward and backward, 2-core CPU).
        render_samples: render only the first ``render_samples`` crops of each batch for
            the photometric and mean-colour terms (None: all). The batches are shuffled,
            so this is the same loss estimated on a random subset: unbiased, noisier.
    """

    def __init__(
        self,
        net: S2HandNet,
        stage: Stage,
        weights: S2HandLossWeights | None = None,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        sigma: float = 0.5,
        lifter_repeats: int = 4,
        lifter_noise: float = 0.03,
        render_downsample: int = 1,
        render_samples: int | None = None,
    ) -> None:
        super().__init__()
        if render_samples is not None and render_samples < 1:
            raise ValueError(f"render_samples must be None or >= 1, got {render_samples}")
        if not isinstance(render_downsample, int) or render_downsample < 1:
            raise ValueError(
                f"render_downsample must be an integer >= 1, got {render_downsample!r}")
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
        self.anchor_length_m = anchor_bone_length(net)
        self.lifter_repeats = lifter_repeats
        self.lifter_noise = lifter_noise
        self.render_downsample = render_downsample
        self.render_samples = render_samples
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
            terms["scale_anchor"] = w.scale_anchor * bone_length_anchor_loss(
                out.joints, target_length_m=self.anchor_length_m)
            if out.keypoints is not None:  # the encoder's keypoint head (not in the paper)
                size = tuple(batch["image"].shape[-2:])
                terms["keypoint_heatmap"] = w.keypoint_heatmap * heatmap_cross_entropy_loss(
                    out.keypoints.logits, target, size, conf)
                terms["keypoint_integral"] = w.keypoint_integral * heatmap_integral_loss(
                    out.keypoints.keypoints_2d, target, conf)
            terms["angle_prior"] = w.angle_prior * joint_angle_prior_loss(out.pose_axis_angle)
            if not self.net.config.use_mean_shape:
                terms["shape_regularizer"] = w.shape_regularizer * shape_regularizer(out.betas)
            if out.keypoints is not None and w.lifter > 0 and self.lifter_repeats > 0:
                terms.update(self._lifter_terms(batch, out))
        if self.stage != "shape":  # finetune and e2e
            hg = out.hourglass
            terms["heatmap_integral"] = w.heatmap_integral * heatmap_integral_loss(
                hg.keypoints_2d_stacks, target, conf)  # fmt: skip
        if self.stage in ("finetune", "e2e"):
            terms["keypoint_consistency"] = w.keypoint_consistency * keypoint_consistency_loss(
                out.hourglass.keypoints_2d, out.joints_2d)  # fmt: skip
            terms.update(self._appearance_terms(batch["image"], batch["K"], out, conf))
        return terms

    def _lifter_terms(self, batch: Mapping[str, Any], out: S2HandOutput) -> dict[str, Tensor]:
        """The shape terms of the hand lifted from jittered copies of the pseudo labels (see
        ``lifter_repeats``); joints the detector missed take the keypoint head's output."""
        w, R = self.weights, self.lifter_repeats
        target, conf = batch["pseudo_2d"], batch["pseudo_conf"]
        size = tuple(batch["image"].shape[-2:])
        inputs, targets, confs = jittered_labels(target, conf, out.keypoints.keypoints_2d.detach(),
                                                 R, self.lifter_noise, size)
        K = batch["K"].repeat(R, 1, 1)
        hand = self.net.decode(self.net.lift(inputs, K, size), K, size)
        scale = w.lifter
        return {
            "lifter_keypoint_2d": scale * w.keypoint_2d * keypoint_2d_loss(hand.joints_2d,
                                                                           targets, confs),
            "lifter_bone_direction": scale * w.bone_direction * bone_direction_loss(
                hand.joints_2d, targets, confs),
            "lifter_scale_anchor": scale * w.scale_anchor * bone_length_anchor_loss(
                hand.joints, target_length_m=self.anchor_length_m),
            "lifter_angle_prior": scale * w.angle_prior * joint_angle_prior_loss(
                hand.pose_axis_angle),
        }

    def render(self, out: S2HandOutput, K: Tensor, image_size: tuple[int, int],
               sigma: float | None = None) -> RenderOutput:
        """Render a prediction's textured, lit mesh (soft silhouette) with the crop's K
        (``sigma``: the edge softness in this image's squared pixels; default the task's)."""
        sigma = self.sigma if sigma is None else sigma
        renderer = MeshRenderer(RenderSettings(image_size=image_size, sigma=sigma,
                                               background=self.background))  # fmt: skip
        return renderer.render(out.vertices, self.net.mano.faces, K,
                               face_colors=out.face_colors, lighting=out.lighting)  # fmt: skip

    def _appearance_terms(
        self, image: Tensor, K: Tensor, out: S2HandOutput, conf: Tensor
    ) -> dict[str, Tensor]:
        w = self.weights
        full_conf = image_confidence(conf)
        n = self.render_samples
        shown = out
        if n is not None and n < image.shape[0]:
            image, K, conf = image[:n], K[:n], conf[:n]
            shown = dataclasses.replace(out, vertices=out.vertices[:n],
                                        face_colors=out.face_colors[:n], lighting=out.lighting[:n])
        f = self.render_downsample
        if f > 1:  # pixel i of the small image averages pixels f*i .. f*i+f-1 (centres on integers)
            H, W = image.shape[-2:]
            if H % f or W % f:
                raise ValueError(f"render_downsample {f} must divide the crop size {H}x{W}")
            image = nn.functional.avg_pool2d(image, f)
            K = K.clone()
            K[:, :2, :2] = K[:, :2, :2] / f
            K[:, :2, 2] = (K[:, :2, 2] + 0.5) / f - 0.5
        # the same soft edge in the crop's pixels: sigma is in squared pixels
        rendered = self.render(shown, K, tuple(image.shape[-2:]), sigma=self.sigma / f**2)
        rgb = rendered.rgb.permute(0, 3, 1, 2)
        img_conf = image_confidence(conf)
        common = {"background": self.background, "image_confidence": img_conf}
        return {
            "photometric": w.photometric * photometric_loss(image, rgb, rendered.alpha, **common),
            "mean_colour": w.mean_colour * mean_colour_loss(image, rgb, rendered.alpha, **common),
            "texture_outlier": w.texture_outlier * texture_outlier_loss(
                out.face_colors, image_confidence=full_conf),
            "laplacian": w.laplacian * laplacian_smoothness_loss(out.vertices, self.laplacian),
        }  # fmt: skip

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Per-sample PA-MPJPE and MPJPE (mm) and 2D errors (px) against the ground truth
        (:func:`hand_lib.tasks.metrics.validation_metrics`): the learning curve. The keypoint
        stage, which trains the hourglass alone, reports the hourglass's 2D error
        (``hourglass_2d_px``) instead."""
        if self.stage == "kp":
            hg = self.net.hourglass(batch["image"])
            return {"hourglass_2d_px": (hg.keypoints_2d - batch["joints_2d"]).norm(dim=-1)
                    .mean(-1)}
        out = self.net(batch["image"], batch["K"], run_hourglass=False, run_texture=False)
        return validation_metrics(out, batch)

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
