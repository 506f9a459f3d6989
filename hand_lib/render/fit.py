"""Small fitting loops through the renderer: a rigid mesh's translation and scale (and,
photometrically, one albedo) fitted to a target silhouette or image by Adam.

They exist to show and test that the renderer's gradients are usable end to end, and they
are what ``notebooks/01b_renderer.ipynb`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from hand_lib.render.renderer import MeshRenderer


def silhouette_iou(pred: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union of two masks after thresholding.

    Args:
        pred: (..., H, W) coverage or mask.
        target: (..., H, W) coverage or mask.
        threshold: a pixel is in a mask where its value is > threshold.

    Returns:
        (...) IoU in [0, 1]; 1 where both masks are empty.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same (..., H, W) shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    a, b = pred > threshold, target > threshold
    inter = (a & b).sum(dim=(-2, -1)).double()
    union = (a | b).sum(dim=(-2, -1)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def soft_iou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """SoftRas' silhouette loss ``1 - sum(p t) / sum(p + t - p t)``, averaged over the batch.

    Args:
        pred, target: (B, H, W) coverage in [0, 1].
    """
    inter = (pred * target).sum(dim=(-2, -1))
    union = (pred + target - pred * target).sum(dim=(-2, -1)).clamp_min(1e-6)
    return (1.0 - inter / union).mean()


@dataclass
class FitResult:
    """Outcome of ``fit_translation_scale``.

    Attributes:
        translation_m: (3,) fitted translation, metres (camera space).
        scale: () fitted scale factor of the template.
        albedo: (3,) fitted RGB albedo in [0, 1] (photometric fits), else None.
        losses: loss per step.
        ious: silhouette IoU (alpha > 0.5 vs target > 0.5) before each step, then the final
            one (``steps + 1`` values).
    """

    translation_m: Tensor
    scale: Tensor
    albedo: Tensor | None
    losses: list[float] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)


def fit_translation_scale(
    renderer: MeshRenderer,
    template_m: Tensor,
    faces: Tensor,
    K: Tensor,
    target_alpha: Tensor,
    init_translation_m: Tensor,
    init_scale: float = 1.0,
    target_rgb: Tensor | None = None,
    lighting: Tensor | None = None,
    steps: int = 100,
    lr: float = 0.02,
) -> FitResult:
    """Fit ``vertices = scale * template + translation`` to a target by Adam.

    Without ``target_rgb`` the loss is ``soft_iou_loss`` on the soft silhouette. With it,
    the loss is the photometric L1 between the rendered image and ``target_rgb`` (composited
    over the renderer's background), and a single RGB albedo (sigmoid-parametrised, start
    0.5 grey) is fitted along with the pose; ``target_alpha`` is then used for the IoU
    record only.

    Translation is parametrised as ``(x / z, y / z, log z)`` and the scale as ``log s``, so one
    learning rate suits all of them (a step moves the image by a similar number of pixels).

    Args:
        renderer: a ``MeshRenderer``.
        template_m: (V, 3) vertices in the object frame, metres.
        faces: (F, 3) int vertex indices.
        K: (3, 3) intrinsics, pixels.
        target_alpha: (H, W) target silhouette in [0, 1].
        init_translation_m: (3,) starting translation, metres, z > 0.
        init_scale: starting scale (> 0).
        target_rgb: (H, W, 3) target image, or None for a silhouette fit.
        lighting: (1, 11) S2HAND lighting for the photometric fit (None: ambient white).
        steps: Adam steps.
        lr: initial Adam learning rate (cosine-decayed to lr / 20 over the steps).

    Returns:
        FitResult (detached tensors).
    """
    H, W = renderer.settings.image_size
    if template_m.dim() != 2 or template_m.shape[1] != 3:
        raise ValueError(f"template_m must be (V, 3) metres, got {tuple(template_m.shape)}")
    if tuple(target_alpha.shape) != (H, W):
        raise ValueError(f"target_alpha must be ({H}, {W}), got {tuple(target_alpha.shape)}")
    if target_rgb is not None and tuple(target_rgb.shape) != (H, W, 3):
        raise ValueError(f"target_rgb must be ({H}, {W}, 3), got {tuple(target_rgb.shape)}")
    if tuple(init_translation_m.shape) != (3,) or not float(init_translation_m[2]) > 0:
        raise ValueError(f"init_translation_m must be (3,) with z > 0, got {init_translation_m}")
    if not init_scale > 0:
        raise ValueError(f"init_scale must be > 0, got {init_scale}")

    t0 = init_translation_m.detach().to(template_m)
    xy_over_z = (t0[:2] / t0[2]).clone().requires_grad_(True)
    log_z = torch.log(t0[2]).clone().requires_grad_(True)
    log_scale = torch.tensor(float(init_scale), dtype=template_m.dtype,
                             device=template_m.device).log().requires_grad_(True)
    params = [xy_over_z, log_z, log_scale]
    albedo_logit = None
    if target_rgb is not None:
        albedo_logit = torch.zeros(3, dtype=template_m.dtype, device=template_m.device,
                                   requires_grad=True)
        params.append(albedo_logit)
    optimizer = torch.optim.Adam(params, lr=lr)
    # Cosine decay to lr / 20: scale and depth both set the apparent size, and Adam at a
    # constant rate keeps oscillating along that valley.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1),
                                                          eta_min=lr / 20)
    template = template_m.detach()[None]
    faces_b = faces[None] if faces.dim() == 2 else faces
    K_b = K[None] if K.dim() == 2 else K

    def translation() -> Tensor:
        z = log_z.exp()
        return torch.cat([xy_over_z * z, z[None]])

    result = FitResult(translation_m=t0, scale=log_scale.detach().exp(), albedo=None)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        vertices = log_scale.exp() * template + translation()
        if albedo_logit is None:
            alpha = renderer.silhouette(vertices, faces_b, K_b)[0]
            loss = soft_iou_loss(alpha[None], target_alpha[None])
        else:
            colors = torch.sigmoid(albedo_logit).expand(1, faces_b.shape[1], 3)
            out = renderer.render(vertices, faces_b, K_b, face_colors=colors, lighting=lighting)
            alpha = out.alpha[0]
            loss = (out.rgb[0] - target_rgb).abs().mean()
        result.ious.append(float(silhouette_iou(alpha.detach(), target_alpha)))
        result.losses.append(float(loss.detach()))
        loss.backward()
        optimizer.step()
        schedule.step()

    with torch.no_grad():
        result.translation_m = translation().detach()
        result.scale = log_scale.detach().exp()
        if albedo_logit is not None:
            result.albedo = torch.sigmoid(albedo_logit).detach()
        vertices = result.scale * template + result.translation_m
        final_alpha = renderer.silhouette(vertices, faces_b, K_b)[0]
        result.ious.append(float(silhouette_iou(final_alpha, target_alpha)))
    return result
