"""Differentiable mesh rendering in pure PyTorch (CPU and CUDA).

- ``settings``: ``RenderSettings``, the frozen, validated settings.
- ``rasterize``: sparse (face, pixel) rasterisation, z-buffer and the SoftRas silhouette
  (the method, and why soft rather than antialiased, is in its docstring).
- ``shade``: S2HAND's 11 lighting values, Lambertian face light, interpolation, compositing.
- ``renderer``: ``MeshRenderer`` (input checks, ``silhouette``, ``render``, ``render_fast``)
  and its named output ``RenderOutput``.
- ``fit``: silhouette / photometric fitting loops and IoU helpers.
- ``nr_backend``: optional neural-renderer-pytorch backend (CUDA only, never required).
- ``primitives``: quads and spheres for tests and examples.
"""

from hand_lib.render.nr_backend import BackendUnavailableError
from hand_lib.render.renderer import MeshRenderer, RenderOutput
from hand_lib.render.settings import RenderSettings
from hand_lib.render.shade import Lighting

__all__ = [
    "BackendUnavailableError",
    "Lighting",
    "MeshRenderer",
    "RenderOutput",
    "RenderSettings",
]
