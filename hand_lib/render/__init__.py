"""Differentiable mesh rendering in pure PyTorch (CPU and CUDA).

See ``hand_lib.render.rasterize`` for the method and ``hand_lib.render.shade`` for the
lighting model.
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
