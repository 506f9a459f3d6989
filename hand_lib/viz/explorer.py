"""The MANO explorer: sliders for pose PCA, per-digit flexion, global rotation and shape,
with a live 3D mesh and skeleton (the open hand model or a real MANO file).

The pose is built in :meth:`ManoExplorer.rotations` and is exactly what the layer receives:
finger rotations ``R_j = R_flex,j @ exp(pca @ hands_components + hands_mean)_j`` for joints
1..15, where ``R_flex,j`` turns joint j by the digit's flexion angle about that joint's
flexion axis (:func:`flexion_axes`), and the root rotation ``R_0`` is
``Rz(gz) @ Ry(gy) @ Rx(gx)`` (degrees). With zero flexion the result equals
``layer(pca, betas, pose_type="pca", global_orient=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from hand_lib.geometry.rotations import axis_angle_to_matrix
from hand_lib.mano import ManoLayer, ManoOutput
from hand_lib.viz.figures import (
    FINGER_NAMES,
    as_numpy,
    detached,
    draw_mesh_3d,
    finger_chains,
    mesh3d_trace,
    scene_layout,
    skeleton3d_traces,
)
from hand_lib.viz.frontend import resolve_interactive

#: MANO joint ids (proximal, middle, distal) of each digit, in FINGER_NAMES order
DIGIT_MANO_JOINTS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
FLEXION_RANGE_DEG = (-30.0, 90.0)
ROTATION_RANGE_DEG = (-180.0, 180.0)


def flexion_axes(layer: ManoLayer) -> np.ndarray:
    """(16, 3) unit flexion axis of every MANO joint in the rest frame (row 0, the root, is
    zero). A positive rotation about a finger's axis curls it towards the palm; the thumb
    curls towards the fingers' pulps.

    Built from the model's own rest joints and fingertips, so it serves the open hand model,
    the real MANO files and either side: the palm normal is ``(index1 - wrist) x (pinky1 -
    wrist)`` (palmar for a right hand, dorsal for a left one), a finger's axis is
    ``bone x palmar``, the thumb's ``bone x pulp`` with the pulp facing palmar and ulnar.
    """
    joints = as_numpy(layer.template_joints)
    tips = as_numpy(layer.v_template)[as_numpy(layer.tip_vertex_ids)]
    tip_of = dict(zip(("thumb", "index", "middle", "ring", "pinky"), tips, strict=True))

    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(float(np.linalg.norm(v)), 1e-12)

    wrist, index1, pinky1 = joints[0], joints[1], joints[7]
    palmar = unit(np.cross(index1 - wrist, pinky1 - wrist))
    if layer.side == "left":
        palmar = -palmar
    radial = unit(index1 - pinky1)
    axes = np.zeros((16, 3))
    for name, ids in zip(FINGER_NAMES, DIGIT_MANO_JOINTS, strict=True):
        ends = [joints[ids[1]], joints[ids[2]], tip_of[name]]
        for k, j in enumerate(ids):
            bone = unit(ends[k] - joints[j])
            towards = palmar if name != "thumb" else unit(0.85 * palmar - 0.55 * radial)
            towards = unit(towards - np.dot(towards, bone) * bone)
            axes[j] = unit(np.cross(bone, towards))
    return axes


def euler_matrix(degrees: Any) -> torch.Tensor:
    """(3, 3) float64 rotation ``Rz(c) @ Ry(b) @ Rx(a)`` of ``(a, b, c)`` degrees."""
    a, b, c = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return torch.as_tensor(rz @ ry @ rx)


@dataclass(frozen=True)
class ExplorerState:
    """What the sliders hold.

    Attributes:
        pca: (n,) pose PCA coefficients (the open model's are ~N(0, 1)).
        flexion_deg: (5,) extra flexion of each digit (thumb, index, middle, ring, pinky),
            degrees, applied at all three of its joints.
        rotation_deg: (3,) global rotation about x, y, z, degrees (``Rz @ Ry @ Rx``).
        betas: (S,) shape coefficients.
    """

    pca: tuple[float, ...]
    flexion_deg: tuple[float, ...] = (0.0,) * 5
    rotation_deg: tuple[float, ...] = (0.0, 0.0, 0.0)
    betas: tuple[float, ...] = field(default=(0.0,) * 10)

    @classmethod
    def zeros(cls, num_pca: int, num_betas: int) -> ExplorerState:
        return cls(pca=(0.0,) * num_pca, betas=(0.0,) * num_betas)


class ManoExplorer:
    """State, model and figure of the explorer; the widget is a thin layer over
    :meth:`set` (tests drive it without a browser).

    Args:
        mano_path: a MANO file or folder; "" for the open hand model.
        num_pca: PCA sliders. num_betas: shape sliders (at most the model's).
        interactive: figure type: ``plotly.graph_objects.FigureWidget`` when True (needs a
            widget frontend), ``plotly.graph_objects.Figure`` otherwise.
    """

    def __init__(self, mano_path: str = "", num_pca: int = 6, num_betas: int = 10,
                 interactive: bool = False) -> None:  # fmt: skip
        import plotly.graph_objects as go

        self.mano_path = str(mano_path or "")
        self.layer = ManoLayer(self.mano_path or None, dtype=torch.float64)
        if not 1 <= num_pca <= self.layer.num_pca_max:
            raise ValueError(f"num_pca must be in 1..{self.layer.num_pca_max}, got {num_pca}")
        self.num_betas = min(num_betas, self.layer.num_betas)
        self.axes = torch.as_tensor(flexion_axes(self.layer))
        self.state = ExplorerState.zeros(num_pca, self.num_betas)
        self.output = self.pose_hand(self.state)
        make = go.FigureWidget if interactive else go.Figure
        self.figure = make(self._traces(self.output), layout=scene_layout(self.title()))

    def title(self) -> str:
        model = self.mano_path or "open hand model"
        return f"MANO explorer ({model}, {self.layer.side})"

    def rotations(self, state: ExplorerState) -> torch.Tensor:
        """(1, 16, 3, 3) local joint rotations of ``state`` (mean pose included), float64."""
        coeffs = torch.tensor([state.pca], dtype=torch.float64)
        finger = self.layer.pca_to_axis_angle(coeffs)[0] + self.layer.hands_mean
        rot = axis_angle_to_matrix(torch.cat([finger.new_zeros(3), finger]).view(16, 3))
        angles = torch.zeros(16, dtype=torch.float64)
        for deg, ids in zip(state.flexion_deg, DIGIT_MANO_JOINTS, strict=True):
            angles[list(ids)] = float(np.deg2rad(deg))
        flex = axis_angle_to_matrix(self.axes * angles[:, None])
        rot = flex @ rot
        rot[0] = euler_matrix(state.rotation_deg)
        return rot[None]

    def pose_hand(self, state: ExplorerState) -> ManoOutput:
        """The layer's output for ``state`` (float64, metres)."""
        betas = torch.tensor([state.betas], dtype=torch.float64)
        with torch.no_grad():
            return self.layer(self.rotations(state), betas, pose_type="rotmat")

    def _traces(self, out: ManoOutput) -> list[Any]:
        return [mesh3d_trace(out.vertices[0], self.layer.faces, opacity=0.75),
                *skeleton3d_traces(out.keypoints[0])]  # fmt: skip

    def set(self, **changes: Any) -> ManoOutput:
        """Change slider values (fields of :class:`ExplorerState`; tuples, or
        ``{index: value}`` dicts for single entries) and update the figure in place."""
        values = {}
        for name, value in changes.items():
            old = getattr(self.state, name)
            if isinstance(value, dict):
                new = list(old)
                for i, v in value.items():
                    new[i] = float(v)
                value = new
            if len(value) != len(old):
                raise ValueError(f"{name} needs {len(old)} values, got {len(value)}")
            values[name] = tuple(float(v) for v in value)
        self.state = replace(self.state, **values)
        self.output = self.pose_hand(self.state)
        self._update_figure()
        return self.output

    def _update_figure(self) -> None:
        v = as_numpy(self.output.vertices[0])
        k = as_numpy(self.output.keypoints[0])
        with self.figure.batch_update():
            self.figure.data[0].update(x=v[:, 0], y=v[:, 1], z=v[:, 2])
            for trace, chain in zip(self.figure.data[1:6], finger_chains(), strict=True):
                trace.update(x=k[chain, 0], y=k[chain, 1], z=k[chain, 2])

    # ------------------------------------------------------------------ views

    def widget(self) -> Any:
        """The live explorer: tabs of sliders beside the 3D view (an ipywidgets ``HBox``)."""
        import ipywidgets as W
        import plotly.graph_objects as go

        if not isinstance(self.figure, go.FigureWidget):
            self.figure = go.FigureWidget(self.figure)

        def slider(desc: str, lo: float, hi: float, step: float, field_name: str, i: int):
            s = W.FloatSlider(value=getattr(self.state, field_name)[i], min=lo, max=hi,
                              step=step, description=desc, continuous_update=True,
                              layout=W.Layout(width="330px"))  # fmt: skip
            s.observe(lambda ch: self.set(**{field_name: {i: ch["new"]}}), names="value")
            return s

        pca = [slider(f"PC {i + 1}", -3.0, 3.0, 0.05, "pca", i)
               for i in range(len(self.state.pca))]  # fmt: skip
        flex = [slider(n, *FLEXION_RANGE_DEG, 1.0, "flexion_deg", i)
                for i, n in enumerate(FINGER_NAMES)]  # fmt: skip
        rot = [slider(f"about {a} (deg)", *ROTATION_RANGE_DEG, 1.0, "rotation_deg", i)
               for i, a in enumerate("xyz")]  # fmt: skip
        betas = [slider(f"beta {i}", -3.0, 3.0, 0.05, "betas", i)
                 for i in range(self.num_betas)]  # fmt: skip
        groups = {"pose PCA": pca, "flexion (deg)": flex, "rotation": rot, "shape": betas}
        tabs = W.Tab(children=[W.VBox(g) for g in groups.values()])
        for i, name in enumerate(groups):
            tabs.set_title(i, name)
        reset = W.Button(description="reset", icon="undo")

        def on_reset(_: Any) -> None:
            for s in pca + flex + rot + betas:
                s.value = 0.0

        reset.on_click(on_reset)
        self.sliders = {"pca": pca, "flexion_deg": flex, "rotation_deg": rot, "betas": betas}
        return W.HBox([W.VBox([tabs, reset]), self.figure],
                      layout=W.Layout(align_items="flex-start"))  # fmt: skip

    def static_figure(self) -> Any:
        """A matplotlib gallery of what the sliders do: the current state, PC 1 at +2,
        index and middle flexed 70 degrees, beta 0 at +2 with a rotation."""
        import matplotlib.pyplot as plt

        n = len(self.state.pca)
        flexed = [0.0, 70.0, 70.0, 0.0, 0.0]
        variants = {
            "current": self.state,
            "PC 1 = +2": replace(self.state, pca=(2.0,) + (0.0,) * (n - 1)),
            "index, middle flexed 70 deg": replace(self.state, flexion_deg=tuple(flexed)),
            "beta 0 = +2, rotated 60 deg about y": replace(
                self.state, betas=(2.0,) + (0.0,) * (self.num_betas - 1),
                rotation_deg=(0.0, 60.0, 0.0)),
        }  # fmt: skip
        fig = plt.figure(figsize=(12, 3.4))
        for i, (title, state) in enumerate(variants.items()):
            out = self.pose_hand(state)
            ax = fig.add_subplot(1, len(variants), i + 1, projection="3d")
            draw_mesh_3d(ax, out.vertices[0], self.layer.faces, out.keypoints[0], title)
            ax.view_init(elev=25, azim=80)  # from the back of the hand, a little above
        fig.suptitle(self.title() + " (static: run in JupyterLab for the sliders)", fontsize=10)
        fig.tight_layout()
        return fig


def mano_explorer(mano_path: str = "", num_pca: int = 6, interactive: bool | None = None
                  ) -> Any:  # fmt: skip
    """The MANO explorer for a notebook cell.

    Args:
        mano_path: a MANO file or folder; "" for the open hand model.
        num_pca: number of pose PCA sliders.
        interactive: live widgets (True), a static matplotlib figure (False), or decided
            by :func:`hand_lib.viz.frontend.resolve_interactive` (None).

    Returns:
        An ipywidgets container (live) or a matplotlib ``Figure`` (static).
    """
    live = resolve_interactive(interactive)
    explorer = ManoExplorer(mano_path, num_pca=num_pca, interactive=live)
    return explorer.widget() if live else detached(explorer.static_figure())
