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
"""

from hand_lib.viz.dataset_browser import DatasetBrowser, dataset_browser
from hand_lib.viz.frontend import resolve_interactive
from hand_lib.viz.mano_explorer import ManoExplorer, mano_explorer
from hand_lib.viz.prediction_inspector import PredictionInspector, prediction_inspector

__all__ = [
    "DatasetBrowser",
    "ManoExplorer",
    "PredictionInspector",
    "dataset_browser",
    "mano_explorer",
    "prediction_inspector",
    "resolve_interactive",
]
