"""The prediction inspector: pick an S2HAND checkpoint and a test image (one view) or a
multi-view frame (all eight views); see the predicted mesh over the crop, predicted and
ground-truth 2D keypoints, and per-joint 3D errors.

Checkpoints are found under ``<results_dir>/runs/<stage>/checkpoints/step_*.pt`` (the
suite's layout); the stage folder names the network to build (:data:`TASK_STAGE`), the
profile its size. Where none exists the inspector offers an untrained network (seeded) and
says so, so the notebook works before any training.

Crops are made as the suite's evaluation makes them: around the pseudo labels, without
jitter (around the ground-truth keypoints when the dataset has no pseudo labels). Errors,
millimetres, per joint: after aligning the roots (keypoint 9, middle MCP; HaMuCo's protocol)
and after a similarity Procrustes alignment (PA); 2D errors in crop pixels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hand_lib.data import CropConfig, HanCo, HandCrop
from hand_lib.data.hanco import PSEUDO_LABEL_DIRS
from hand_lib.experiments.s2hand import TASK_STAGE, build_task
from hand_lib.experiments.settings import suite_settings
from hand_lib.geometry import similarity_procrustes
from hand_lib.mano.joints import KEYPOINT_NAMES, ROOT_KEYPOINT
from hand_lib.train import list_checkpoints, load_weights
from hand_lib.viz.figures import (
    FINGER_COLOURS,
    as_numpy,
    detached,
    draw_skeleton_2d,
    finger_chains,
    image_to_uint8,
    mesh_overlay,
)
from hand_lib.viz.frontend import resolve_interactive

UNTRAINED = "untrained network (no checkpoint)"
Mode = Literal["image", "frame"]
_STEP = re.compile(r"step_(\d+)\.pt$")


def find_checkpoints(results_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """``{label: path}`` of every S2HAND checkpoint under ``<results_dir>/runs``, newest step
    of each stage first; labels read ``"<stage> step <n>"``."""
    found: dict[str, Path] = {}
    runs = Path(results_dir) / "runs"
    if not runs.is_dir():
        return found
    for stage_dir in sorted(p for p in runs.iterdir() if p.name in TASK_STAGE):
        for ckpt in reversed(list_checkpoints(stage_dir / "checkpoints")):
            m = _STEP.search(ckpt.name)
            found[f"{stage_dir.name} step {int(m.group(1)) if m else '?'}"] = ckpt
    return found


@dataclass
class Inspection:
    """Predictions and errors of one image (V = 1) or one multi-view frame (V = 8).

    Attributes:
        checkpoint: the label inspected; note: what the network is (untrained, stage, file).
        mode: "image" or "frame"; index: sample index in that mode's dataset.
        seq, frame: the frame; cams: (V,) camera ids.
        images: (V, S, S, 3) uint8 crops; overlays: the same with the predicted mesh drawn.
        K: (V, 3, 3) crop intrinsics, pixels.
        pred_2d, gt_2d: (V, 21, 2) projected predicted joints and ground truth, pixels.
        pred_joints, gt_joints: (V, 21, 3) camera space, metres.
        error_root_mm: (V, 21) per-joint error after aligning keypoint 9, mm.
        error_pa_mm: (V, 21) per-joint error after similarity Procrustes, mm.
        error_2d_px: (V, 21) per-joint 2D error, crop pixels.
    """

    checkpoint: str
    note: str
    mode: str
    index: int
    seq: int
    frame: int
    cams: np.ndarray
    images: np.ndarray
    overlays: np.ndarray
    K: np.ndarray
    pred_2d: np.ndarray
    gt_2d: np.ndarray
    pred_joints: np.ndarray
    gt_joints: np.ndarray
    error_root_mm: np.ndarray
    error_pa_mm: np.ndarray
    error_2d_px: np.ndarray

    def summary(self) -> str:
        """One line: what was inspected and its mean errors."""
        what = (f"seq {self.seq} frame {self.frame} cam {int(self.cams[0])}"
                if self.mode == "image" else f"seq {self.seq} frame {self.frame}, "
                f"{len(self.cams)} views")  # fmt: skip
        return (f"{self.checkpoint}: {what}: MPJPE (root-aligned) "
                f"{self.error_root_mm.mean():.1f} mm, PA-MPJPE {self.error_pa_mm.mean():.1f} "
                f"mm, 2D {self.error_2d_px.mean():.1f} px")


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint errors of (V, 21, 3) metre predictions against ground truth, mm:
    ``(root-aligned at keypoint 9, after similarity Procrustes)``, each (V, 21)."""
    p = torch.as_tensor(pred, dtype=torch.float64)
    g = torch.as_tensor(gt, dtype=torch.float64)
    rel = (p - p[:, ROOT_KEYPOINT:ROOT_KEYPOINT + 1]) - (g - g[:, ROOT_KEYPOINT:ROOT_KEYPOINT + 1])
    aligned = similarity_procrustes(p, g).apply(p)
    return (1000.0 * rel.norm(dim=-1)).numpy(), (1000.0 * (aligned - g).norm(dim=-1)).numpy()


class PredictionInspector:
    """Datasets, networks and figures of the inspector.

    Args:
        data_root: HanCo-layout dataset.
        profile: suite profile whose network size the checkpoints have (smoke, quick, full).
        results_dir: where the suite keeps ``runs/`` (checkpoints are searched there).
        checkpoints: ``{label: path}`` to offer instead of searching ``results_dir``.
        split: "test" (default, ``rgb_merged`` images) or "train" (``rgb``).
        mano_path: MANO model ("" = the open hand model).
        device: where the network runs.
    """

    def __init__(self, data_root: str | os.PathLike[str], profile: str = "quick",
                 results_dir: str | os.PathLike[str] | None = None,
                 checkpoints: Mapping[str, str | os.PathLike[str]] | None = None,
                 split: Literal["train", "test"] = "test", mano_path: str = "",
                 device: str = "cpu") -> None:  # fmt: skip
        self.root = Path(data_root)
        self.settings = suite_settings(profile)
        self.mano_path = str(mano_path or "")
        self.device = torch.device(device)
        if checkpoints is None:
            checkpoints = find_checkpoints(results_dir) if results_dir else {}
        self.checkpoints: dict[str, Path | None] = {k: Path(v) for k, v in checkpoints.items()}
        self.checkpoints[UNTRAINED] = None
        has_pseudo = any((self.root / d).is_dir() for d in PSEUDO_LABEL_DIRS)
        image_dir = "rgb_merged" if split == "test" else "rgb"
        if not (self.root / image_dir).is_dir():
            image_dir = "rgb" if image_dir == "rgb_merged" else "rgb_merged"
        crop = HandCrop(CropConfig(out_size=self.settings.image_size),
                        box_from="pseudo_2d" if has_pseudo else "joints_2d", augment=False)
        kwargs = {"split": split, "image_dir": image_dir, "pseudo_labels": has_pseudo,
                  "transform": crop}  # fmt: skip
        self.datasets = {"image": HanCo(self.root, mode="single", **kwargs),
                         "frame": HanCo(self.root, mode="multi", **kwargs)}  # fmt: skip
        if len(self.datasets["frame"]) == 0:
            raise ValueError(f"{self.root}: no complete frame in the {split} split")
        self._tasks: dict[str, tuple[torch.nn.Module, str]] = {}

    def __len__(self) -> int:
        return len(self.datasets["image"])

    def num_samples(self, mode: Mode) -> int:
        """Samples selectable in ``mode`` (images, or multi-view frames)."""
        return len(self.datasets[mode])

    def task(self, label: str) -> tuple[torch.nn.Module, str]:
        """The network of ``label`` (built and loaded once, eval mode) and a note on it."""
        if label not in self.checkpoints:
            raise KeyError(f"unknown checkpoint {label!r}; have {list(self.checkpoints)}")
        if label not in self._tasks:
            path = self.checkpoints[label]
            if path is None:
                torch.manual_seed(0)
                task = build_task("s2hand_shape", self.settings, self.mano_path)
                note = (f"UNTRAINED s2hand_shape network ({self.settings.profile} size, seed "
                        "0): no checkpoint found; predictions are not meaningful")
            else:
                stage = path.parent.parent.name
                task = build_task(stage, self.settings, self.mano_path)
                try:
                    load_weights(task, path)
                except Exception as exc:
                    raise ValueError(f"{path} does not load into the {self.settings.profile} "
                                     f"profile's {stage} network: {exc}") from exc
                note = f"{stage} ({self.settings.profile} size) from {path}"
            self._tasks[label] = (task.to(self.device).eval(), note)
        return self._tasks[label]

    def inspect(self, label: str = UNTRAINED, mode: Mode = "image", index: int = 0
                ) -> Inspection:  # fmt: skip
        """Run the network of ``label`` on sample ``index`` of ``mode`` and measure it."""
        if mode not in self.datasets:
            raise ValueError(f"mode must be 'image' or 'frame', got {mode!r}")
        task, note = self.task(label)
        sample = self.datasets[mode][int(index)]
        image, K = sample["image"], sample["K"]
        cams = sample["cam"][None] if mode == "image" else sample["cams"]
        if mode == "image":
            image, K = image[None], K[None]
            gt_2d, gt = sample["joints_2d"][None], sample["joints_cam"][None]
        else:
            gt_2d, gt = sample["joints_2d"], sample["joints_cam"]
        with torch.no_grad():
            pred = task.predict({"image": image.to(self.device), "K": K.to(self.device)})
        pred = {k: as_numpy(v) for k, v in pred.items()}
        faces = as_numpy(task.net.mano.faces)
        images = np.stack([image_to_uint8(im) for im in image])
        overlays = np.stack([mesh_overlay(im, v, faces, k)
                             for im, v, k in zip(images, pred["vertices"], as_numpy(K),
                                                 strict=True)])  # fmt: skip
        gt, gt_2d = as_numpy(gt), as_numpy(gt_2d)
        err_root, err_pa = joint_errors(pred["joints"], gt)
        return Inspection(
            checkpoint=label, note=note, mode=mode, index=int(index), seq=int(sample["seq"]),
            frame=int(sample["frame"]), cams=as_numpy(cams), images=images, overlays=overlays,
            K=as_numpy(K), pred_2d=pred["joints_2d"], gt_2d=gt_2d, pred_joints=pred["joints"],
            gt_joints=gt, error_root_mm=err_root, error_pa_mm=err_pa,
            error_2d_px=np.linalg.norm(pred["joints_2d"] - gt_2d, axis=-1),
        )  # fmt: skip

    # ------------------------------------------------------------------ figures

    def figure(self, result: Inspection, widget: bool = False) -> Any:
        """plotly figure: the overlaid crop(s) with predicted (solid) and ground-truth
        (dotted) keypoints, and per-joint errors (mean over the views of a frame)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        V = len(result.cams)
        cols = 1 if V == 1 else 4
        img_rows = (V + cols - 1) // cols
        S = result.images.shape[1]
        if V == 1:
            fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                                subplot_titles=("prediction over the crop", "per-joint error"))
            bar_row, bar_col = 1, 2
        else:
            specs = [[{}] * cols for _ in range(img_rows)] + [[{"colspan": cols}] + [None] * (
                cols - 1)]  # fmt: skip
            titles = [f"cam {int(c)}: {e:.0f} mm" for c, e in
                      zip(result.cams, result.error_root_mm.mean(1), strict=True)]  # fmt: skip
            fig = make_subplots(rows=img_rows + 1, cols=cols, specs=specs,
                                subplot_titles=[*titles, "per-joint error (mean over views)"],
                                vertical_spacing=0.06, horizontal_spacing=0.02)  # fmt: skip
            bar_row, bar_col = img_rows + 1, 1
        for v in range(V):
            r, c = v // cols + 1, v % cols + 1
            fig.add_trace(go.Image(z=result.overlays[v], hoverinfo="skip"), row=r, col=c)
            for name, pts, dash in (("ground truth", result.gt_2d[v], "dot"),
                                    ("prediction", result.pred_2d[v], "solid")):
                for f, chain in enumerate(finger_chains()):
                    fig.add_trace(go.Scatter(
                        x=pts[chain, 0], y=pts[chain, 1], mode="lines+markers",
                        line={"color": FINGER_COLOURS[f], "dash": dash, "width": 2},
                        marker={"size": 4}, name=name, legendgroup=name,
                        showlegend=v == 0 and f == 0,
                        text=[f"{name}: {KEYPOINT_NAMES[i]}" for i in chain],
                        hoverinfo="text"), row=r, col=c)  # fmt: skip
            fig.update_xaxes(range=[-0.5, S - 0.5], visible=False, row=r, col=c)
            fig.update_yaxes(range=[S - 0.5, -0.5], visible=False, scaleanchor=None,
                             row=r, col=c)  # fmt: skip
        for name, err, colour in (("root-aligned", result.error_root_mm, "#1f77b4"),
                                  ("PA", result.error_pa_mm, "#ff7f0e")):
            fig.add_trace(go.Bar(x=list(KEYPOINT_NAMES), y=err.mean(0), name=f"{name} (mm)",
                                 marker_color=colour), row=bar_row, col=bar_col)  # fmt: skip
        fig.update_yaxes(title_text="mm", row=bar_row, col=bar_col)
        fig.update_xaxes(tickangle=-60, tickfont={"size": 9}, row=bar_row, col=bar_col)
        height = 430 if V == 1 else 260 * img_rows + 320
        fig.update_layout(height=height, width=980 if V == 1 else 1000, barmode="group",
                          title={"text": f"{result.summary()}<br><sup>{result.note}</sup>",
                                 "font": {"size": 13}},
                          margin={"l": 10, "r": 10, "t": 80, "b": 10})  # fmt: skip
        return go.FigureWidget(fig) if widget else fig

    def static_figure(self, results: list[Inspection]) -> Any:
        """matplotlib: one row per inspection (its first four views) with the per-joint
        errors beside them."""
        import matplotlib.pyplot as plt

        cols = 5
        fig, axes = plt.subplots(len(results), cols, figsize=(3.2 * cols, 3.3 * len(results)),
                                 squeeze=False)  # fmt: skip
        for row, res in zip(axes, results, strict=True):
            for v, ax in enumerate(row[: cols - 1]):
                ax.axis("off")
                if v >= len(res.cams):
                    continue
                ax.imshow(res.overlays[v])
                draw_skeleton_2d(ax, res.gt_2d[v], ":", "ground truth", 1.2)
                draw_skeleton_2d(ax, res.pred_2d[v], "-", "prediction", 1.5)
                S = res.images.shape[1]
                ax.set_xlim(-0.5, S - 0.5)
                ax.set_ylim(S - 0.5, -0.5)
                ax.set_title(f"{res.mode} {res.index}, cam {int(res.cams[v])}: "
                             f"{res.error_root_mm[v].mean():.0f} mm", fontsize=8)
            ax = row[-1]
            x = np.arange(21)
            ax.bar(x - 0.2, res.error_root_mm.mean(0), 0.4, label="root-aligned")
            ax.bar(x + 0.2, res.error_pa_mm.mean(0), 0.4, label="PA")
            ax.set_xticks(x, [n.replace("_", " ") for n in KEYPOINT_NAMES], rotation=90,
                          fontsize=6)  # fmt: skip
            ax.set_ylabel("error (mm)", fontsize=8)
            ax.legend(fontsize=7)
        fig.suptitle(f"{results[0].note}\n(static: run in JupyterLab to pick checkpoints and "
                     "samples)", fontsize=9)  # fmt: skip
        fig.tight_layout()
        return fig

    def widget(self, label: str | None = None) -> Any:
        """The live inspector: checkpoint, image/frame and sample pickers above the figure."""
        import ipywidgets as W

        labels = list(self.checkpoints)
        pick = W.Dropdown(options=labels, value=label or labels[0], description="checkpoint",
                          layout=W.Layout(width="480px"))  # fmt: skip
        mode = W.ToggleButtons(options=[("one image", "image"), ("multi-view frame", "frame")],
                               value="image", description="inspect")  # fmt: skip
        index = W.IntSlider(value=0, min=0, max=self.num_samples("image") - 1,
                            description="sample", continuous_update=False)  # fmt: skip
        status = W.HTML()
        holder = W.Box()

        def show(_: Any = None) -> None:
            index.max = self.num_samples(mode.value) - 1
            try:
                result = self.inspect(pick.value, mode.value, index.value)
            except Exception as exc:  # show what went wrong next to the controls
                status.value = f"<span style='color:#b00'>{type(exc).__name__}: {exc}</span>"
                return
            status.value = result.note
            holder.children = [self.figure(result, widget=True)]
            self.last = result

        for w in (pick, mode, index):
            w.observe(show, names="value")
        show()
        self.controls = {"checkpoint": pick, "mode": mode, "index": index}
        return W.VBox([W.HBox([pick, mode]), index, status, holder])


def prediction_inspector(data_root: str | os.PathLike[str], profile: str = "quick",
                         results_dir: str | os.PathLike[str] | None = None,
                         mano_path: str = "", device: str = "cpu",
                         interactive: bool | None = None) -> Any:  # fmt: skip
    """The prediction inspector for a notebook cell.

    Args:
        data_root: HanCo-layout dataset (its test split is inspected).
        profile: network size of the checkpoints (the suite profile that trained them).
        results_dir: the suite's results folder; checkpoints come from its ``runs/``.
        mano_path: MANO model ("" = open hand model). device: where the network runs.
        interactive: live widgets (True), a static matplotlib figure (False), or decided
            by :func:`hand_lib.viz.frontend.resolve_interactive` (None).

    Returns:
        An ipywidgets container (live) or a matplotlib ``Figure`` (static: the newest
        checkpoint, or the untrained network, on the first image and the first frame).
    """
    inspector = PredictionInspector(data_root, profile, results_dir, mano_path=mano_path,
                                    device=device)  # fmt: skip
    if resolve_interactive(interactive):
        return inspector.widget()
    label = next(iter(inspector.checkpoints))
    return detached(inspector.static_figure([inspector.inspect(label, "image", 0),
                                             inspector.inspect(label, "frame", 0)]))
