"""An interactive 3D viewer of predicted and ground-truth hands (plotly), saved as HTML.

Static export of plotly figures needs a browser engine (kaleido); where none is installed,
:func:`export_static` falls back to matplotlib and says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hand_lib.mano.joints import KEYPOINT_PARENTS


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def hand_comparison_figure(pred_vertices: Any, gt_vertices: Any, faces: Any,
                           pred_joints: Any | None = None, gt_joints: Any | None = None,
                           title: str = "prediction vs ground truth") -> Any:  # fmt: skip
    """A plotly figure with the predicted (blue) and true (grey) meshes, (V, 3) metres, and
    optionally their skeletons (21, 3). Shown in millimetres, centred on the true mesh."""
    import plotly.graph_objects as go

    f = _np(faces).astype(int)
    centre = _np(gt_vertices).mean(0)
    traces = []
    for verts, name, colour, opacity in ((gt_vertices, "ground truth", "#999999", 0.35),
                                         (pred_vertices, "prediction", "#3b7ddd", 0.6)):
        v = (_np(verts) - centre) * 1000.0
        traces.append(go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1],
                                k=f[:, 2], color=colour, opacity=opacity, name=name,
                                showlegend=True, flatshading=True))  # fmt: skip
    for joints, name, colour in ((gt_joints, "true joints", "black"),
                                 (pred_joints, "predicted joints", "#d62728")):
        if joints is None:
            continue
        j = (_np(joints) - centre) * 1000.0
        xs, ys, zs = [], [], []
        for child, parent in enumerate(KEYPOINT_PARENTS):
            if parent >= 0:
                for axis, pts in ((xs, 0), (ys, 1), (zs, 2)):
                    axis += [j[parent, pts], j[child, pts], None]
        traces.append(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=name,
                                   line={"color": colour, "width": 4}))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(title=title, scene={"aspectmode": "data", "xaxis_title": "x (mm)",
                                          "yaxis_title": "y (mm)", "zaxis_title": "z (mm)",
                                          "camera": {"up": {"x": 0, "y": -1, "z": 0}}},
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})  # fmt: skip
    return fig


def save_viewer_html(fig: Any, path: str | os.PathLike[str], offline: bool = False) -> Path:
    """Write the figure as a standalone HTML page. ``offline=False`` loads plotly.js from
    its CDN (a small file); ``True`` embeds it (about 4 MB, works without a network)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True if offline else "cdn", full_html=True)
    return path


def export_static(fig: Any, path: str | os.PathLike[str], fallback: Any | None = None,
                  formats: Sequence[str] = ("png",)) -> tuple[list[Path], str]:  # fmt: skip
    """Export a plotly figure as images with kaleido; without a browser engine, save the
    matplotlib ``fallback`` figure instead. Returns the files and a message saying which."""
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = []
        for fmt in formats:
            out = stem.with_suffix(f".{fmt}")
            fig.write_image(out)
            written.append(out)
        return written, f"static export by plotly/kaleido: {', '.join(map(str, written))}"
    except Exception as exc:  # kaleido missing or no browser for it
        if fallback is None:
            raise RuntimeError(f"plotly static export failed ({exc}); no fallback given") from exc
        written = []
        for fmt in formats:
            out = stem.with_suffix(f".{fmt}")
            fallback.savefig(out, dpi=150, bbox_inches="tight")
            written.append(out)
        reason = str(exc).splitlines()[0][:120]
        return written, (f"plotly static export unavailable ({type(exc).__name__}: {reason}); "
                         f"saved the matplotlib version instead: {', '.join(map(str, written))}")


def mesh_comparison_matplotlib(pred_vertices: Any, gt_vertices: Any, faces: Any,
                               title: str = "prediction vs ground truth") -> Any:  # fmt: skip
    """The static stand-in for :func:`hand_comparison_figure`: both meshes (V, 3) metres in
    one matplotlib 3D axis (prediction blue, ground truth grey), millimetres, centred."""
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    f = _np(faces).astype(int)
    centre = _np(gt_vertices).mean(0)
    fig = plt.figure(figsize=(5.5, 5.0))
    ax = fig.add_subplot(projection="3d")
    for verts, colour, alpha in ((gt_vertices, (0.6, 0.6, 0.6), 0.25),
                                 (pred_vertices, (0.23, 0.49, 0.87), 0.45)):
        v = (_np(verts) - centre) * 1000.0
        ax.add_collection3d(Poly3DCollection(v[f], facecolors=(*colour, alpha),
                                             edgecolors=(*colour, 0.1), linewidths=0.2))
    extent = np.abs((_np(gt_vertices) - centre) * 1000.0).max()
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-extent, extent)
    ax.view_init(elev=-70, azim=-90)
    ax.set_title(title, fontsize=9)
    return fig
