"""Optional backend: neural-renderer-pytorch 1.1.3 behind ``MeshRenderer``'s interface.

Only for comparison and benchmarks; nothing in the project needs it. It is CUDA-only, has to
be built with the source edits in ``tools/install_neural_renderer.py`` on PyTorch 2.x, and
renders square images only.

How our inputs map onto it:

- Camera: its ``projection`` camera mode with ``R = I``, ``t = 0``, no distortion and
  ``orig_size = image_size``. neural_renderer puts pixel ``x``'s centre at ``u = x + 0.5``
  (ours: ``u = x``), so ``K``'s principal point is shifted by +0.5 px before the call.
- Colours and light: the S2HAND lighting is evaluated here (``shade.face_light``), multiplied
  into per-face albedo and handed over as 1x1x1 textures, with neural_renderer's own light
  set to white ambient 1. Shading therefore matches the torch backend; per-vertex colours
  are averaged per face (neural_renderer's textures are per face).
- Alpha: neural_renderer's hard (optionally supersampled) coverage; ``mode`` is ignored.
  Its silhouette gradients are its own approximate ones, not SoftRas'.
- ``face_index`` and ``depth_m`` come from this package's hard rasteriser (neural_renderer
  does not return face ids), without gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hand_lib.render.settings import RenderSettings

INSTALL_HINT = (
    "install it on a CUDA machine with `python tools/install_neural_renderer.py` (it applies the "
    "PyTorch 2.x source edits), or use RenderSettings(backend='torch')"
)


class BackendUnavailableError(RuntimeError):
    """The requested rendering backend cannot run here (missing package or no CUDA)."""


def import_neural_renderer() -> Any:
    """Import ``neural_renderer`` or raise ``BackendUnavailableError`` saying why not."""
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "backend 'neural_renderer' needs CUDA, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use RenderSettings(backend='torch') on CPU"
        )
    try:
        import neural_renderer
    except ImportError as error:
        raise BackendUnavailableError(
            f"backend 'neural_renderer' needs neural-renderer-pytorch 1.1.3 ({error}); "
            + INSTALL_HINT
        ) from error
    return neural_renderer


class NeuralRendererBackend:
    """neural_renderer with ``MeshRenderer``'s conventions (see the module docstring)."""

    def __init__(self, settings: RenderSettings, anti_aliasing: bool = False) -> None:
        H, W = settings.image_size
        if H != W:
            raise ValueError(f"backend 'neural_renderer' renders square images, got {(H, W)}")
        self.nr = import_neural_renderer()
        self.settings = settings
        self.renderer = self.nr.Renderer(
            image_size=W,
            orig_size=W,
            camera_mode="projection",
            anti_aliasing=anti_aliasing,
            background_color=list(settings.background),
            fill_back=not settings.cull_backfaces,
            near=settings.near,
            far=settings.far,
            light_intensity_ambient=1.0,
            light_intensity_directional=0.0,
            light_color_ambient=[1.0, 1.0, 1.0],
            light_color_directional=[1.0, 1.0, 1.0],
        )

    def _camera(self, vertices: Tensor, K: Tensor) -> dict[str, Tensor]:
        if not vertices.is_cuda or vertices.dtype != torch.float32:
            raise ValueError(
                "backend 'neural_renderer' needs float32 CUDA tensors, got "
                f"{vertices.dtype} on {vertices.device}"
            )
        B = vertices.shape[0]
        K_nr = K.clone()
        K_nr[:, 0, 2] += 0.5
        K_nr[:, 1, 2] += 0.5
        eye = torch.eye(3, dtype=vertices.dtype, device=vertices.device).expand(B, 3, 3)
        return {
            "K": K_nr.contiguous(),
            "R": eye.contiguous(),
            "t": vertices.new_zeros(B, 1, 3),
            "dist_coeffs": vertices.new_zeros(B, 5),
            "orig_size": self.settings.image_size[1],
        }

    def silhouette(self, vertices: Tensor, faces: Tensor, K: Tensor) -> Tensor:
        """(B, H, W) coverage; same arguments as ``MeshRenderer.silhouette`` (checked)."""
        camera = self._camera(vertices, K)
        return self.renderer(vertices, faces.int().contiguous(), mode="silhouettes", **camera)

    def render_rgb(
        self,
        vertices: Tensor,
        faces: Tensor,
        K: Tensor,
        face_colors: Tensor | None,
        vertex_colors: Tensor | None,
        lighting: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """neural_renderer's shaded image (B, H, W, 3) and alpha (B, H, W), nothing else.

        Inputs as ``MeshRenderer.render`` after checking: faces (B, F, 3), K (B, 3, 3),
        lighting (B, 11).
        """
        from hand_lib.render.shade import Lighting, face_light, face_normals

        camera = self._camera(vertices, K)
        B, V, _ = vertices.shape
        offset = (torch.arange(B, device=vertices.device) * V)[:, None, None]
        face_xyz = vertices.reshape(B * V, 3)[faces + offset]  # (B, F, 3, 3)
        light = face_light(face_normals(face_xyz), Lighting.from_params(lighting))
        if face_colors is not None:
            albedo = face_colors
        elif vertex_colors is not None:
            albedo = vertex_colors.reshape(B * V, 3)[faces + offset].mean(dim=2)
        else:
            albedo = torch.ones_like(light)
        textures = (albedo * light)[:, :, None, None, None, :].contiguous()
        rgb, _, alpha = self.renderer(vertices, faces.int().contiguous(), textures, mode=None,
                                      **camera)
        return rgb.permute(0, 2, 3, 1), alpha

    def render(
        self,
        vertices: Tensor,
        faces: Tensor,
        K: Tensor,
        face_colors: Tensor | None,
        vertex_colors: Tensor | None,
        lighting: Tensor,
        mode: str,
    ):
        """``RenderOutput`` like ``MeshRenderer.render`` (see the module docstring)."""
        from hand_lib.render.rasterize import rasterize
        from hand_lib.render.renderer import RenderOutput, _face_geometry, _Inputs, visible_surface

        rgb, alpha = self.render_rgb(vertices, faces, K, face_colors, vertex_colors, lighting)
        with torch.no_grad():
            inputs = _Inputs(vertices, faces, K, face_colors, vertex_colors, lighting)
            face_xyz, face_uv = _face_geometry(inputs)
            fragments = rasterize(face_uv, face_xyz, vertices.shape[0], self.settings, soft=False)
            depth, face_index = visible_surface(face_xyz, face_uv, fragments)
        return RenderOutput(alpha=alpha, depth_m=depth, rgb=rgb, face_index=face_index)
