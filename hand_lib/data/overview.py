"""Statistics and figures of a HanCo-layout dataset (real or synthetic), for notebook 00.

:func:`hanco_statistics` reads a dataset through :class:`hand_lib.data.HanCo` and gathers
what the data notebook shows and asserts: pose statistics (joint rotation angles, global
orientation), camera distances, hand sizes in pixels, the keypoint visibility written by the
synthetic generator and two consistency checks (projection of ``xyz`` against the
generator's keypoints; MANO fit against ``xyz``). :func:`plot_views` and
:func:`plot_pose_statistics` draw them (matplotlib is imported on use).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hand_lib.data.hanco import HanCo
from hand_lib.data.joints import FREIHAND_PARENTS
from hand_lib.geometry.rotations import matrix_to_axis_angle


def multiview_root(data: str, profile: str, data_root: str = "", mano_path: str = "",
                   workers: int | None = None, progress: bool = True) -> Path:
    """The HanCo-layout dataset a notebook run uses, generated when synthetic.

    Args:
        data: the suite's dataset choice. ``"hanco"``: ``data_root`` is a HanCo copy (it must
            exist). ``"synthetic"``: the synthetic set of ``profile`` in ``data_root`` (or
            ``data/synthetic_hanco/<profile>`` when empty), generated if incomplete.
            ``"freihand"``/``"ho3d"`` (single-view sets): the default synthetic multi-view set
            of ``profile`` (``data_root`` names the single-view set, so it is not used here).
        profile: ``smoke``, ``quick`` or ``full``.
        mano_path: MANO model for the synthetic renders ("" = open hand model).
        workers: generator processes (default: CPU count, at most 8).
    """
    from hand_lib.data.synthetic import ensure_synthetic_hanco

    if data == "hanco":
        if not data_root or not Path(data_root).is_dir():
            raise ValueError(f"data='hanco' needs data_root, the HanCo folder (got {data_root!r})")
        return Path(data_root)
    if data not in ("synthetic", "freihand", "ho3d"):
        raise ValueError(f"unknown data {data!r}; expected synthetic, hanco, freihand or ho3d")
    root = data_root if data == "synthetic" and data_root else None
    return ensure_synthetic_hanco(root, profile=profile, mano_path=mano_path, workers=workers,
                                  progress=progress)


@dataclass
class HanCoStatistics:
    """What :func:`hanco_statistics` found. N = frames read, V = cameras.

    Attributes:
        num_frames, num_images: frames read and their camera images.
        sequences: distinct sequence ids read.
        joint_angles_deg: (N, 15) rotation angle of each finger joint, degrees (mean pose
            included, i.e. the full local rotation); empty without MANO fits.
        global_angle_deg: (N,) angle of the world-space global rotation, degrees.
        camera_distance_m: (N * V,) distance from each camera centre to the hand centre.
        hand_size_px: (N * V,) longer side of the keypoints' 2D bounding box, pixels.
        in_image: (N * V,) share of keypoints inside the image.
        visible: (N * V, 21) bool, from ``visibility/`` (synthetic data only; else empty).
        projection_error_px: largest distance between the loader's projection of ``xyz`` and
            the generator's ``uv`` over visible keypoints (nan without ``visibility/``).
        fit_error_m: largest keypoint distance between the MANO fit and ``xyz`` (nan
            without fits).
    """

    num_frames: int
    num_images: int
    sequences: list[int]
    joint_angles_deg: np.ndarray
    global_angle_deg: np.ndarray
    camera_distance_m: np.ndarray
    hand_size_px: np.ndarray
    in_image: np.ndarray
    visible: np.ndarray
    projection_error_px: float
    fit_error_m: float
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Headline numbers (for a table or the notebook's asserts)."""
        out = {
            "frames": float(self.num_frames),
            "images": float(self.num_images),
            "sequences": float(len(self.sequences)),
            "camera_distance_m_min": float(self.camera_distance_m.min()),
            "camera_distance_m_max": float(self.camera_distance_m.max()),
            "hand_size_px_median": float(np.median(self.hand_size_px)),
            "keypoints_in_image": float(self.in_image.mean()),
            "projection_error_px": self.projection_error_px,
            "fit_error_m": self.fit_error_m,
        }
        if self.visible.size:
            out["keypoints_visible"] = float(self.visible.mean())
        if self.joint_angles_deg.size:
            out["joint_angle_deg_p95"] = float(np.percentile(self.joint_angles_deg, 95))
        return out


def hanco_statistics(root: str | os.PathLike[str], split: str = "all",
                     image_dir: str = "rgb", max_frames: int | None = None,
                     mano_path: str = "") -> HanCoStatistics:
    """Read up to ``max_frames`` frames (evenly spread) of a HanCo-layout dataset.

    Args:
        root: dataset root.
        split: ``"train"``, ``"test"`` or ``"all"``.
        image_dir: ``"rgb"`` or ``"rgb_merged"``.
        max_frames: read at most this many frames (None: all).
        mano_path: MANO model of the fits ("" = the open hand model, the synthetic default).
    """
    from hand_lib.data.synthetic import load_visibility
    from hand_lib.mano import ManoLayer

    root = Path(root)
    ds = HanCo(root, split=split, mode="multi", image_dir=image_dir,  # type: ignore[arg-type]
               pseudo_labels=False)
    if len(ds) == 0:
        raise ValueError(f"{root}: no frames in split {split!r}")
    idx = np.arange(len(ds))
    if max_frames is not None and len(ds) > max_frames:
        idx = np.unique(np.linspace(0, len(ds) - 1, max_frames).round().astype(int))
    layer = ManoLayer(mano_path or None, dtype=torch.float64)
    has_vis = (root / "visibility").is_dir()
    angles, glob, dist, size, inside, visible = [], [], [], [], [], []
    proj_err, fit_err = 0.0, 0.0
    seqs: set[int] = set()
    for i in idx.tolist():
        s = ds[i]
        seq, frame = int(s["seq"]), int(s["frame"])
        seqs.add(seq)
        M = s["M"].double()
        R, t = M[:, :3, :3], M[:, :3, 3]
        centres = -(R.transpose(1, 2) @ t[..., None])[..., 0]
        xyz = s["joints_world"].double()
        dist.append((centres - xyz.mean(0)).norm(dim=1).numpy())
        uv = s["joints_2d"].double().numpy()
        H, W = s["image"].shape[-2:]
        size.append((uv.max(1) - uv.min(1)).max(1))
        ok = ((uv >= -0.5) & (uv <= np.array([W - 0.5, H - 0.5]))).all(-1)
        inside.append(ok.mean(1))
        if has_vis:
            for k in range(uv.shape[0]):
                vis = load_visibility(root, seq, frame, k)
                v = vis["visible"].astype(bool)
                visible.append(v)
                if v.any():
                    proj_err = max(proj_err, float(np.linalg.norm(uv[k] - vis["uv"], axis=1)[v]
                                                   .max()))
        if bool(s["has_mano"]):
            pose = s["mano_pose"].double()[None]
            out = layer(pose, s["mano_shape"].double()[None], s["mano_trans"].double()[None])
            fit_err = max(fit_err, float((out.keypoints[0] - xyz).norm(dim=1).max()))
            local = matrix_to_axis_angle(out.rot_mats[0, 1:]).norm(dim=1)
            angles.append(np.degrees(local.numpy()))
            glob.append(np.degrees(float(pose[0, :3].norm())))
    has_fit = bool(angles)
    return HanCoStatistics(
        num_frames=len(idx),
        num_images=int(sum(len(d) for d in dist)),
        sequences=sorted(seqs),
        joint_angles_deg=np.stack(angles) if has_fit else np.zeros((0, 15)),
        global_angle_deg=np.asarray(glob),
        camera_distance_m=np.concatenate(dist),
        hand_size_px=np.concatenate(size),
        in_image=np.concatenate(inside),
        visible=np.stack(visible) if visible else np.zeros((0, 21), dtype=bool),
        projection_error_px=proj_err if has_vis else float("nan"),
        fit_error_m=fit_err if has_fit else float("nan"),
    )


def plot_views(sample: dict[str, Any], visibility: list[np.ndarray] | None = None,
               title: str = "") -> Any:
    """A 2 x 4 grid of a multi-view sample's images with the projected keypoints and bones.

    Args:
        sample: a :class:`HanCo` multi-view sample (``image`` (V, 3, H, W), ``joints_2d``).
        visibility: optional V arrays (21,) bool: visible keypoints are drawn filled,
            occluded ones as open circles.
        title: figure title.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    images = sample["image"].permute(0, 2, 3, 1).numpy()
    uv = sample["joints_2d"].numpy()
    V = len(images)
    cols = min(V, 4)
    rows = -(-V // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for k in range(rows * cols):
        ax = axes[k // cols, k % cols]
        ax.axis("off")
        if k >= V:
            continue
        ax.imshow(images[k])
        for j, p in enumerate(FREIHAND_PARENTS):
            if p >= 0:
                ax.plot(uv[k, [p, j], 0], uv[k, [p, j], 1], color=colours((j - 1) // 4),
                        linewidth=1.2)
        vis = np.ones(21, bool) if visibility is None else visibility[k]
        ax.scatter(uv[k, vis, 0], uv[k, vis, 1], s=9, c="white", edgecolors="black",
                   linewidths=0.5, zorder=3)
        ax.scatter(uv[k, ~vis, 0], uv[k, ~vis, 1], s=12, facecolors="none", edgecolors="red",
                   linewidths=0.8, zorder=3)
        ax.set_xlim(-0.5, images.shape[2] - 0.5)
        ax.set_ylim(images.shape[1] - 0.5, -0.5)
        ax.set_title(f"cam{k}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_pose_statistics(stats: HanCoStatistics) -> Any:
    """Histograms: finger-joint angles per finger, global rotation angle, camera distance,
    hand size in pixels, and per-keypoint visibility (when known). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(19, 3.4))
    fingers = {"index": [0, 1, 2], "middle": [3, 4, 5], "pinky": [6, 7, 8],
               "ring": [9, 10, 11], "thumb": [12, 13, 14]}  # MANO joint order 1..15
    ax = axes[0]
    if stats.joint_angles_deg.size:
        for name, ids in fingers.items():
            ax.hist(stats.joint_angles_deg[:, ids].ravel(), bins=30, histtype="step", label=name)
        ax.legend(fontsize=7)
    ax.set_title("finger joint rotation (deg)", fontsize=9)
    if stats.global_angle_deg.size:
        axes[1].hist(stats.global_angle_deg, bins=20, color="tab:gray")
    axes[1].set_title("global rotation angle (deg)", fontsize=9)
    axes[2].hist(stats.camera_distance_m, bins=20, color="tab:blue")
    axes[2].set_title("camera to hand (m)", fontsize=9)
    axes[3].hist(stats.hand_size_px, bins=20, color="tab:orange")
    axes[3].set_title("hand size (px, keypoint box)", fontsize=9)
    if stats.visible.size:
        axes[4].bar(np.arange(21), stats.visible.mean(0), color="tab:green")
        axes[4].set_ylim(0, 1)
    axes[4].set_title("share visible per keypoint", fontsize=9)
    fig.tight_layout()
    return fig
