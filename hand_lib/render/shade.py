"""Shading: S2HAND's 11 lighting values, Lambertian face light, per-pixel interpolation of
depth and colour at the visible face, compositing over the background.

Lighting, per sample, ``lighting[b] = (a, d, ar, ag, ab, dr, dg, db, lx, ly, lz)``:

- ``a``: ambient intensity, ``d``: directional intensity (scalars),
- ``(ar, ag, ab)``: ambient colour, ``(dr, dg, db)``: directional colour,
- ``(lx, ly, lz)``: direction from the surface towards the light, camera coordinates
  (OpenCV: x right, y down, z forward; a light at the camera is ``(0, 0, -1)``). It is
  normalised here, so only its direction matters.

The light reaching a face with unit normal ``n`` is
``light = a * (ar, ag, ab) + d * (dr, dg, db) * relu(n . l / |l|)`` and the shaded colour is
``albedo * light`` (no clamping: the network's output activations bound the values). Face
normals are ``n = normalize((v1 - v0) x (v2 - v0))`` in camera space; on MANO's
counter-clockwise-from-outside winding they point out of the hand, so a face seen from the
camera has ``n_z < 0``. The values are used as given: any activation (sigmoid, softplus ...)
belongs to the network that predicts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

NUM_LIGHTING_PARAMS = 11


@dataclass
class Lighting:
    """S2HAND's 11 lighting values, split. All (B,) or (B, 3)."""

    ambient_intensity: Tensor  # (B,)
    directional_intensity: Tensor  # (B,)
    ambient_color: Tensor  # (B, 3)
    directional_color: Tensor  # (B, 3)
    direction: Tensor  # (B, 3) towards the light, camera coordinates, unit length

    @classmethod
    def from_params(cls, params: Tensor) -> Lighting:
        """Split (B, 11) values; see the module docstring for the order."""
        if params.dim() != 2 or params.shape[1] != NUM_LIGHTING_PARAMS:
            raise ValueError(f"lighting must be (B, 11), got {tuple(params.shape)}")
        return cls(
            ambient_intensity=params[:, 0],
            directional_intensity=params[:, 1],
            ambient_color=params[:, 2:5],
            directional_color=params[:, 5:8],
            direction=F.normalize(params[:, 8:11], dim=1, eps=1e-8),
        )


def ambient_only(batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(B, 11) lighting that leaves the albedo unchanged: ambient 1 x white, no directional."""
    params = torch.zeros(batch, NUM_LIGHTING_PARAMS, dtype=dtype, device=device)
    params[:, 0] = 1.0
    params[:, 2:5] = 1.0
    params[:, 10] = -1.0  # any non-zero direction; its intensity is 0
    return params


def face_normals(face_xyz: Tensor) -> Tensor:
    """Unit normals ``normalize((v1 - v0) x (v2 - v0))``.

    Args:
        face_xyz: (..., 3, 3) face corners, metres.

    Returns:
        (..., 3) unit normals (zero for degenerate faces).
    """
    n = torch.linalg.cross(face_xyz[..., 1, :] - face_xyz[..., 0, :],
                           face_xyz[..., 2, :] - face_xyz[..., 0, :], dim=-1)
    return F.normalize(n, dim=-1, eps=1e-12)


def face_light(normals: Tensor, lighting: Lighting) -> Tensor:
    """Light reaching each face (Lambertian, one-sided).

    Args:
        normals: (B, F, 3) unit face normals, camera space.
        lighting: per-sample lighting.

    Returns:
        (B, F, 3) RGB light multipliers.
    """
    cos = torch.relu((normals * lighting.direction[:, None, :]).sum(-1))  # (B, F)
    ambient = lighting.ambient_intensity[:, None] * lighting.ambient_color  # (B, 3)
    directional = lighting.directional_intensity[:, None] * lighting.directional_color
    return ambient[:, None, :] + directional[:, None, :] * cos[..., None]


def pixel_barycentrics(
    face_uv: Tensor, face_z: Tensor, pixel_ids: Tensor, pixel_face: Tensor, width: int,
    height: int,
) -> tuple[Tensor, Tensor]:
    """Perspective-correct barycentrics and depth of pixel centres on given faces.

    Pixels outside their face (the soft fringe) are projected onto it first: their screen
    barycentrics are clamped to >= 0 and renormalised.

    Args:
        face_uv: (B * F, 3, 2) projected face corners, pixels.
        face_z: (B * F, 3) corner depths, metres (> 0).
        pixel_ids: (Q,) int64 flat pixel ids ``b * H * W + y * W + x``.
        pixel_face: (Q,) int64 flat face ids.
        width, height: image size W, H.

    Returns:
        ``weights`` (Q, 3) perspective-correct barycentrics (sum to 1) and ``depth`` (Q,)
        metres, both differentiable w.r.t. ``face_uv`` and ``face_z``.
    """
    tri = face_uv[pixel_face]  # (Q, 3, 2)
    px = (pixel_ids % width).to(face_uv.dtype)
    py = torch.div(pixel_ids, width, rounding_mode="floor").remainder(height).to(face_uv.dtype)
    p = torch.stack([px, py], dim=1)[:, None, :]  # (Q, 1, 2)
    edge = tri.roll(-1, dims=1) - tri  # edge k: corner k -> k + 1
    rel = p - tri
    cross = edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]  # (Q, 3)
    # cross_k is proportional to the barycentric of corner k - 1.
    screen = cross.roll(-1, dims=1) * torch.sign(cross.sum(dim=1, keepdim=True))
    screen = screen.clamp_min(0.0)
    screen = screen / screen.sum(dim=1, keepdim=True).clamp_min(1e-20)
    weights = screen / face_z[pixel_face]
    inv_depth = weights.sum(dim=1)
    return weights / inv_depth[:, None], 1.0 / inv_depth


def composite(alpha: Tensor, foreground: Tensor, background: tuple[float, float, float]) -> Tensor:
    """``alpha * foreground + (1 - alpha) * background``.

    Args:
        alpha: (B, H, W) coverage in [0, 1].
        foreground: (B, H, W, 3) colour of the visible surface.
        background: RGB.

    Returns:
        (B, H, W, 3).
    """
    bg = torch.tensor(background, dtype=foreground.dtype, device=foreground.device)
    a = alpha[..., None]
    return a * foreground + (1.0 - a) * bg
