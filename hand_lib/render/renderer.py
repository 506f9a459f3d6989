"""The renderer: checks inputs, projects, rasterises, shades; one named output.

Conventions: camera-space vertices in metres (OpenCV: x right, y down, z forward), pinhole
intrinsics ``K`` in pixels with pixel ``(x, y)`` centred at ``(u, v) = (x, y)``, images
indexed ``[b, row, column]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hand_lib.geometry import project_points
from hand_lib.render.rasterize import Fragments, rasterize, soft_silhouette
from hand_lib.render.settings import RenderSettings
from hand_lib.render.shade import (
    Lighting,
    ambient_only,
    composite,
    face_light,
    face_normals,
    pixel_barycentrics,
)

Mode = Literal["soft", "hard"]


@dataclass
class RenderOutput:
    """A batch of rendered images.

    Attributes:
        alpha: (B, H, W) coverage in [0, 1]: the soft silhouette (``mode="soft"``) or the
            hard mask (``mode="hard"``).
        depth_m: (B, H, W) depth z of the visible surface, metres; 0 on the background.
        rgb: (B, H, W, 3) shaded colour composited over ``settings.background`` with alpha.
        face_index: (B, H, W) int64 index (0..F-1) of the visible face, -1 on the background.
    """

    alpha: Tensor
    depth_m: Tensor
    rgb: Tensor
    face_index: Tensor

    @property
    def mask(self) -> Tensor:
        """(B, H, W) bool hard coverage (a face is visible)."""
        return self.face_index >= 0


@dataclass
class _Inputs:
    vertices: Tensor  # (B, V, 3)
    faces: Tensor  # (B, F, 3) int64
    K: Tensor  # (B, 3, 3)
    face_colors: Tensor | None  # (B, F, 3)
    vertex_colors: Tensor | None  # (B, V, 3)
    lighting: Tensor  # (B, 11)


def _check_inputs(
    vertices: Tensor,
    faces: Tensor,
    K: Tensor,
    face_colors: Tensor | None,
    vertex_colors: Tensor | None,
    lighting: Tensor | None,
) -> _Inputs:
    """Validate shapes, dtypes and devices; broadcast shared faces and K over the batch."""
    if not isinstance(vertices, Tensor) or vertices.dim() != 3 or vertices.shape[2] != 3:
        shape = tuple(vertices.shape) if isinstance(vertices, Tensor) else type(vertices)
        raise ValueError(f"vertices must be (B, V, 3) camera-space metres, got {shape}")
    if not vertices.is_floating_point():
        raise ValueError(f"vertices must be floating point, got {vertices.dtype}")
    B, V, _ = vertices.shape
    device, dtype = vertices.device, vertices.dtype
    if B == 0 or V == 0:
        raise ValueError(f"vertices must be (B, V, 3) with B, V > 0, got {tuple(vertices.shape)}")

    if not isinstance(faces, Tensor) or faces.dim() not in (2, 3) or faces.shape[-1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, Tensor) else type(faces)
        raise ValueError(f"faces must be (F, 3) or (B, F, 3) vertex indices, got {shape}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be int32 or int64 (F, 3) or (B, F, 3), got {faces.dtype}")
    if faces.device != device:
        raise ValueError(f"faces are on {faces.device}, vertices on {device}")
    if faces.dim() == 3 and faces.shape[0] != B:
        raise ValueError(f"faces must be (F, 3) or ({B}, F, 3), got {tuple(faces.shape)}")
    if faces.shape[-2] == 0:
        raise ValueError("faces must hold at least one face, got (0, 3)")
    if int(faces.min()) < 0 or int(faces.max()) >= V:
        raise ValueError(f"faces must index vertices 0..{V - 1} of (B, V, 3) vertices, got "
                         f"{int(faces.min())}..{int(faces.max())}")
    faces = faces.long()
    if faces.dim() == 2:
        faces = faces.expand(B, -1, -1)
    F_ = faces.shape[1]

    if not isinstance(K, Tensor) or tuple(K.shape) not in ((B, 3, 3), (1, 3, 3), (3, 3)):
        shape = tuple(K.shape) if isinstance(K, Tensor) else type(K)
        raise ValueError(f"K must be ({B}, 3, 3), (1, 3, 3) or (3, 3) intrinsics in pixels, "
                         f"got {shape}")
    if K.dtype != dtype or K.device != device:
        raise ValueError(f"K must be {dtype} on {device} like vertices, got {K.dtype} on "
                         f"{K.device}")
    K = K.expand(B, 3, 3)

    def check_colors(colors: Tensor | None, count: int, name: str, what: str) -> None:
        if colors is None:
            return
        if not isinstance(colors, Tensor) or tuple(colors.shape) != (B, count, 3):
            shape = tuple(colors.shape) if isinstance(colors, Tensor) else type(colors)
            raise ValueError(f"{name} must be ({B}, {count}, 3) RGB per {what}, got {shape}")
        if colors.dtype != dtype or colors.device != device:
            raise ValueError(f"{name} must be {dtype} on {device}, got {colors.dtype} on "
                             f"{colors.device}")

    check_colors(face_colors, F_, "face_colors", "face")
    check_colors(vertex_colors, V, "vertex_colors", "vertex")
    if face_colors is not None and vertex_colors is not None:
        raise ValueError("give face_colors or vertex_colors, not both")
    if lighting is None:
        lighting = ambient_only(B, dtype, device)
    elif not isinstance(lighting, Tensor) or tuple(lighting.shape) != (B, 11):
        shape = tuple(lighting.shape) if isinstance(lighting, Tensor) else type(lighting)
        raise ValueError(f"lighting must be ({B}, 11) S2HAND lighting values, got {shape}")
    elif lighting.dtype != dtype or lighting.device != device:
        raise ValueError(f"lighting must be {dtype} on {device}, got {lighting.dtype} on "
                         f"{lighting.device}")
    return _Inputs(vertices, faces, K, face_colors, vertex_colors, lighting)


def _face_geometry(inputs: _Inputs) -> tuple[Tensor, Tensor]:
    """(B * F, 3, 3) camera-space corners and (B * F, 3, 2) projected corners."""
    B, V, _ = inputs.vertices.shape
    uv = project_points(inputs.vertices, inputs.K)  # (B, V, 2)
    offset = (torch.arange(B, device=inputs.vertices.device) * V)[:, None, None]
    flat = (inputs.faces + offset).reshape(-1)
    face_xyz = inputs.vertices.reshape(B * V, 3)[flat].view(-1, 3, 3)
    face_uv = uv.reshape(B * V, 2)[flat].view(-1, 3, 2)
    return face_xyz, face_uv


class MeshRenderer:
    """Differentiable mesh renderer in pure PyTorch (CPU and CUDA).

    ``render`` returns a ``RenderOutput``; ``silhouette`` only the soft silhouette (the
    cheapest call, what a silhouette loss needs); ``render_fast`` is the hard, no-grad path
    for data generation. With ``settings.backend == "neural_renderer"`` the same calls go to
    neural-renderer-pytorch (see ``hand_lib.render.nr_backend``).
    """

    def __init__(self, settings: RenderSettings | None = None) -> None:
        self.settings = settings if settings is not None else RenderSettings()
        self._nr = None
        if self.settings.backend == "neural_renderer":
            from hand_lib.render.nr_backend import NeuralRendererBackend

            self._nr = NeuralRendererBackend(self.settings)

    def silhouette(self, vertices: Tensor, faces: Tensor, K: Tensor) -> Tensor:
        """Soft silhouette (SoftRas aggregation), differentiable w.r.t. ``vertices``.

        Args:
            vertices: (B, V, 3) camera-space vertices, metres.
            faces: (F, 3) or (B, F, 3) int vertex indices.
            K: (B, 3, 3) or (3, 3) intrinsics, pixels.

        Returns:
            (B, H, W) coverage in [0, 1].
        """
        inputs = _check_inputs(vertices, faces, K, None, None, None)
        if self._nr is not None:
            return self._nr.silhouette(inputs.vertices, inputs.faces, inputs.K)
        face_xyz, face_uv = _face_geometry(inputs)
        fragments = rasterize(face_uv, face_xyz, vertices.shape[0], self.settings, soft=True,
                              need_visibility=False)
        return soft_silhouette(face_uv, fragments, self.settings)

    def render(
        self,
        vertices: Tensor,
        faces: Tensor,
        K: Tensor,
        face_colors: Tensor | None = None,
        vertex_colors: Tensor | None = None,
        lighting: Tensor | None = None,
        mode: Mode = "soft",
    ) -> RenderOutput:
        """Render silhouette, depth, shaded colour and face ids.

        Args:
            vertices: (B, V, 3) camera-space vertices, metres.
            faces: (F, 3) or (B, F, 3) int vertex indices.
            K: (B, 3, 3) or (3, 3) intrinsics, pixels.
            face_colors: (B, F, 3) albedo per face, or
            vertex_colors: (B, V, 3) albedo per vertex (perspective-correct interpolation);
                neither: white.
            lighting: (B, 11) S2HAND lighting (see ``hand_lib.render.shade``); None: ambient
                white light of intensity 1, i.e. the albedo itself.
            mode: ``"soft"``: soft silhouette as alpha, gradients reach vertices through the
                silhouette edges; ``"hard"``: binary coverage (gradients reach colours,
                lighting and shading normals only).

        Returns:
            RenderOutput; everything differentiable except ``face_index``.
        """
        if mode not in ("soft", "hard"):
            raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
        inputs = _check_inputs(vertices, faces, K, face_colors, vertex_colors, lighting)
        if self._nr is not None:
            return self._nr.render(inputs.vertices, inputs.faces, inputs.K, inputs.face_colors,
                                   inputs.vertex_colors, inputs.lighting, mode)
        return self._render_torch(inputs, mode)

    @torch.no_grad()
    def render_fast(
        self,
        vertices: Tensor,
        faces: Tensor,
        K: Tensor,
        face_colors: Tensor | None = None,
        vertex_colors: Tensor | None = None,
        lighting: Tensor | None = None,
    ) -> RenderOutput:
        """Hard, non-differentiable render (rgb + mask + depth) for data generation.

        Same arguments as ``render``; no soft term, no autograd graph.
        """
        return self.render(vertices, faces, K, face_colors, vertex_colors, lighting, "hard")

    def _render_torch(self, inputs: _Inputs, mode: Mode) -> RenderOutput:
        settings = self.settings
        H, W = settings.image_size
        B, V, _ = inputs.vertices.shape
        F_ = inputs.faces.shape[1]
        soft = mode == "soft"
        face_xyz, face_uv = _face_geometry(inputs)
        fragments = rasterize(face_uv, face_xyz, B, settings, soft=soft)

        foreground, depth, face_index = self._shade(inputs, face_xyz, face_uv, fragments, F_)
        if soft:
            alpha = soft_silhouette(face_uv, fragments, settings)
        else:
            alpha = (face_index >= 0).to(inputs.vertices.dtype)
        rgb = composite(alpha, foreground, settings.background)
        return RenderOutput(alpha=alpha, depth_m=depth, rgb=rgb, face_index=face_index)

    def _shade(
        self, inputs: _Inputs, face_xyz: Tensor, face_uv: Tensor, fragments: Fragments,
        num_faces: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Foreground colour (B, H, W, 3), depth (B, H, W) and face index (B, H, W)."""
        H, W = self.settings.image_size
        B = inputs.vertices.shape[0]
        dtype, device = inputs.vertices.dtype, inputs.vertices.device
        ids, face = fragments.pixel_ids, fragments.pixel_face
        weights, depth = pixel_barycentrics(face_uv, face_xyz[..., 2], ids, face, W, H)

        lighting = Lighting.from_params(inputs.lighting)
        light = face_light(face_normals(face_xyz.view(B, num_faces, 3, 3)), lighting)
        color = light.reshape(B * num_faces, 3)[face]  # (Q, 3)
        if inputs.face_colors is not None:
            color = color * inputs.face_colors.reshape(B * num_faces, 3)[face]
        elif inputs.vertex_colors is not None:
            V = inputs.vertices.shape[1]
            offset = (torch.arange(B, device=device) * V)[:, None, None]
            corner_ids = (inputs.faces + offset).reshape(B * num_faces, 3)[face]  # (Q, 3)
            corner_colors = inputs.vertex_colors.reshape(B * V, 3)[corner_ids]  # (Q, 3, 3)
            color = color * (weights[..., None] * corner_colors).sum(dim=1)

        foreground = torch.zeros(B * H * W, 3, dtype=dtype, device=device).index_put((ids,), color)
        depth_img, face_index = _depth_and_face_index(fragments, depth, dtype)
        return foreground.view(B, H, W, 3), depth_img, face_index


def _depth_and_face_index(fragments: Fragments, pixel_depth: Tensor,
                          dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Depth image (B, H, W) metres (0 on the background) and face index (B, H, W) (-1 there).

    Args:
        fragments: rasteriser output.
        pixel_depth: (Q,) depth of ``fragments.pixel_ids`` on ``fragments.pixel_face``.
    """
    H, W = fragments.image_size
    B, num_faces = fragments.batch_size, fragments.num_faces
    device = pixel_depth.device
    inside = fragments.pixel_inside
    inside_ids = fragments.pixel_ids[inside]
    depth_img = torch.zeros(B * H * W, dtype=dtype, device=device).index_put(
        (inside_ids,), pixel_depth[inside])
    face_index = torch.full((B * H * W,), -1, dtype=torch.int64, device=device)
    face_index[inside_ids] = fragments.pixel_face[inside] % num_faces
    return depth_img.view(B, H, W), face_index.view(B, H, W)


def visible_surface(
    face_xyz: Tensor, face_uv: Tensor, fragments: Fragments
) -> tuple[Tensor, Tensor]:
    """Depth (B, H, W) metres and face index (B, H, W) of hard fragments (no colour)."""
    H, W = fragments.image_size
    _, depth = pixel_barycentrics(face_uv, face_xyz[..., 2], fragments.pixel_ids,
                                  fragments.pixel_face, W, H)
    return _depth_and_face_index(fragments, depth, face_uv.dtype)
