"""Hand crops and augmentation that keep the camera exact.

Conventions (shared with :func:`hand_lib.geometry.camera.project_points`):

- Pixel coordinates: ``u`` to the right, ``v`` down, **pixel centres at integer
  coordinates** (OpenCV). Pixel ``(i, j)`` (column ``i``, row ``j``) covers
  ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``; a ``W x H`` image spans
  ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` and its centre is ``((W - 1) / 2, (H - 1) / 2)``.
  Resampling uses ``grid_sample(..., align_corners=False)``, whose normalised coordinates
  refer to pixel edges, with the matching conversion ``x_n = (2 u + 1) / W - 1``.
- Every geometric change is one 2D affine map ``A`` (3x3, last row ``[0, 0, 1]``) from
  original pixels to crop pixels: ``p_crop = A p``. It is returned as ``crop_affine``.
- A rotation of the image by ``angle`` (radians) is the same as rotating the camera about
  its optical axis: **we rotate the camera-space 3D points**, ``X' = R_inplane X``, with
  ``R_inplane = [[c, -s, 0], [s, c, 0], [0, 0, 1]]``. With ``u`` right and ``v`` down a
  positive angle turns the image content clockwise on screen. For multi-view extrinsics the
  same is ``M' = diag(R_inplane, 1) @ M``; world-space data stays as it is.
- The returned ``K`` is a proper intrinsics matrix (upper triangular). The invariant, which
  the tests check to 1e-3 px, is::

      project_points(X @ R_inplane.T, K_crop) == transform_points_2d(project_points(X, K), A)

  It holds exactly for any ``K``: ``A @ K = K_crop @ R_inplane`` is an RQ decomposition.
  With ``fx == fy`` and no skew (HanCo, FreiHAND, HO3D) ``K_crop`` has no skew and
  ``R_inplane`` is the rotation by ``angle``; with ``fx != fy`` a rotation leaves a small
  skew in ``K_crop``, which ``project_points`` honours.

Randomness: every random draw takes an explicit ``torch.Generator`` (``None`` = torch's
global generator, which ``DataLoader`` seeds per worker). :class:`HandCrop` with a ``seed``
derives a generator from ``(seed, epoch, sample index)``, so augmentation does not depend
on the number of workers or the order samples are loaded in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Compose",
    "CropConfig",
    "CropJitter",
    "CropResult",
    "HandCrop",
    "adjust_colors",
    "crop_affine",
    "crop_and_augment",
    "crop_intrinsics",
    "mix_seed",
    "full_image_box",
    "sample_jitter",
    "split_inplane_rotation",
    "square_box_from_keypoints",
    "square_box_from_xyxy",
    "transform_points_2d",
    "upright_angle",
    "warp_images",
]


@dataclass(frozen=True)
class CropConfig:
    """How to cut the hand out and how much to jitter it.

    Attributes:
        out_size: side of the square output crop, pixels.
        margin: the crop side is ``margin`` times the longer side of the keypoints' (or
            box's) bounding box.
        min_confidence: keypoints with a lower confidence do not shape the box.
        min_box_size: smallest crop side in original pixels (guards a collapsed hand).
        scale_jitter: crop side multiplied by ``U(1 - j, 1 + j)``.
        translate_jitter: crop centre moved by ``U(-j, j)`` times the crop side, per axis.
        rotation_deg: in-plane rotation drawn from ``U(-r, r)`` degrees.
        brightness: brightness factor ``U(1 - b, 1 + b)``.
        contrast: contrast factor ``U(1 - c, 1 + c)`` (blend with the mean grey level).
        saturation: saturation factor ``U(1 - s, 1 + s)`` (blend with the grey image).
        hue: hue shift ``U(-h, h)`` in turns, ``h <= 0.5``.
        interpolation: ``"bilinear"`` or ``"nearest"`` resampling.
        upright: rotate each crop so that the hand points up: the direction from the wrist
            to the middle of the four finger bases (keypoints 0 -> 5, 9, 13, 17, from the
            same keypoints as the box, see :func:`upright_angle`) is turned to the crop's
            -v axis before ``rotation_deg`` jitter. A detector-driven, rotation-normalised
            crop as in MediaPipe Hands: the network no longer has to learn the in-plane
            rotation.
    """

    out_size: int = 224
    margin: float = 1.5
    min_confidence: float = 0.1
    min_box_size: float = 16.0
    scale_jitter: float = 0.0
    translate_jitter: float = 0.0
    rotation_deg: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    interpolation: Literal["bilinear", "nearest"] = "bilinear"
    upright: bool = False

    def __post_init__(self) -> None:
        if self.out_size < 1:
            raise ValueError(f"out_size must be >= 1, got {self.out_size}")
        if self.margin <= 0 or self.min_box_size <= 0:
            raise ValueError("margin and min_box_size must be > 0")
        for name in ("scale_jitter", "brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.translate_jitter < 0 or self.rotation_deg < 0:
            raise ValueError("translate_jitter and rotation_deg must be >= 0")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if self.interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got "
                             f"{self.interpolation!r}")


# --------------------------------------------------------------------------- boxes


def full_image_box(image_size: tuple[int, int], batch_shape: tuple[int, ...] = (),
                   dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """The square box that holds the whole image.

    Args:
        image_size: (H, W) pixels.
        batch_shape: leading shape of the outputs.

    Returns:
        center: (*batch_shape, 2) pixels, ``((W - 1) / 2, (H - 1) / 2)``.
        size: (*batch_shape,) pixels, ``max(H, W)``.
    """
    H, W = image_size
    center = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], dtype=dtype, device=device)
    size = torch.tensor(float(max(H, W)), dtype=dtype, device=device)
    return center.expand(*batch_shape, 2).clone(), size.expand(*batch_shape).clone()


def square_box_from_keypoints(
    keypoints: Tensor,
    image_size: tuple[int, int],
    confidence: Tensor | None = None,
    min_confidence: float = 0.0,
    margin: float = 1.0,
    min_size: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Square box around the confident keypoints.

    The box is centred on the middle of the keypoints' bounding box and its side is
    ``margin`` times the longer side (at least ``min_size``). Where fewer than 2 keypoints
    are confident and finite (e.g. a masked view with zero labels) the whole image is used.

    Args:
        keypoints: (..., N, 2) pixels.
        image_size: (H, W) of the image the keypoints live in, pixels.
        confidence: (..., N) or None (all keypoints used).
        min_confidence: keypoints with ``confidence < min_confidence`` are ignored.
        margin: scale of the box side relative to the keypoints' extent.
        min_size: smallest side, pixels.

    Returns:
        center: (..., 2) pixels. size: (...,) pixels.
    """
    if keypoints.ndim < 2 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (..., N, 2), got {tuple(keypoints.shape)}")
    valid = torch.isfinite(keypoints).all(-1)
    if confidence is not None:
        if confidence.shape != keypoints.shape[:-1]:
            raise ValueError(f"confidence must be {tuple(keypoints.shape[:-1])}, got "
                             f"{tuple(confidence.shape)}")
        valid = valid & (confidence >= min_confidence)
    big = torch.finfo(keypoints.dtype).max
    lo = torch.where(valid.unsqueeze(-1), keypoints, torch.full_like(keypoints, big)).amin(-2)
    hi = torch.where(valid.unsqueeze(-1), keypoints, torch.full_like(keypoints, -big)).amax(-2)
    enough = valid.sum(-1) >= 2
    lo = torch.where(enough.unsqueeze(-1), lo, torch.zeros_like(lo))
    hi = torch.where(enough.unsqueeze(-1), hi, torch.zeros_like(hi))
    center = (lo + hi) / 2
    size = ((hi - lo).amax(-1) * margin).clamp_min(min_size)
    full_center, full_size = full_image_box(image_size, tuple(size.shape), keypoints.dtype,
                                            keypoints.device)
    center = torch.where(enough.unsqueeze(-1), center, full_center)
    size = torch.where(enough, size, full_size)
    return center, size


def square_box_from_xyxy(box: Tensor, margin: float = 1.0,
                         min_size: float = 1.0) -> tuple[Tensor, Tensor]:
    """Square box around an axis-aligned box.

    Args:
        box: (..., 4) ``x_min, y_min, x_max, y_max`` pixels.

    Returns:
        center: (..., 2) pixels. size: (...,) pixels, ``margin`` times the longer side.
    """
    if box.shape[-1] != 4:
        raise ValueError(f"box must be (..., 4) xyxy, got {tuple(box.shape)}")
    lo, hi = box[..., :2], box[..., 2:]
    return (lo + hi) / 2, ((hi - lo).amax(-1) * margin).clamp_min(min_size)


#: keypoints whose confidence-weighted mean is the hand's "up" end in :func:`upright_angle`
FINGER_BASES = (5, 9, 13, 17)


def upright_angle(keypoints: Tensor, confidence: Tensor | None = None,
                  min_confidence: float = 0.0) -> Tensor:
    """The crop rotation that makes a hand point up.

    The hand's direction is from the wrist (keypoint 0) to the confidence-weighted mean of
    the finger bases (:data:`FINGER_BASES`); the returned angle, used as ``angle`` of
    :func:`crop_affine`, turns it to the crop's -v axis (up on screen). Where the wrist or
    every finger base is below ``min_confidence`` (or not finite), or the two coincide, the
    angle is 0 (no rotation).

    Args:
        keypoints: (..., 21, 2) pixels.
        confidence: (..., 21) or None (all keypoints used).

    Returns:
        (...,) radians.
    """
    if keypoints.ndim < 2 or keypoints.shape[-2:] != (21, 2):
        raise ValueError(f"keypoints must be (..., 21, 2), got {tuple(keypoints.shape)}")
    finite = torch.isfinite(keypoints).all(-1)
    conf = torch.ones_like(keypoints[..., 0]) if confidence is None else confidence
    if conf.shape != keypoints.shape[:-1]:
        raise ValueError(f"confidence must be {tuple(keypoints.shape[:-1])}, got "
                         f"{tuple(conf.shape)}")
    ok = finite & (conf >= min_confidence) & (conf > 0)
    kps = torch.where(finite.unsqueeze(-1), keypoints, torch.zeros_like(keypoints))
    bases = list(FINGER_BASES)
    w = (conf[..., bases] * ok[..., bases]).unsqueeze(-1)
    tip = (kps[..., bases, :] * w).sum(-2) / w.sum(-2).clamp_min(1e-12)
    d = tip - kps[..., 0, :]
    valid = ok[..., 0] & ok[..., bases].any(-1) & (d.norm(dim=-1) > 1e-6)
    angle = -math.pi / 2 - torch.atan2(d[..., 1], d[..., 0])
    angle = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
    return torch.where(valid, angle, torch.zeros_like(angle))


# --------------------------------------------------------------------------- affine maps


def crop_affine(center: Tensor, size: Tensor, out_size: int,
                angle: Tensor | None = None) -> Tensor:
    """The map from original pixels to the pixels of a square crop.

    The square of side ``size`` centred on ``center`` (rotated by ``angle`` about its centre)
    becomes the ``out_size x out_size`` output: ``p_crop = s R(angle) (p - center) + c_out``
    with ``s = out_size / size`` and ``c_out = (out_size - 1) / 2``.

    Args:
        center: (..., 2) crop centre, original pixels.
        size: (...,) crop side, original pixels.
        out_size: output side, pixels.
        angle: (...,) radians or None; positive turns the content clockwise on screen.

    Returns:
        (..., 3, 3) affine maps, dtype of ``center``.
    """
    s = out_size / size
    if angle is None:
        angle = torch.zeros_like(size)
    c, si = torch.cos(angle) * s, torch.sin(angle) * s
    c_out = (out_size - 1) / 2.0
    cx, cy = center[..., 0], center[..., 1]
    tx = c_out - (c * cx - si * cy)
    ty = c_out - (si * cx + c * cy)
    zeros, ones = torch.zeros_like(s), torch.ones_like(s)
    rows = [c, -si, tx, si, c, ty, zeros, zeros, ones]
    return torch.stack(rows, -1).unflatten(-1, (3, 3))


def transform_points_2d(points: Tensor, A: Tensor) -> Tensor:
    """Apply 2D affine maps to points.

    Args:
        points: (..., N, 2) pixels.
        A: (..., 3, 3) affine maps (last row ``[0, 0, 1]``).

    Returns:
        (..., N, 2) pixels, dtype of ``points`` (computed in the wider of the two dtypes).
    """
    dtype = torch.promote_types(points.dtype, A.dtype)
    A = A.to(dtype)
    out = points.to(dtype) @ A[..., :2, :2].transpose(-1, -2) + A[..., None, :2, 2]
    return out.to(points.dtype)


def split_inplane_rotation(K_full: Tensor) -> tuple[Tensor, Tensor]:
    """Split ``K_full`` (last row ``[0, 0, 1]``) into ``K @ R`` by an RQ decomposition.

    Args:
        K_full: (..., 3, 3), e.g. ``A @ K`` for an affine pixel map ``A``.

    Returns:
        K: (..., 3, 3) upper triangular with positive ``K[1, 1]``.
        R: (..., 3, 3) rotation about the optical (z) axis.
    """
    m11, m12 = K_full[..., 0, 0], K_full[..., 0, 1]
    m21, m22 = K_full[..., 1, 0], K_full[..., 1, 1]
    d = torch.sqrt(m21 * m21 + m22 * m22)
    sn, cs = m21 / d, m22 / d
    a = m11 * cs - m12 * sn
    b = m11 * sn + m12 * cs
    zeros, ones = torch.zeros_like(d), torch.ones_like(d)
    K = torch.stack([a, b, K_full[..., 0, 2], zeros, d, K_full[..., 1, 2], zeros, zeros, ones],
                    -1).unflatten(-1, (3, 3))
    R = torch.stack([cs, -sn, zeros, sn, cs, zeros, zeros, zeros, ones], -1).unflatten(-1, (3, 3))
    return K, R


def crop_intrinsics(K: Tensor, A: Tensor) -> tuple[Tensor, Tensor]:
    """Intrinsics of the crop ``A`` and the in-plane rotation it implies.

    Args:
        K: (..., 3, 3) original intrinsics, pixels.
        A: (..., 3, 3) original-to-crop pixel map.

    Returns:
        K_crop: (..., 3, 3) upper-triangular intrinsics, crop pixels.
        R_inplane: (..., 3, 3) rotation to apply to camera-space points, ``X' = R X``.
    """
    dtype = torch.promote_types(K.dtype, A.dtype)
    K_crop, R = split_inplane_rotation(A.double() @ K.double())
    return K_crop.to(dtype), R.to(dtype)


# --------------------------------------------------------------------------- images


def warp_images(images: Tensor, A: Tensor, out_size: int | tuple[int, int],
                mode: str = "bilinear") -> Tensor:
    """Resample images through affine pixel maps (zeros outside the source).

    Args:
        images: (B, C, H, W) float.
        A: (B, 3, 3) maps from source pixels to output pixels.
        out_size: S or (S_h, S_w) output size, pixels.
        mode: ``grid_sample`` interpolation.

    Returns:
        (B, C, S_h, S_w). Output pixel ``q`` holds the source sampled at ``A^-1 q``; no
        anti-aliasing, so strong down-scaling aliases (crops of a hand are rarely > 2x).
    """
    if images.ndim != 4 or A.shape != (images.shape[0], 3, 3):
        raise ValueError(f"need images (B, C, H, W) and A (B, 3, 3), got "
                         f"{tuple(images.shape)} and {tuple(A.shape)}")
    S_h, S_w = (out_size, out_size) if isinstance(out_size, int) else out_size
    H, W = images.shape[-2:]
    dev = images.device
    ys, xs = torch.meshgrid(torch.arange(S_h, dtype=torch.float64, device=dev),
                            torch.arange(S_w, dtype=torch.float64, device=dev), indexing="ij")
    dst = torch.stack([xs, ys, torch.ones_like(xs)], -1)  # (S_h, S_w, 3)
    A_inv = torch.linalg.inv(A.to(device=dev, dtype=torch.float64))
    src = torch.einsum("bij,hwj->bhwi", A_inv[:, :2, :], dst)  # (B, S_h, S_w, 2)
    grid = torch.stack([(2 * src[..., 0] + 1) / W - 1, (2 * src[..., 1] + 1) / H - 1], -1)
    return F.grid_sample(images, grid.to(images.dtype), mode=mode, padding_mode="zeros",
                         align_corners=False)


def adjust_colors(images: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor,
                  hue: Tensor) -> Tensor:
    """Colour jitter with per-image factors, applied in this fixed order, clamped to [0, 1].

    Args:
        images: (B, 3, H, W) RGB in [0, 1].
        brightness: (B,) multiplicative factors (1 = unchanged).
        contrast: (B,) blend factors with the per-image mean grey (1 = unchanged).
        saturation: (B,) blend factors with the per-pixel grey (1 = unchanged).
        hue: (B,) hue shifts in turns (0 = unchanged).

    Returns:
        (B, 3, H, W) in [0, 1].
    """
    def view(x: Tensor) -> Tensor:
        return x.to(images.dtype).view(-1, 1, 1, 1)

    weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    out = (images * view(brightness)).clamp(0, 1)
    grey = (out * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = grey.mean((-1, -2), keepdim=True)
    out = ((out - mean) * view(contrast) + mean).clamp(0, 1)
    grey = (out * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    out = ((out - grey) * view(saturation) + grey).clamp(0, 1)
    if bool((hue != 0).any()):
        out = torch.einsum("bij,bjhw->bihw", hue_rotation(hue.to(images.dtype)), out).clamp(0, 1)
    return out


#: RGB -> YIQ (NTSC); hue is the angle of (I, Q)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def hue_rotation(hue: Tensor) -> Tensor:
    """(B, 3, 3) RGB matrices that turn the hue by ``hue`` turns (B,): a rotation of the
    chroma plane (I, Q) of YIQ about the luma axis, which keeps the luma. One matrix per
    image instead of a round trip through HSV."""
    T = torch.tensor(_RGB_TO_YIQ, dtype=hue.dtype, device=hue.device)
    c, s = torch.cos(2 * math.pi * hue), torch.sin(2 * math.pi * hue)
    R = torch.zeros(len(hue), 3, 3, dtype=hue.dtype, device=hue.device)
    R[:, 0, 0] = 1.0
    R[:, 1, 1], R[:, 1, 2], R[:, 2, 1], R[:, 2, 2] = c, -s, s, c
    return torch.linalg.inv(T) @ R @ T


# --------------------------------------------------------------------------- jitter


@dataclass
class CropJitter:
    """Per-image random draws (all (B,) or (B, 2)); identity values when not augmenting.

    Attributes:
        scale: crop side factor. shift: (B, 2) centre shift in crop sides.
        angle: radians. brightness, contrast, saturation: factors. hue: turns.
    """

    scale: Tensor
    shift: Tensor
    angle: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor


def sample_jitter(batch: int, config: CropConfig, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> CropJitter:
    """Draw the jitter for ``batch`` images.

    Always draws the same number of values in the same order, so a given generator state
    gives the same geometry whatever colour settings are on.
    """
    u = torch.rand(batch, 8, generator=generator, dtype=torch.float64)
    u = (2 * u - 1).to(dtype=dtype, device=device)  # U(-1, 1)
    c = config
    return CropJitter(
        scale=1 + c.scale_jitter * u[:, 0],
        shift=c.translate_jitter * u[:, 1:3],
        angle=math.radians(c.rotation_deg) * u[:, 3],
        brightness=1 + c.brightness * u[:, 4],
        contrast=1 + c.contrast * u[:, 5],
        saturation=1 + c.saturation * u[:, 6],
        hue=c.hue * u[:, 7],
    )


def identity_jitter(batch: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> CropJitter:
    """Jitter that changes nothing."""
    ones = torch.ones(batch, dtype=dtype, device=device)
    zeros = torch.zeros(batch, dtype=dtype, device=device)
    return CropJitter(ones, torch.zeros(batch, 2, dtype=dtype, device=device), zeros, ones,
                      ones.clone(), ones.clone(), zeros.clone())


# --------------------------------------------------------------------------- one call


@dataclass
class CropResult:
    """A crop and the camera that sees it.

    Shapes are (B, ...) for batched input and without B for a single image.

    Attributes:
        image: (B, 3, S, S) float in [0, 1].
        K: (B, 3, 3) crop intrinsics, pixels (upper triangular).
        R_inplane: (B, 3, 3) rotation to apply to camera-space points (``X' = R X``).
        affine: (B, 3, 3) map from original pixels to crop pixels.
    """

    image: Tensor
    K: Tensor
    R_inplane: Tensor
    affine: Tensor

    def points_2d(self, points: Tensor) -> Tensor:
        """Original-image pixels (B, N, 2) to crop pixels (B, N, 2)."""
        return transform_points_2d(points, self.affine)

    def points_cam(self, points: Tensor) -> Tensor:
        """Camera-space points (B, N, 3) to the crop's camera frame (B, N, 3), same unit."""
        return points @ self.R_inplane.to(points.dtype).transpose(-1, -2)


def crop_and_augment(
    image: Tensor,
    K: Tensor,
    center: Tensor,
    size: Tensor,
    config: CropConfig,
    generator: torch.Generator | None = None,
    augment: bool = True,
    angle: Tensor | None = None,
    jitter: CropJitter | None = None,
) -> CropResult:
    """Crop square boxes out of images with optional scale/shift/rotation/colour jitter.

    Args:
        image: (B, 3, H, W) or (3, H, W) float in [0, 1].
        K: (B, 3, 3) or (3, 3) intrinsics of the image, pixels.
        center: (B, 2) or (2,) box centre, pixels (see :func:`square_box_from_keypoints`).
        size: (B,) or () box side, pixels (the margin is already in it).
        config: output size and jitter ranges.
        generator: source of randomness (``None``: torch's global generator).
        augment: False gives the plain crop (no random draws at all).
        angle: (B,) or () base rotation of the box, radians (e.g. :func:`upright_angle`),
            before the jitter's rotation; None: 0.
        jitter: the draws to use instead of drawing from ``generator`` (with ``augment``),
            e.g. drawn per sample when a batch of samples is cropped in one call.

    Returns:
        :class:`CropResult`, unbatched if ``image`` was.
    """
    single = image.ndim == 3
    if single:
        image, K, center, size = image[None], K[None], center[None], size.reshape(1)
        angle = None if angle is None else angle.reshape(1)
    B = image.shape[0]
    if K.shape != (B, 3, 3) or center.shape != (B, 2) or size.shape != (B,):
        raise ValueError(f"shape mismatch: image {tuple(image.shape)}, K {tuple(K.shape)}, "
                         f"center {tuple(center.shape)}, size {tuple(size.shape)}")
    dtype = torch.float64
    center, size = center.to(dtype), size.to(dtype)
    if augment and jitter is not None:
        jit = CropJitter(*(getattr(jitter, f.name).to(dtype=dtype, device=image.device)
                           for f in fields(CropJitter)))
    elif augment:
        jit = sample_jitter(B, config, generator, dtype=dtype, device=image.device)
    else:
        jit = identity_jitter(B, dtype=dtype, device=image.device)
    size = (size.to(image.device) * jit.scale).clamp_min(config.min_box_size)
    center = center.to(image.device) + jit.shift * size.unsqueeze(-1)
    rotation = jit.angle if angle is None else jit.angle + angle.to(dtype).to(image.device)
    A = crop_affine(center, size, config.out_size, rotation)
    crops = warp_images(image, A, config.out_size, mode=config.interpolation)
    if augment and (config.brightness or config.contrast or config.saturation or config.hue):
        crops = adjust_colors(crops, jit.brightness, jit.contrast, jit.saturation, jit.hue)
    K_crop, R = crop_intrinsics(K, A)
    out_dtype = K.dtype
    result = CropResult(crops, K_crop.to(out_dtype), R.to(out_dtype), A.to(out_dtype))
    if single:
        result = CropResult(result.image[0], result.K[0], result.R_inplane[0], result.affine[0])
    return result


# --------------------------------------------------------------------------- samples


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 steps), stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


class Compose:
    """Apply sample transforms in order; ``set_epoch`` reaches every one that has it (the
    trainer calls it so seeded augmentation changes per epoch)."""

    def __init__(self, *transforms: Any) -> None:
        self.transforms = transforms

    def set_epoch(self, epoch: int) -> None:
        for t in self.transforms:
            if callable(getattr(t, "set_epoch", None)):
                t.set_epoch(epoch)

    def __call__(self, sample: Any) -> Any:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def batch(self, samples: list[Any]) -> list[Any]:
        """Apply to several samples, through each transform's ``batch`` where it has one."""
        for t in self.transforms:
            many = getattr(t, "batch", None)
            samples = many(samples) if callable(many) else [t(s) for s in samples]
        return samples


class HandCrop:
    """Crop (and optionally augment) a dataset sample dict, updating every geometric key.

    Works on single-view samples (``image`` (3, H, W)) and multi-view samples (``image``
    (V, 3, H, W); each view gets its own box and its own random draws).

    Keys updated when present (V = views, dropped for single-view samples):

    - ``image`` -> (V, 3, S, S); ``K`` -> crop intrinsics (V, 3, 3); ``mask`` (V, 1, H, W)
      -> (V, 1, S, S), warped like the image (bilinear: soft edges; zero outside).
    - 2D pixels, mapped by ``crop_affine``: ``joints_2d``, ``pseudo_2d`` (V, 21, 2);
      ``hand_box`` (V, 4) becomes the bounds of its mapped corners.
    - camera-space points, rotated by ``R_inplane``: ``joints_cam`` (V, 21, 3),
      ``verts_cam`` (V, 778, 3), ``root_cam`` (V, 3).
    - ``M`` (V, 4, 4) -> ``diag(R_inplane, 1) @ M`` (world-space keys stay valid).
    - ``crop_affine`` (V, 3, 3) and ``R_inplane`` (V, 3, 3): added; when the sample already
      has them (it is itself a crop, e.g. from :class:`hand_lib.data.CropCache`), the new
      map is composed onto them, so they always map from the *original* image and camera.

    Not updated: MANO parameters. World-space fits (HanCo ``mano_*``) stay valid with the
    new ``M``; camera-space fits (FreiHAND ``mano``, HanCo ``mano_cam``) need their global
    rotation composed with ``R_inplane`` about the MANO root, which needs the MANO layer.
    For views with ``view_mask`` False the 2D/3D labels stay zero.

    Args:
        config: crop size, margin and jitter.
        box_from: what the box is built from: ``"pseudo_2d"`` (with ``pseudo_conf``),
            ``"joints_2d"`` (ground truth; used only where ``has_joints``), ``"hand_box"``
            (xyxy), ``"crop_box"`` (``(V, 3)`` centre x, centre y and side in pixels, given
            by the sample: :class:`hand_lib.data.CropCache` stores the box it cut around)
            or ``"image"`` (the whole image, i.e. a plain rescale).
        augment: apply the random jitter of ``config``.
        seed: None uses torch's global generator; an int derives a generator from
            ``(seed, epoch, sample["index"])`` so runs are reproducible.
    """

    POINTS_2D_KEYS = ("joints_2d", "pseudo_2d")
    POINTS_CAM_KEYS = ("joints_cam", "verts_cam")

    def __init__(self, config: CropConfig | None = None,
                 box_from: Literal["pseudo_2d", "joints_2d", "hand_box", "crop_box",
                                   "image"] = "pseudo_2d",
                 augment: bool = True, seed: int | None = None) -> None:
        if box_from not in ("pseudo_2d", "joints_2d", "hand_box", "crop_box", "image"):
            raise ValueError(f"unknown box_from {box_from!r}")
        self.config = config if config is not None else CropConfig()
        self.box_from = box_from
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of a seeded crop from one epoch to the next."""
        self.epoch = int(epoch)

    def _generator(self, sample: Mapping[str, Any]) -> torch.Generator | None:
        if self.seed is None or not self.augment:
            return None
        if "index" not in sample:
            raise KeyError("HandCrop with a seed needs sample['index']")
        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, self.epoch, int(sample["index"])))
        return g

    def _box(self, s: dict[str, Any], image_size: tuple[int, int],
             V: int) -> tuple[Tensor, Tensor]:
        c = self.config
        if self.box_from == "image":
            return full_image_box(image_size, (V,), torch.float64)
        if self.box_from == "hand_box":
            return square_box_from_xyxy(s["hand_box"].double(), c.margin, c.min_box_size)
        if self.box_from == "crop_box":
            box = s["crop_box"].double()
            return box[:, :2], box[:, 2]
        if self.box_from == "pseudo_2d":
            kps, conf = s["pseudo_2d"], s["pseudo_conf"]
        else:
            kps = s["joints_2d"]
            has = s.get("has_joints", torch.ones((), dtype=torch.bool)).reshape(-1)
            has = has.expand(V) & s.get("view_mask", torch.ones(V, dtype=torch.bool))
            conf = has.to(kps.dtype).unsqueeze(-1).expand(kps.shape[:-1])
        return square_box_from_keypoints(kps.double(), image_size, conf.double(),
                                         c.min_confidence, c.margin, c.min_box_size)

    def _upright(self, s: dict[str, Any], V: int) -> Tensor:
        """The upright rotation of each view, from the keypoints the box is built from (no
        rotation for ``box_from`` "hand_box" or "image", which have no keypoints)."""
        if self.box_from == "pseudo_2d":
            return upright_angle(s["pseudo_2d"].double(), s["pseudo_conf"].double(),
                                 self.config.min_confidence)
        if self.box_from == "joints_2d":
            return upright_angle(s["joints_2d"].double())
        return torch.zeros(V, dtype=torch.float64)  # hand_box, crop_box, image

    _BATCHED_KEYS = ("image", "K", "M", "hand_box", "root_cam", "view_mask", "mask",
                     "crop_box", "crop_affine", "R_inplane", "pseudo_conf", *POINTS_2D_KEYS,
                     *POINTS_CAM_KEYS)

    def _prepare(self, sample: dict[str, Any]) -> tuple[dict[str, Any], bool, Tensor, Tensor,
                                                         Tensor | None]:
        """A copy with a leading view axis everywhere, and its boxes and upright angles."""
        out = dict(sample)
        single = out["image"].ndim == 3
        if single:
            for k in self._BATCHED_KEYS:
                if k in out:
                    out[k] = out[k].unsqueeze(0)
        V, _, H, W = out["image"].shape
        center, size = self._box(out, (H, W), V)
        angle = self._upright(out, V) if self.config.upright else None
        return out, single, center, size, angle

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Return a new sample dict with the crop applied (the input is not modified)."""
        out, single, center, size, angle = self._prepare(sample)
        res = crop_and_augment(out["image"], out["K"], center, size, self.config,
                               self._generator(sample), self.augment, angle)
        mask = None
        if "mask" in out:
            mask = warp_images(out["mask"].float(), res.affine.to(torch.float64),
                               self.config.out_size)
        return self._finish(out, res, mask, single)

    def batch(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Crop several samples with one resampling call: the same as ``[self(s) for s in
        samples]`` (each sample still draws its jitter from its own generator), several
        times faster for small crops. The samples' images must have one size."""
        if not samples:
            return []
        prepared = [self._prepare(s) for s in samples]
        counts = [p[0]["image"].shape[0] for p in prepared]
        sizes = {tuple(p[0]["image"].shape[-2:]) for p in prepared}
        if len(sizes) != 1:
            raise ValueError(f"HandCrop.batch needs images of one size, got {sorted(sizes)}")
        jitter = None
        if self.augment:
            draws = [sample_jitter(n, self.config, self._generator(s), dtype=torch.float64)
                     for n, s in zip(counts, samples, strict=True)]
            jitter = CropJitter(*(torch.cat([getattr(d, f.name) for d in draws])
                                  for f in fields(CropJitter)))
        angles = None
        if self.config.upright:
            angles = torch.cat([p[4] for p in prepared])
        res = crop_and_augment(torch.cat([p[0]["image"] for p in prepared]),
                               torch.cat([p[0]["K"] for p in prepared]),
                               torch.cat([p[2] for p in prepared]),
                               torch.cat([p[3] for p in prepared]), self.config, None,
                               self.augment, angles, jitter=jitter)
        masks = None
        if all("mask" in p[0] for p in prepared):
            masks = warp_images(torch.cat([p[0]["mask"].float() for p in prepared]),
                                res.affine.to(torch.float64), self.config.out_size)
        outputs, start = [], 0
        for (out, single, *_), n in zip(prepared, counts, strict=True):
            part = CropResult(*(x[start:start + n] for x in (res.image, res.K, res.R_inplane,
                                                              res.affine)))
            mask = None
            if "mask" in out:
                mask = (masks[start:start + n] if masks is not None else
                        warp_images(out["mask"].float(), part.affine.to(torch.float64),
                                    self.config.out_size))
            outputs.append(self._finish(out, part, mask, single))
            start += n
        return outputs

    def _finish(self, out: dict[str, Any], res: CropResult, mask: Tensor | None,
                single: bool) -> dict[str, Any]:
        """Update every geometric key of a prepared sample with its crop."""
        V = res.image.shape[0]
        out["image"], out["K"] = res.image, res.K
        if mask is not None:
            out["mask"] = mask
        if "crop_affine" in out:  # already a crop: keep mapping from the original image
            out["crop_affine"] = res.affine @ out["crop_affine"].to(res.affine.dtype)
            out["R_inplane"] = res.R_inplane @ out["R_inplane"].to(res.R_inplane.dtype)
        else:
            out["crop_affine"], out["R_inplane"] = res.affine, res.R_inplane
        out.pop("crop_box", None)  # pixels of the input, meaningless in the crop
        keep = out.get("view_mask")
        for k in self.POINTS_2D_KEYS:
            if k in out:
                out[k] = res.points_2d(out[k])
        for k in self.POINTS_CAM_KEYS:
            if k in out:
                out[k] = res.points_cam(out[k])
        if "root_cam" in out:
            out["root_cam"] = res.points_cam(out["root_cam"].unsqueeze(-2)).squeeze(-2)
        if "hand_box" in out:
            b = out["hand_box"]
            corners = torch.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1)
            corners = res.points_2d(corners)
            out["hand_box"] = torch.cat([corners.amin(1), corners.amax(1)], -1)
        if "M" in out:
            R4 = torch.eye(4, dtype=out["M"].dtype).repeat(V, 1, 1)
            R4[:, :3, :3] = res.R_inplane.to(out["M"].dtype)
            out["M"] = R4 @ out["M"]
        if keep is not None:
            for k in (*self.POINTS_2D_KEYS, *self.POINTS_CAM_KEYS):
                if k in out:
                    out[k] = out[k] * keep.view(-1, *([1] * (out[k].ndim - 1))).to(out[k].dtype)
        if single:
            for k in self._BATCHED_KEYS:
                if k in out:
                    out[k] = out[k].squeeze(0)
        return out
