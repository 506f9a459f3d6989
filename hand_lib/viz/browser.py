"""The dataset browser: pick split, sequence, frame and camera of a HanCo-layout dataset
(real or synthetic); see the image with the ground-truth keypoints and the pseudo labels
coloured by their confidence, and the 8-camera rig in 3D around the hand (with the MANO fit
as a mesh where the dataset has one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hand_lib.data.hanco import PSEUDO_LABEL_DIRS, HanCo
from hand_lib.viz.figures import (
    as_numpy,
    confidence_trace,
    detached,
    draw_camera_rig,
    draw_skeleton_2d,
    image_axes_layout,
    image_to_uint8,
    mesh3d_trace,
    rig3d_traces,
    scene_layout,
    skeleton2d_traces,
    skeleton3d_traces,
)
from hand_lib.viz.frontend import resolve_interactive

SPLITS = ("train", "test")


@dataclass
class BrowserView:
    """One camera view of one frame, as the browser shows it.

    Attributes:
        split, seq, frame, cam: which view.
        image: (H, W, 3) uint8. joints_2d: (21, 2) ground truth, pixels.
        pseudo_2d: (21, 2) pseudo label, pixels; pseudo_conf: (21,) in [0, 1];
            has_pseudo: a label file exists for this view.
        K: (V, 3, 3) pixels and M: (V, 4, 4) world-to-camera of every camera of the frame.
        joints_world: (21, 3) metres. vertices_world: (778, 3) metres of the MANO fit, or
            None.
    """

    split: str
    seq: int
    frame: int
    cam: int
    image: np.ndarray
    joints_2d: np.ndarray
    pseudo_2d: np.ndarray
    pseudo_conf: np.ndarray
    has_pseudo: bool
    K: np.ndarray
    M: np.ndarray
    joints_world: np.ndarray
    vertices_world: np.ndarray | None

    @property
    def pseudo_error_px(self) -> float:
        """Mean distance of the pseudo label from the ground truth, pixels (nan: no label)."""
        if not self.has_pseudo:
            return float("nan")
        return float(np.linalg.norm(self.pseudo_2d - self.joints_2d, axis=-1).mean())


class DatasetBrowser:
    """Frames of a HanCo-layout dataset and the figures of one selected view.

    Args:
        root: dataset root (``meta.json``, ``calib/``, ``xyz/``, image folders).
        image_dir: ``rgb_merged`` (composited backgrounds; falls back to ``rgb`` if absent)
            or ``rgb``.
        mano_path: MANO model for the fits ("" = open hand model).
        interactive: plotly ``FigureWidget`` (True) or ``Figure`` (False).
    """

    def __init__(self, root: str | os.PathLike[str], image_dir: str = "rgb_merged",
                 mano_path: str = "", interactive: bool = False) -> None:  # fmt: skip
        import plotly.graph_objects as go

        self.root = Path(root)
        if not (self.root / image_dir).is_dir():
            image_dir = "rgb" if image_dir == "rgb_merged" else "rgb_merged"
        self.image_dir = image_dir
        self.mano_path = str(mano_path or "")
        self.has_pseudo = any((self.root / d).is_dir() for d in PSEUDO_LABEL_DIRS)
        self._datasets: dict[str, HanCo] = {}
        self._layer = None
        self._cache: tuple[tuple[str, int, int], dict[str, Any]] | None = None
        self.splits = [s for s in SPLITS if len(self.dataset(s)) > 0]
        if not self.splits:
            raise ValueError(f"{self.root}: no frame with all views in either split")
        split = self.splits[0]
        seq = self.sequences(split)[0]
        self.view = self.load(split, seq, self.frames(split, seq)[0], 0)
        make = go.FigureWidget if interactive else go.Figure
        self.image_figure = make(self._image_traces(self.view), self._image_layout(self.view))
        self.rig_figure = make(self._rig_traces(self.view), scene_layout("camera rig (world)"))

    # ------------------------------------------------------------------ data

    def dataset(self, split: str) -> HanCo:
        """The multi-view HanCo of ``split`` (built once)."""
        if split not in self._datasets:
            self._datasets[split] = HanCo(self.root, split=split, mode="multi",
                                          image_dir=self.image_dir,
                                          pseudo_labels=self.has_pseudo)  # fmt: skip
        return self._datasets[split]

    def sequences(self, split: str) -> list[int]:
        """Sequence ids of ``split`` with at least one complete frame."""
        return sorted(set(self.dataset(split).items[:, 0].tolist()))

    def frames(self, split: str, seq: int) -> list[int]:
        """Frame ids of sequence ``seq`` in ``split``."""
        items = self.dataset(split).items
        return sorted(items[items[:, 0] == seq, 1].tolist())

    def _sample(self, split: str, seq: int, frame: int) -> dict[str, Any]:
        key = (split, int(seq), int(frame))
        if self._cache is None or self._cache[0] != key:
            items = self.dataset(split).items
            hit = np.nonzero((items[:, 0] == seq) & (items[:, 1] == frame))[0]
            if len(hit) == 0:
                raise KeyError(f"no frame {frame} of sequence {seq} in the {split} split")
            self._cache = (key, self.dataset(split)[int(hit[0])])
        return self._cache[1]

    def _mano_vertices(self, sample: dict[str, Any]) -> np.ndarray | None:
        if not bool(sample["has_mano"]):
            return None
        if self._layer is None:
            from hand_lib.mano import ManoLayer

            self._layer = ManoLayer(self.mano_path or None)
        with torch.no_grad():
            out = self._layer(sample["mano_pose"][None], sample["mano_shape"][None],
                              sample["mano_trans"][None])  # fmt: skip
        return as_numpy(out.vertices[0])

    def load(self, split: str, seq: int, frame: int, cam: int) -> BrowserView:
        """Read one view (the frame's 8 images are read once and kept while it is shown)."""
        s = self._sample(split, seq, frame)
        cams = s["cams"].tolist()
        if cam not in cams:
            raise KeyError(f"camera {cam} not in this frame (cameras {cams})")
        v = cams.index(cam)
        return BrowserView(
            split=split, seq=int(seq), frame=int(frame), cam=int(cam),
            image=image_to_uint8(s["image"][v]), joints_2d=as_numpy(s["joints_2d"][v]),
            pseudo_2d=as_numpy(s["pseudo_2d"][v]), pseudo_conf=as_numpy(s["pseudo_conf"][v]),
            has_pseudo=bool(s["pseudo_valid"][v]), K=as_numpy(s["K"]), M=as_numpy(s["M"]),
            joints_world=as_numpy(s["joints_world"]), vertices_world=self._mano_vertices(s),
        )  # fmt: skip

    # ------------------------------------------------------------------ figures

    def _image_layout(self, view: BrowserView) -> dict[str, Any]:
        H, W = view.image.shape[:2]
        err = (f", pseudo label error {view.pseudo_error_px:.1f} px" if view.has_pseudo
               else ", no pseudo label")  # fmt: skip
        title = f"{view.split} seq {view.seq} frame {view.frame} cam {view.cam}{err}"
        return image_axes_layout(H, W, title)

    def _image_traces(self, view: BrowserView) -> list[Any]:
        import plotly.graph_objects as go

        conf = view.pseudo_conf if view.has_pseudo else np.zeros(21)
        pseudo = view.pseudo_2d if view.has_pseudo else np.full((21, 2), np.nan)
        return [go.Image(z=view.image, hoverinfo="skip", name="image"),
                *skeleton2d_traces(view.joints_2d, "ground truth"),
                confidence_trace(pseudo, conf)]  # fmt: skip

    def _rig_traces(self, view: BrowserView) -> list[Any]:
        size = view.image.shape[:2]
        verts = view.vertices_world
        mesh = mesh3d_trace(verts if verts is not None else np.full((3, 3), np.nan),
                            np.array([[0, 1, 2]]) if verts is None else self._layer.faces,
                            opacity=0.5)  # fmt: skip
        return [*rig3d_traces(view.K, view.M, size, highlight=view.cam), mesh,
                *skeleton3d_traces(view.joints_world, "ground truth")]

    def select(self, split: str | None = None, seq: int | None = None,
               frame: int | None = None, cam: int | None = None) -> BrowserView:  # fmt: skip
        """Show another view (unchanged arguments keep their value; a sequence or frame that
        the split lacks falls back to its first) and update both figures in place."""
        split = split or self.view.split
        seqs = self.sequences(split)
        seq = self.view.seq if seq is None else int(seq)
        seq = seq if seq in seqs else seqs[0]
        frames = self.frames(split, seq)
        frame = self.view.frame if frame is None else int(frame)
        frame = frame if frame in frames else frames[0]
        cam = self.view.cam if cam is None else int(cam)
        self.view = self.load(split, seq, frame, cam)
        self._update_figures()
        return self.view

    def _update_figures(self) -> None:
        new_image = self._image_traces(self.view)
        with self.image_figure.batch_update():
            for old, new in zip(self.image_figure.data, new_image, strict=True):
                old.update(new.to_plotly_json())
            self.image_figure.layout.update(self._image_layout(self.view))
        new_rig = self._rig_traces(self.view)
        with self.rig_figure.batch_update():
            for old, new in zip(self.rig_figure.data, new_rig, strict=True):
                old.update(new.to_plotly_json())

    # ------------------------------------------------------------------ views

    def widget(self) -> Any:
        """The live browser: selectors above the image and the rig (an ipywidgets ``VBox``)."""
        import ipywidgets as W
        import plotly.graph_objects as go

        if not isinstance(self.image_figure, go.FigureWidget):
            self.image_figure = go.FigureWidget(self.image_figure)
            self.rig_figure = go.FigureWidget(self.rig_figure)
        v = self.view
        split = W.Dropdown(options=self.splits, value=v.split, description="split")
        seq = W.Dropdown(options=self.sequences(v.split), value=v.seq, description="sequence")
        frame = W.SelectionSlider(options=self.frames(v.split, v.seq), value=v.frame,
                                  description="frame", continuous_update=False)  # fmt: skip
        cam = W.ToggleButtons(options=list(range(len(v.K))), value=v.cam, description="camera",
                              style={"button_width": "36px"})  # fmt: skip
        status = W.HTML()
        updating = {"busy": False}

        def refresh_status() -> None:
            w = self.view
            conf = f"{w.pseudo_conf.mean():.2f}" if w.has_pseudo else "n/a"
            status.value = (f"<b>{self.root.name}</b> ({self.image_dir}): mean pseudo-label "
                            f"confidence {conf}, error {w.pseudo_error_px:.1f} px")

        def on_change(_: Any) -> None:
            if updating["busy"]:
                return
            updating["busy"] = True
            try:
                seqs = self.sequences(split.value)
                if seq.options != tuple(seqs):
                    seq.options = seqs
                    seq.value = seq.value if seq.value in seqs else seqs[0]
                frames = self.frames(split.value, seq.value)
                if frame.options != tuple(frames):
                    frame.options = frames
                    frame.value = frame.value if frame.value in frames else frames[0]
                self.select(split.value, seq.value, frame.value, cam.value)
                refresh_status()
            finally:
                updating["busy"] = False

        for w in (split, seq, frame, cam):
            w.observe(on_change, names="value")
        refresh_status()
        self.controls = {"split": split, "seq": seq, "frame": frame, "cam": cam}
        return W.VBox([W.HBox([split, seq, frame]), cam, status,
                       W.HBox([self.image_figure, self.rig_figure])])  # fmt: skip

    def static_figure(self, cams: tuple[int, ...] = (0, 3, 6)) -> Any:
        """A matplotlib figure of the first frame: a few camera views with ground truth
        (lines) and pseudo labels (crosses coloured by confidence), and the rig in 3D."""
        import matplotlib.pyplot as plt

        v0 = self.view
        fig = plt.figure(figsize=(4.0 * (len(cams) + 1), 4.2))
        scatter = None
        for i, cam in enumerate(cams):
            v = self.load(v0.split, v0.seq, v0.frame, cam)
            ax = fig.add_subplot(1, len(cams) + 1, i + 1)
            ax.imshow(v.image)
            draw_skeleton_2d(ax, v.joints_2d, "-", "ground truth")
            if v.has_pseudo:
                scatter = ax.scatter(v.pseudo_2d[:, 0], v.pseudo_2d[:, 1], c=v.pseudo_conf,
                                     cmap="viridis", vmin=0, vmax=1, marker="x", s=30,
                                     label="pseudo label")  # fmt: skip
            ax.set_title(f"cam {cam}: pseudo error {v.pseudo_error_px:.1f} px", fontsize=9)
            ax.axis("off")
        if scatter is not None:
            fig.colorbar(scatter, ax=fig.axes, shrink=0.6, label="pseudo-label confidence")
        ax = fig.add_subplot(1, len(cams) + 1, len(cams) + 1, projection="3d")
        draw_camera_rig(ax, v0.K, v0.M, v0.image.shape[:2], v0.joints_world, highlight=cams[0])
        ax.set_title("rig (world, metres)", fontsize=9)
        fig.suptitle(f"{self.root.name} {v0.split}: sequence {v0.seq}, frame {v0.frame} "
                     f"({self.image_dir}; static: run in JupyterLab to browse)", fontsize=10)
        return fig


def dataset_browser(root: str | os.PathLike[str], image_dir: str = "rgb_merged",
                    mano_path: str = "", interactive: bool | None = None) -> Any:  # fmt: skip
    """The dataset browser for a notebook cell.

    Args:
        root: a HanCo-layout dataset (pseudo labels are shown where ``rgb_2D_keypoints``
            exists).
        image_dir: ``rgb_merged`` or ``rgb``.
        mano_path: MANO model for the fits' meshes ("" = open hand model).
        interactive: live widgets (True), a static matplotlib figure (False), or decided
            by :func:`hand_lib.viz.frontend.resolve_interactive` (None).

    Returns:
        An ipywidgets container (live) or a matplotlib ``Figure`` (static).
    """
    live = resolve_interactive(interactive)
    browser = DatasetBrowser(root, image_dir, mano_path, interactive=live)
    return browser.widget() if live else detached(browser.static_figure())

