"""Visual tools: interactive widgets for JupyterLab (ipywidgets + plotly) with static
fallbacks for headless runs, and the figures the notebooks save.

Widgets (each returns live widgets in JupyterLab and a static matplotlib figure under
papermill; see :mod:`hand_lib.viz.frontend` for how that is decided):

- :func:`mano_explorer`: pose PCA, per-digit flexion, global rotation and shape sliders with
  a live 3D mesh and skeleton.
- :func:`dataset_browser`: split / sequence / frame / camera of a HanCo-layout dataset; the
  image with ground-truth keypoints and pseudo labels (coloured by confidence), the 8-camera
  rig in 3D.
- :func:`prediction_inspector`: a checkpoint and an image or a multi-view frame; the mesh
  overlay, 2D keypoints and per-joint errors.

Names are imported on first use (``from hand_lib.viz.plots import ...`` does not load the
widgets, which pull in the models and the trainer): add an export as ``name: module`` below.
"""

import importlib
from typing import Any

_EXPORTS = {
    "DatasetBrowser": "hand_lib.viz.browser",
    "dataset_browser": "hand_lib.viz.browser",
    "ManoExplorer": "hand_lib.viz.explorer",
    "mano_explorer": "hand_lib.viz.explorer",
    "PredictionInspector": "hand_lib.viz.inspector",
    "prediction_inspector": "hand_lib.viz.inspector",
    "resolve_interactive": "hand_lib.viz.frontend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hand_lib.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
