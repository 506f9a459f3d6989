"""Static figures for the notebooks and for papers (matplotlib; PNG and PDF).

Every function takes arrays (numpy or torch, on the CPU) and returns a matplotlib
``Figure``; :func:`save_figure` writes it as PNG and PDF. Keypoints are in FreiHAND order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from hand_lib.mano.joints import KEYPOINT_PARENTS  # noqa: E402

#: one colour per finger (thumb, index, middle, ring, pinky); the wrist's bones take the
#: colour of their finger
FINGER_COLOURS = ("#e41a1c", "#ff7f00", "#4daf4a", "#377eb8", "#984ea3")


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _image_hwc(image: Any) -> np.ndarray:
    img = _np(image)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)
    return np.clip(img, 0.0, 1.0)


def _image_grid(images: np.ndarray, columns: int, row_height: float,
                clip: bool = False) -> tuple[Figure, Any, list[tuple[int, Any]]]:  # fmt: skip
    """A grid with one image per axis, every axis switched off. Returns the figure, the axes
    and ``(i, ax)`` for the axes that show image ``i``; ``clip`` keeps their limits on the
    image whatever is drawn over it later."""
    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, row_height * rows),
                             squeeze=False)  # fmt: skip
    shown = []
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = _image_hwc(images[i])
        ax.imshow(img)
        if clip:
            ax.set_xlim(-0.5, img.shape[1] - 0.5)
            ax.set_ylim(img.shape[0] - 0.5, -0.5)
            ax.set_autoscale_on(False)
        shown.append((i, ax))
    return fig, axes, shown


def save_figure(fig: Figure, path: str | os.PathLike[str], formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:  # fmt: skip
    """Write ``fig`` as ``<path>.<fmt>`` for each format (the suffix of ``path`` is replaced);
    returns the files written."""
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = stem.with_suffix(f".{fmt}")
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
        written.append(out)
    return written


def draw_skeleton(ax: Any, keypoints_2d: Any, *, style: str = "-", alpha: float = 1.0,
                  label: str | None = None, colour: str | None = None,
                  confidence: Any = None) -> None:  # fmt: skip
    """Draw a 21-keypoint hand on an axis (pixels; bones coloured per finger, or ``colour``).
    Joints with ``confidence`` 0 are left out."""
    kp = _np(keypoints_2d)
    conf = np.ones(len(kp)) if confidence is None else _np(confidence)
    for j, parent in enumerate(KEYPOINT_PARENTS):
        if parent < 0 or conf[j] <= 0 or conf[parent] <= 0:
            continue
        c = colour or FINGER_COLOURS[(j - 1) // 4]
        ax.plot(*zip(kp[parent], kp[j], strict=True), style, color=c, lw=1.4, alpha=alpha)
    shown = conf > 0
    ax.scatter(kp[shown, 0], kp[shown, 1], s=6, color=colour or "k", alpha=alpha, label=label,
               zorder=3)  # fmt: skip


def plot_loss_curves(losses: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                     title: str = "training losses") -> Figure:  # fmt: skip
    """Loss curves from the trainer's ``metrics.csv`` (one DataFrame, or several by name).

    Left: ``total`` per run (log scale). Right: every weighted term of the first run.
    """
    runs = {"": losses} if isinstance(losses, pd.DataFrame) else dict(losses)
    reserved = {"step", "epoch", "lr", "total", "grad_norm", "bad_step", "seconds"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, df in runs.items():
        axes[0].plot(df["step"], df["total"], label=name or "total")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("total")
    if len(runs) > 1:
        axes[0].legend()
    first = next(iter(runs.values()))
    for col in first.columns:
        if col not in reserved and first[col].notna().any():
            axes[1].plot(first["step"], first[col], label=col)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_title("weighted terms")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_learning_curves(curves: pd.DataFrame | Mapping[str, pd.DataFrame], *,
                         metric: str = "pa_mpjpe_mm",
                         baselines: Mapping[str, float | tuple[float, float, float]] | None = None,
                         ylabel: str = "PA-MPJPE (mm), validation split",
                         title: str = "learning curve") -> Figure:
    """Validation error against training step (the trainer's ``val_metrics.csv``), with
    the rows to beat as horizontal lines.

    Args:
        curves: one DataFrame or several by name, with ``step`` and ``metric`` columns.
        metric: the column to plot (a list of columns: one line each, first DataFrame).
        baselines: name -> value, or ``(value, low, high)`` to shade its interval too (e.g.
            the mean hand on the same split).
    """
    runs = {"": curves} if isinstance(curves, pd.DataFrame) else dict(curves)
    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for name, df in runs.items():
        for col in metrics:
            if col in df:
                label = " ".join(p for p in (name, col if len(metrics) > 1 else "") if p)
                ax.plot(df["step"], df[col], marker="o", markersize=3, label=label or col)
    for k, (name, value) in enumerate((baselines or {}).items()):
        colour = ("0.35", "0.6", "0.8")[k % 3]
        if isinstance(value, tuple):
            mid, low, high = value
            ax.axhspan(low, high, color=colour, alpha=0.25, lw=0)
        else:
            mid = value
        ax.axhline(mid, color=colour, ls="--", lw=1.2, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def smoothed_drop(losses: pd.DataFrame, column: str = "total", window: float = 0.2) -> float:
    """Ratio of the mean of the last ``window`` share of logged values to the mean of the
    first share: < 1 means the loss went down (robust to per-batch noise)."""
    values = losses[column].dropna().to_numpy()
    if len(values) < 2:
        raise ValueError(f"need at least 2 logged values of {column!r}, got {len(values)}")
    k = max(1, int(round(window * len(values))))
    return float(values[-k:].mean() / values[:k].mean())


def plot_keypoints_grid(
    images: Any,
    keypoints: Mapping[str, Any],
    *,
    titles: Sequence[str] | None = None,
    columns: int = 4,
    confidences: Mapping[str, Any] | None = None,
) -> Figure:
    """Images with several keypoint sets drawn over them (e.g. ground truth, pseudo label,
    prediction). ``keypoints[name]``: (N, 21, 2) pixels; the first set is drawn with finger
    colours, the others as single-colour dashed skeletons."""
    imgs = _np(images)
    n = len(imgs)
    fig, _, shown = _image_grid(imgs, columns, 2.7)
    styles = [("-", None), ("--", "#222222"), (":", "#e7298a"), ("-.", "#1b9e77")]
    for i, ax in shown:
        for k, (name, kps) in enumerate(keypoints.items()):
            style, colour = styles[k % len(styles)]
            conf = None if confidences is None or name not in confidences else \
                _np(confidences[name])[i]
            draw_skeleton(ax, _np(kps)[i], style=style, colour=colour, confidence=conf,
                          label=name if i == 0 else None, alpha=0.9)  # fmt: skip
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if n:
        fig.legend(loc="lower center", ncol=len(keypoints), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_mesh_overlay(images: Any, vertices_2d: Any, faces: Any, *, keypoints_2d: Any = None,
                      titles: Sequence[str] | None = None, columns: int = 4) -> Figure:  # fmt: skip
    """Predicted meshes projected over their images: ``vertices_2d`` (N, V, 2) pixels,
    ``faces`` (F, 3); triangles drawn back to front is not needed for a translucent fill."""
    imgs, v2d, f = _np(images), _np(vertices_2d), _np(faces)
    fig, _, shown = _image_grid(imgs, columns, 2.7, clip=True)
    for i, ax in shown:
        tris = PolyCollection(v2d[i][f], facecolors=(0.35, 0.6, 1.0, 0.12),
                              edgecolors=(0.1, 0.3, 0.9, 0.25), linewidths=0.3)  # fmt: skip
        ax.add_collection(tris)
        if keypoints_2d is not None:
            draw_skeleton(ax, _np(keypoints_2d)[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_pck_curves(curves: Mapping[str, tuple[Any, Any, float]], *,
                    title: str = "3D PCK (Procrustes-aligned)") -> Figure:  # fmt: skip
    """PCK curves: ``curves[name] = (thresholds_mm, pck, auc)``."""
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for name, (thresholds, pck, auc) in curves.items():
        ax.plot(_np(thresholds), _np(pck), label=f"{name} (AUC {auc:.3f})")
    ax.set_xlabel("threshold (mm)")
    ax.set_ylabel("PCK")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_pseudo_label_quality(per_joint: pd.DataFrame, by_confidence: pd.DataFrame) -> Figure:
    """Pseudo-label quality from :func:`hand_lib.pseudo.report.pseudo_label_report`: mean 2D
    error per joint (``error_2d_mean_px``), and per confidence bin (``confidence_low``,
    ``confidence_high``, ``error_2d_mean_px``)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    colours = ["k"] + [FINGER_COLOURS[(j - 1) // 4] for j in range(1, len(per_joint))]
    axes[0].bar(range(len(per_joint)), per_joint["error_2d_mean_px"].to_numpy(), color=colours)
    axes[0].set_xticks(range(len(per_joint)))
    axes[0].set_xticklabels(per_joint.index, rotation=90, fontsize=6)
    axes[0].set_ylabel("mean 2D error (px)")
    axes[0].set_title("pseudo-label error per joint")
    bins = [f"{lo:.1f}-{hi:.1f}" for lo, hi in
            zip(by_confidence["confidence_low"], by_confidence["confidence_high"], strict=True)]
    axes[1].bar(bins, by_confidence["error_2d_mean_px"].to_numpy(), color="#377eb8")
    axes[1].set_xlabel("confidence")
    axes[1].set_ylabel("mean 2D error (px)")
    axes[1].set_title("a low confidence flags a bad label")
    fig.tight_layout()
    return fig


def plot_rendered_predictions(images: Any, render_rgb: Any, render_alpha: Any, *,
                              background: Sequence[float] = (0.0, 0.0, 0.0)) -> Figure:  # fmt: skip
    """Rows: input crops (N, 3, H, W), renders (N, H, W, 3) and the photometric target, the
    input composited over the render's background inside the silhouette (N, H, W)."""
    imgs, rgb, alpha = _np(images), _np(render_rgb), _np(render_alpha)
    bg = np.asarray(background, dtype=np.float32)
    n = len(imgs)
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.8), squeeze=False)
    for i in range(n):
        img = _image_hwc(imgs[i])
        a = alpha[i][..., None]
        rows = (img, np.clip(rgb[i], 0, 1), np.clip(a * img + (1 - a) * bg, 0, 1))
        for r, panel in enumerate(rows):
            axes[r, i].imshow(panel)
            axes[r, i].axis("off")
    for r, name in enumerate(("input", "render", "photometric target")):
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def _draw_skeleton_3d(ax: Any, joints: np.ndarray, colour: str | None, style: str,
                      label: str) -> None:  # fmt: skip
    for j, parent in enumerate(KEYPOINT_PARENTS):
        if parent >= 0:
            c = colour or FINGER_COLOURS[(j - 1) // 4]
            ax.plot(*zip(joints[parent], joints[j], strict=True), style, color=c, lw=1.4,
                    label=label if j == 1 else None)  # fmt: skip


def plot_qualitative_grid(
    images: Any,
    pred_2d: Any,
    gt_2d: Any,
    vertices_2d: Any,
    faces: Any,
    pred_joints: Any,
    gt_joints: Any,
    titles: Sequence[str],
) -> Figure:
    """One row per case: input, 2D keypoints (prediction vs truth), mesh overlay, and a 3D
    view of the root-relative predicted (finger colours) and true (black dashed) skeletons.
    3D joints (N, 21, 3) metres, camera axes; the prediction is shown root-aligned."""
    imgs, p2, g2 = _np(images), _np(pred_2d), _np(gt_2d)
    v2, f, pj, gj = _np(vertices_2d), _np(faces), _np(pred_joints), _np(gt_joints)
    n = len(imgs)
    fig = plt.figure(figsize=(11, 2.8 * n))
    for i in range(n):
        img = _image_hwc(imgs[i])
        ax = fig.add_subplot(n, 4, 4 * i + 1)
        ax.imshow(img)
        ax.set_title(titles[i], fontsize=8, loc="left")
        ax = fig.add_subplot(n, 4, 4 * i + 2)
        ax.imshow(img)
        draw_skeleton(ax, p2[i])
        draw_skeleton(ax, g2[i], style="--", colour="k", alpha=0.8)
        ax = fig.add_subplot(n, 4, 4 * i + 3)
        ax.imshow(img)
        ax.add_collection(PolyCollection(v2[i][f], facecolors=(0.35, 0.6, 1.0, 0.15),
                                         edgecolors=(0.1, 0.3, 0.9, 0.3), linewidths=0.3))
        ax.set_xlim(-0.5, img.shape[1] - 0.5)
        ax.set_ylim(img.shape[0] - 0.5, -0.5)
        for a in fig.axes[-3:]:
            a.axis("off")
        ax = fig.add_subplot(n, 4, 4 * i + 4, projection="3d")
        p = (pj[i] - pj[i][:1]) * 1000.0
        g = (gj[i] - gj[i][:1]) * 1000.0
        _draw_skeleton_3d(ax, p, None, "-", "prediction")
        _draw_skeleton_3d(ax, g, "k", "--", "ground truth")
        ax.view_init(elev=-70, azim=-90)  # camera-like view: x right, y down
        ax.set_box_aspect((1, 1, 1))
        ax.tick_params(labelsize=5)
        if i == 0:
            ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig


def plot_error_vs_views(table: pd.DataFrame, *, metric: str = "N-JE (mm)") -> Figure:
    """Error against the number of input views: ``table`` indexed by view count, one column
    per output (e.g. single_view, cross_view, fused), and optionally ``<output> lo`` /
    ``<output> hi`` columns, drawn as that output's 95% band (so a reader sees whether a
    trend leaves the noise)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    outputs = [c for c in table.columns if not c.endswith((" lo", " hi"))]
    for col in outputs:
        (line,) = ax.plot(table.index, table[col], marker="o", label=col.replace("_", " "))
        if f"{col} lo" in table and f"{col} hi" in table:
            ax.fill_between(table.index, table[f"{col} lo"], table[f"{col} hi"],
                            color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("input views")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_label_vs_learned_error(pseudo_error_px: Any, learned_error_mm: Any) -> Figure:
    """Per test sample: the mean 2D error of its pseudo label (px) against the learned
    model's PA-MPJPE (mm), with the rank correlation in the title."""
    x, y = _np(pseudo_error_px), _np(learned_error_mm)
    rx, ry = pd.Series(x).rank(), pd.Series(y).rank()
    rho = float(np.corrcoef(rx, ry)[0, 1]) if len(x) > 2 else float("nan")
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    ax.scatter(x, y, s=6, alpha=0.5)
    ax.set_xlabel("pseudo-label 2D error (px)")
    ax.set_ylabel("learned PA-MPJPE (mm)")
    ax.set_title(f"pseudo-label vs learned error (Spearman {rho:.2f})", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_label_overlays(images: Any, labels_2d: Any, gt_2d: Any, confidence: Any,
                        titles: Sequence[str], *, columns: int = 4) -> Figure:  # fmt: skip
    """Pseudo labels over their images: ``images`` (N, H, W, 3) in [0, 1] (or (N, 3, H, W)),
    labels (N, 21, 2) pixels drawn per finger (undetected joints, confidence 0, left out),
    ground truth (N, 21, 2) in black dashes."""
    imgs, lab, gt, conf = _np(images), _np(labels_2d), _np(gt_2d), _np(confidence)
    n = len(imgs)
    fig, axes, shown = _image_grid(imgs, columns, 2.8, clip=True)
    for i, ax in shown:
        draw_skeleton(ax, gt[i], style="--", colour="k", alpha=0.6,
                      label="truth" if i == 0 else None)  # fmt: skip
        draw_skeleton(ax, lab[i], confidence=conf[i], label="label" if i == 0 else None)
        ax.set_title(titles[i], fontsize=8)
    if n:
        axes.flat[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig


def plot_error_histograms(errors_px: Mapping[str, Any], weights: Mapping[str, Any] | None = None,
                          *, bins: int = 40, max_px: float | None = None) -> Figure:  # fmt: skip
    """Histograms of 2D label errors (pixels; NaN = undetected, left out), one per label set.
    Left: counts of joints; right: weighted by ``weights[name]`` (the confidences, same shape),
    i.e. how much of a confidence-weighted loss each error range receives."""
    weights = weights or {}
    finite = [_np(e)[np.isfinite(_np(e))] for e in errors_px.values()]
    top = max_px or max([float(np.percentile(f, 99)) for f in finite if f.size] or [1.0])
    edges = np.linspace(0.0, top, bins + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, err in errors_px.items():
        e = _np(err).astype(np.float64)
        ok = np.isfinite(e)
        clipped = np.minimum(e[ok], top)
        axes[0].hist(clipped, bins=edges, histtype="step", lw=1.4, label=name)
        w = _np(weights[name])[ok] if name in weights else np.ones(ok.sum())
        axes[1].hist(clipped, bins=edges, weights=w / max(w.sum(), 1e-12), histtype="step",
                     lw=1.4, label=name)  # fmt: skip
    axes[0].set_ylabel("joints")
    axes[0].set_title("2D label error (last bin: everything beyond)")
    axes[1].set_ylabel("share of confidence")
    axes[1].set_title("weighted by confidence")
    for ax in axes:
        ax.set_xlabel("2D error (px)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pseudo_label_comparison(summary: pd.DataFrame, metrics: Sequence[str] = (
        "weighted_error_2d_px", "mean_error_2d_px", "mean_error_3d_mm",
        "joint_detection_rate")) -> Figure:  # fmt: skip
    """Label sets side by side: ``summary`` has one column per label set (e.g. raw,
    reweighted, filtered) and one row per :func:`pseudo_label_report` summary key; one bar
    panel per metric."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = summary.loc[metric].astype(float)
        ax.bar(range(len(values)), values.to_numpy(), color=colours[:len(values)])
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(values.index, rotation=30, fontsize=8)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
