"""Building blocks shared by the widgets: plotly traces for the live views and matplotlib
drawings for the static fallbacks, plus the geometry they draw (skeleton chains, camera
frusta, a shaded mesh overlay).

Conventions: keypoints in FreiHAND order (21), metres in 3D, pixels in 2D with pixel centres
at integer coordinates (so a plotly ``Image`` trace and the keypoints share one axis frame).
plotly and matplotlib are imported on use, so importing :mod:`hand_lib.viz` stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: one colour per digit (thumb, index, middle, ring, pinky)
FINGER_COLOURS = ("#e41a1c", "#ff7f00", "#4daf4a", "#377eb8", "#984ea3")
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")
MESH_COLOUR = "#e8b89a"


def as_numpy(x: Any) -> np.ndarray:
    """A CPU numpy copy of a tensor or array-like (float64 for floating input)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


def image_to_uint8(image: Any) -> np.ndarray:
    """(3, H, W) or (H, W, 3) floats in [0, 1] -> (H, W, 3) uint8."""
    img = as_numpy(image)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)
    if img.dtype == np.uint8:
        return img
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def finger_chains() -> list[list[int]]:
    """Keypoint indices of each digit's chain wrist -> tip (FreiHAND order)."""
    return [[0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f] for f in range(5)]


def camera_centres(M: Any) -> np.ndarray:
    """(V, 3) camera centres in world space, metres, from world-to-camera ``M`` (V, 4, 4)."""
    M = as_numpy(M)
    R, t = M[:, :3, :3], M[:, :3, 3]
    return -np.einsum("vji,vj->vi", R, t)


def camera_frusta(K: Any, M: Any, image_size: tuple[int, int], depth_m: float = 0.1
                  ) -> np.ndarray:  # fmt: skip
    """(V, 5, 3) world points of each camera's frustum: the centre, then the image corners
    (top-left, top-right, bottom-right, bottom-left) at ``depth_m`` in front of it.

    Args:
        K: (V, 3, 3) intrinsics, pixels. M: (V, 4, 4) world-to-camera, metres.
        image_size: (H, W) pixels.
    """
    K, M = as_numpy(K), as_numpy(M)
    H, W = image_size
    corners = np.array([[-0.5, -0.5, 1.0], [W - 0.5, -0.5, 1.0], [W - 0.5, H - 0.5, 1.0],
                        [-0.5, H - 0.5, 1.0]])  # fmt: skip
    rays = np.einsum("vij,cj->vci", np.linalg.inv(K), corners)  # (V, 4, 3), z = 1
    cam_pts = np.concatenate([np.zeros((len(K), 1, 3)), depth_m * rays], axis=1)
    R, t = M[:, :3, :3], M[:, :3, 3]
    return np.einsum("vji,vcj->vci", R, cam_pts - t[:, None])


def mesh_overlay(image: Any, vertices_cam: Any, faces: Any, K: Any, opacity: float = 0.6
                 ) -> np.ndarray:  # fmt: skip
    """The image with the mesh drawn over it, shaded (ambient + a light at the camera).

    Args:
        image: (3, H, W) or (H, W, 3) in [0, 1]. vertices_cam: (V, 3) camera space, metres.
        faces: (F, 3) vertex indices. K: (3, 3) intrinsics of ``image``, pixels.
        opacity: weight of the mesh where it covers a pixel.

    Returns:
        (H, W, 3) uint8.
    """
    from hand_lib.render import MeshRenderer, RenderSettings

    img = image_to_uint8(image).astype(np.float32) / 255.0
    H, W = img.shape[:2]
    verts = torch.as_tensor(as_numpy(vertices_cam), dtype=torch.float32)[None]
    K_t = torch.as_tensor(as_numpy(K), dtype=torch.float32)[None]
    faces_t = torch.as_tensor(as_numpy(faces), dtype=torch.long)
    colours = torch.tensor([0.91, 0.72, 0.60]).expand(1, faces_t.shape[0], 3)
    # ambient 0.45 white + directional 0.65 white towards the camera (-z in camera space)
    light = torch.tensor([[0.45, 0.65, 1, 1, 1, 1, 1, 1, 0.0, 0.0, -1.0]])
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    with torch.no_grad():
        out = renderer.render(verts, faces_t, K_t, face_colors=colours, lighting=light,
                              mode="hard")  # fmt: skip
    alpha = (out.alpha[0].numpy() * opacity)[..., None]
    blended = img * (1.0 - alpha) + out.rgb[0].numpy().clip(0, 1) * alpha
    return (blended * 255.0 + 0.5).astype(np.uint8)


def detached(fig: Any) -> Any:
    """Close a matplotlib figure in pyplot and return it: a notebook cell that returns it
    shows it once (pyplot's inline backend would show an open figure a second time)."""
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


# --------------------------------------------------------------------------- plotly


def mesh3d_trace(vertices: Any, faces: Any, name: str = "mesh", colour: str = MESH_COLOUR,
                 opacity: float = 1.0) -> Any:  # fmt: skip
    """A plotly ``Mesh3d`` of (V, 3) vertices and (F, 3) faces."""
    import plotly.graph_objects as go

    v, f = as_numpy(vertices), as_numpy(faces)
    return go.Mesh3d(x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
                     color=colour, opacity=opacity, name=name, flatshading=False,
                     lighting={"ambient": 0.45, "diffuse": 0.8, "specular": 0.15},
                     hoverinfo="skip", showlegend=False)  # fmt: skip


def skeleton3d_traces(keypoints: Any, name: str = "skeleton", dash: str = "solid",
                      width: float = 5.0, opacity: float = 1.0) -> list[Any]:  # fmt: skip
    """Five plotly ``Scatter3d`` line traces (one per digit) of (21, 3) keypoints."""
    import plotly.graph_objects as go

    from hand_lib.mano.joints import KEYPOINT_NAMES

    k = as_numpy(keypoints)
    traces = []
    for f, chain in enumerate(finger_chains()):
        traces.append(go.Scatter3d(
            x=k[chain, 0], y=k[chain, 1], z=k[chain, 2], mode="lines+markers",
            line={"color": FINGER_COLOURS[f], "width": width, "dash": dash},
            marker={"size": 3, "color": FINGER_COLOURS[f]}, opacity=opacity,
            name=name, legendgroup=name, showlegend=f == 0,
            text=[KEYPOINT_NAMES[i] for i in chain], hoverinfo="text"))  # fmt: skip
    return traces


def skeleton2d_traces(points: Any, name: str, dash: str = "solid", width: float = 2.0,
                      marker: str = "circle") -> list[Any]:  # fmt: skip
    """Five plotly ``Scatter`` line traces (one per digit) of (21, 2) pixel keypoints."""
    import plotly.graph_objects as go

    from hand_lib.mano.joints import KEYPOINT_NAMES

    p = as_numpy(points)
    return [go.Scatter(x=p[chain, 0], y=p[chain, 1], mode="lines+markers",
                       line={"color": FINGER_COLOURS[f], "width": width, "dash": dash},
                       marker={"size": 5, "color": FINGER_COLOURS[f], "symbol": marker},
                       name=name, legendgroup=name, showlegend=f == 0,
                       text=[f"{name}: {KEYPOINT_NAMES[i]}" for i in chain], hoverinfo="text")
            for f, chain in enumerate(finger_chains())]  # fmt: skip


def confidence_trace(points: Any, confidence: Any, name: str = "pseudo label") -> Any:
    """Markers at (21, 2) pixel keypoints coloured by their (21,) confidence in [0, 1]."""
    import plotly.graph_objects as go

    from hand_lib.mano.joints import KEYPOINT_NAMES

    p, c = as_numpy(points), as_numpy(confidence)
    return go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=name,
                      marker={"size": 9, "color": c, "cmin": 0.0, "cmax": 1.0,
                              "colorscale": "Viridis", "symbol": "x",
                              "colorbar": {"title": {"text": "conf."}, "len": 0.6}},
                      text=[f"{n}: confidence {v:.2f}" for n, v in zip(KEYPOINT_NAMES, c,
                                                                        strict=True)],
                      hoverinfo="text")  # fmt: skip


def image_axes_layout(height: int, width: int, title: str = "") -> dict[str, Any]:
    """plotly layout for an image panel: square pixels, y down, no margins to speak of."""
    return {"title": {"text": title}, "height": 420, "width": 460,
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
            "xaxis": {"range": [-0.5, width - 0.5], "showgrid": False, "visible": False},
            "yaxis": {"range": [height - 0.5, -0.5], "showgrid": False, "visible": False,
                      "scaleanchor": "x"},
            "legend": {"orientation": "h", "y": -0.02}}  # fmt: skip


def scene_layout(title: str = "") -> dict[str, Any]:
    """plotly layout for a 3D panel with equal axis scales."""
    return {"title": {"text": title}, "height": 460, "width": 520,
            "margin": {"l": 0, "r": 0, "t": 40, "b": 0},
            "scene": {"aspectmode": "data", "xaxis_title": "x (m)", "yaxis_title": "y (m)",
                      "zaxis_title": "z (m)"},
            "uirevision": "keep"}  # fmt: skip


# --------------------------------------------------------------------------- matplotlib


def draw_mesh_3d(ax: Any, vertices: Any, faces: Any, keypoints: Any | None = None,
                 title: str = "") -> None:  # fmt: skip
    """Draw a shaded mesh (and its skeleton) on a matplotlib 3D axis, equal scales."""
    v, f = as_numpy(vertices), as_numpy(faces)
    ax.plot_trisurf(v[:, 0], v[:, 1], v[:, 2], triangles=f, color=MESH_COLOUR, linewidth=0,
                    shade=True, alpha=0.55)  # fmt: skip
    if keypoints is not None:
        k = as_numpy(keypoints)
        for c, chain in enumerate(finger_chains()):
            ax.plot(k[chain, 0], k[chain, 1], k[chain, 2], "-o", color=FINGER_COLOURS[c],
                    markersize=2, linewidth=1.5)  # fmt: skip
    centre, half = v.mean(0), 0.55 * (v.max(0) - v.min(0)).max()
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=6)


def draw_skeleton_2d(ax: Any, points: Any, style: str = "-", label: str | None = None,
                     linewidth: float = 1.5) -> None:  # fmt: skip
    """Draw (21, 2) pixel keypoints as five coloured chains on a matplotlib axis."""
    p = as_numpy(points)
    for c, chain in enumerate(finger_chains()):
        ax.plot(p[chain, 0], p[chain, 1], style, color=FINGER_COLOURS[c], markersize=3,
                linewidth=linewidth, label=label if c == 0 else None)  # fmt: skip


def draw_camera_rig(ax: Any, K: Any, M: Any, image_size: tuple[int, int],
                    joints_world: Any | None = None, highlight: int | None = None,
                    depth_m: float = 0.1) -> None:  # fmt: skip
    """Draw camera frusta (and the hand's skeleton) on a matplotlib 3D axis."""
    frusta = camera_frusta(K, M, image_size, depth_m)
    for v, fr in enumerate(frusta):
        colour = "#d62728" if v == highlight else "#555555"
        for a, b in ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)):
            ax.plot(*fr[[a, b]].T, color=colour, linewidth=1.2 if v == highlight else 0.7)
        ax.text(*fr[0], str(v), fontsize=7, color=colour)
    pts = frusta.reshape(-1, 3)
    if joints_world is not None:
        k = as_numpy(joints_world)
        for c, chain in enumerate(finger_chains()):
            ax.plot(*k[chain].T, "-", color=FINGER_COLOURS[c], linewidth=1.5)
        pts = np.concatenate([pts, k])
    centre, half = pts.mean(0), 0.55 * (pts.max(0) - pts.min(0)).max()
    for axis, c in zip("xyz", centre, strict=True):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    ax.tick_params(labelsize=6)


def rig3d_traces(K: Any, M: Any, image_size: tuple[int, int], highlight: int | None = None,
                 depth_m: float = 0.1) -> list[Any]:  # fmt: skip
    """Two plotly traces: every camera frustum (grey) and the highlighted one (red), each a
    single ``Scatter3d`` with NaN gaps between line segments, plus camera-id labels."""
    import plotly.graph_objects as go

    frusta = camera_frusta(K, M, image_size, depth_m)
    edges = ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1))

    def lines(ids: list[int]) -> np.ndarray:
        segs = [np.vstack([frusta[v][[a, b]], [np.nan] * 3]) for v in ids for a, b in edges]
        return np.vstack(segs) if segs else np.zeros((0, 3))

    others = [v for v in range(len(frusta)) if v != highlight]
    grey, red = lines(others), lines([] if highlight is None else [highlight])
    centres = frusta[:, 0]
    return [
        go.Scatter3d(x=grey[:, 0], y=grey[:, 1], z=grey[:, 2], mode="lines", name="cameras",
                     line={"color": "#777777", "width": 2}, hoverinfo="skip"),
        go.Scatter3d(x=red[:, 0], y=red[:, 1], z=red[:, 2], mode="lines", name="selected",
                     line={"color": "#d62728", "width": 5}, hoverinfo="skip"),
        go.Scatter3d(x=centres[:, 0], y=centres[:, 1], z=centres[:, 2], mode="text",
                     text=[f"cam{v}" for v in range(len(frusta))], name="camera ids",
                     showlegend=False, hoverinfo="skip"),
    ]  # fmt: skip
