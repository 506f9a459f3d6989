"""S2HAND's appearance terms: photometric L1, mean colour, texture outliers.

Images are channels-first, ``(B, 3, H, W)`` RGB in [0, 1] (the data loaders' layout); the
renderer returns channels-last ``RenderOutput.rgb`` (B, H, W, 3), so pass
``render.rgb.permute(0, 3, 1, 2)``. Silhouettes/alpha are (B, H, W) or (B, 1, H, W) in [0, 1].

The same-background fix. The photometric target is the input image masked by the rendered
silhouette. A renderer composites the hand over its background colour ``bg``:
``render = a * F + (1 - a) * bg``. The original S2HAND compares that render (white ``bg``)
with ``input * mask`` (a *black* background), so every background pixel differs by 1 and
the loss is dominated by the background and by the silhouette's size, not by the texture.
Here the target is composited over the *same* colour, ``target = a * I + (1 - a) * bg``, so
``render - target = a * (F - I)``: only the hand region counts, whatever ``bg`` is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hand_lib.losses._checks import (
    check_confidence,
    check_same_shape,
    check_shape,
    check_tensor,
    weighted_mean,
)

__all__ = [
    "IMAGE_CONFIDENCE_MIN",
    "composite_over_background",
    "image_confidence",
    "mean_colour_loss",
    "photometric_loss",
    "texture_outlier_loss",
]

#: S2HAND trusts an image's pseudo labels only if its least confident joint is above this.
IMAGE_CONFIDENCE_MIN = 0.1

Background = float | Sequence[float] | Tensor


def image_confidence(
    keypoint_confidence: Tensor, *, min_confidence: float = IMAGE_CONFIDENCE_MIN
) -> Tensor:
    """S2HAND's per-image confidence for the appearance terms.

    ``c_b = mean_j c_bj`` if ``min_j c_bj > min_confidence``, else 0.

    Args:
        keypoint_confidence: (B, J) 2D detector confidences in [0, 1].
        min_confidence: threshold on the least confident joint.

    Returns:
        (B,) image confidences in [0, 1].
    """
    check_shape(keypoint_confidence, (None, None), "keypoint_confidence", "(B, J)")
    mean = keypoint_confidence.mean(1)
    trusted = keypoint_confidence.amin(1) > min_confidence
    return torch.where(trusted, mean, torch.zeros_like(mean))


def _alpha_b1hw(alpha: Tensor, image: Tensor, name: str) -> Tensor:
    check_tensor(alpha, name)
    B, _, H, W = image.shape
    if tuple(alpha.shape) == (B, H, W):
        return alpha.unsqueeze(1)
    if tuple(alpha.shape) == (B, 1, H, W):
        return alpha
    raise ValueError(
        f"{name} must have shape (B, H, W) = ({B}, {H}, {W}) or (B, 1, H, W), "
        f"got {tuple(alpha.shape)}"
    )


def _background_b311(background: Background, image: Tensor) -> Tensor:
    bg = torch.as_tensor(background, dtype=image.dtype, device=image.device)
    B = image.shape[0]
    if bg.ndim == 0:
        bg = bg.expand(3)
    if bg.shape == (3,):
        return bg.view(1, 3, 1, 1)
    if bg.shape == (B, 3):
        return bg.view(B, 3, 1, 1)
    raise ValueError(
        f"background must be a scalar, (3,) or (B, 3) = ({B}, 3), got {tuple(bg.shape)}"
    )


def _check_image(image: object, name: str) -> Tensor:
    return check_shape(image, (None, 3, None, None), name, "(B, 3, H, W)")


def composite_over_background(image: Tensor, alpha: Tensor, background: Background) -> Tensor:
    """Composite an image over a constant colour: ``a * I + (1 - a) * bg``.

    Args:
        image: (B, 3, H, W) RGB in [0, 1].
        alpha: (B, H, W) or (B, 1, H, W) coverage in [0, 1] (e.g. the rendered silhouette).
        background: RGB of the background: a scalar (grey level), (3,) or (B, 3).

    Returns:
        (B, 3, H, W) composited image.
    """
    _check_image(image, "image")
    a = _alpha_b1hw(alpha, image, "alpha")
    return a * image + (1.0 - a) * _background_b311(background, image)


def _per_image_weights(conf: Tensor | None, B: int, like: Tensor) -> Tensor:
    check_confidence(conf, (B,), "image_confidence")
    return like.new_ones(B) if conf is None else conf**2


def photometric_loss(
    image: Tensor,
    render_rgb: Tensor,
    render_alpha: Tensor,
    *,
    background: Background,
    image_confidence: Tensor | None = None,
    detach_target_alpha: bool = True,
) -> Tensor:
    """S2HAND's photometric L1, with the input composited over the render's background.

    ``T_b = a_b * I_b + (1 - a_b) * bg`` (:func:`composite_over_background`),
    ``l_b = mean_{c,y,x} |R_b - T_b|`` and ``L = sum_b c_b^2 l_b / sum_b c_b^2`` with ``c_b``
    the :func:`image_confidence` (0 when every ``c_b`` is 0). Since ``R = a F + (1 - a) bg``,
    ``R - T = a (F - I)``: background pixels contribute nothing.

    Args:
        image: (B, 3, H, W) input RGB in [0, 1].
        render_rgb: (B, 3, H, W) rendered RGB, already composited over ``background``.
        render_alpha: (B, H, W) or (B, 1, H, W) rendered silhouette in [0, 1].
        background: the render's background colour (scalar, (3,) or (B, 3)); it must be the
            colour the renderer used (``RenderSettings.background``).
        image_confidence: optional (B,) per-image confidences; None means all 1.
        detach_target_alpha: if True (default) the silhouette enters the target as a
            constant, as the original's hard mask did; the render keeps its gradient.

    Returns:
        Scalar loss, image intensity units.
    """
    _check_image(image, "image")
    _check_image(render_rgb, "render_rgb")
    check_same_shape(image, render_rgb, "image", "render_rgb")
    a = _alpha_b1hw(render_alpha, image, "render_alpha")
    target = composite_over_background(image, a.detach() if detach_target_alpha else a, background)
    per_image = (render_rgb - target).abs().mean(dim=(1, 2, 3))
    return weighted_mean(per_image, _per_image_weights(image_confidence, image.shape[0], image))


def mean_colour_loss(
    image: Tensor,
    render_rgb: Tensor,
    render_alpha: Tensor,
    *,
    background: Background,
    image_confidence: Tensor | None = None,
) -> Tensor:
    """S2HAND's mean-colour term on the same-background target.

    ``m^R_bc = mean_{y,x} R_bcyx``, ``m^T_bc = mean_{y,x} T_bcyx`` with ``T`` as in
    :func:`photometric_loss` (silhouette detached), ``l_b = mean_c |m^R_bc - m^T_bc|`` and
    ``L = sum_b c_b^2 l_b / sum_b c_b^2``. It pulls the overall colour of the hand toward the
    input's even where the per-pixel term is dominated by misalignment. (The original compares
    means over all channels at once; the per-channel means here also see a hue shift.)

    Args:
        image: (B, 3, H, W) input RGB in [0, 1].
        render_rgb: (B, 3, H, W) rendered RGB over ``background``.
        render_alpha: (B, H, W) or (B, 1, H, W) rendered silhouette.
        background: the render's background colour.
        image_confidence: optional (B,) per-image confidences; None means all 1.

    Returns:
        Scalar loss, image intensity units.
    """
    _check_image(image, "image")
    _check_image(render_rgb, "render_rgb")
    check_same_shape(image, render_rgb, "image", "render_rgb")
    a = _alpha_b1hw(render_alpha, image, "render_alpha").detach()
    target = composite_over_background(image, a, background)
    per_image = (render_rgb.mean(dim=(2, 3)) - target.mean(dim=(2, 3))).abs().mean(1)
    return weighted_mean(per_image, _per_image_weights(image_confidence, image.shape[0], image))


def texture_outlier_loss(
    face_colours: Tensor,
    *,
    image_confidence: Tensor | None = None,
    num_std: float = 2.0,
) -> Tensor:
    """S2HAND's texture-outlier term: penalise face colours far from the hand's mean colour.

    Per sample and channel, ``mu`` and ``sigma`` are the mean and (unbiased) standard
    deviation of the face colours; a face colour ``t`` is an outlier if ``|t - mu| > k sigma``
    (``k = 2``) and then costs ``|t - mu|``. ``l_b = mean_{f,c}`` of those costs and
    ``L = sum_b c_b^2 l_b / sum_b c_b^2``. (The original weights by ``2 c_b`` over
    ``sum c_b^2``, a typo for ``c_b^2``; this uses ``c_b^2`` like the other appearance terms.)

    Args:
        face_colours: (B, F, 3) per-face RGB (F = 1538 for MANO), in [0, 1].
        image_confidence: optional (B,) per-image confidences; None means all 1.
        num_std: ``k``, the outlier threshold in standard deviations.

    Returns:
        Scalar loss, colour units.
    """
    check_shape(face_colours, (None, None, 3), "face_colours", "(B, F, 3)")
    if face_colours.shape[1] < 2:
        raise ValueError("face_colours needs at least 2 faces (F >= 2)")
    mu = face_colours.mean(1, keepdim=True)
    sigma = face_colours.std(1, keepdim=True)
    deviation = (face_colours - mu).abs()
    outlier = deviation > num_std * sigma
    per_image = torch.where(outlier, deviation, torch.zeros_like(deviation)).mean(dim=(1, 2))
    weights = _per_image_weights(image_confidence, face_colours.shape[0], face_colours)
    return weighted_mean(per_image, weights)
