"""What every notebook of the suite does first, and the learning-curve figure they share.

``ctx = notebook_setup(profile, data, data_root, mano_path, results_dir)`` resolves the
profile's sizes, the dataset (generating the synthetic one when needed) and the result
folders, so that a notebook's setup cell is one call.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hand_lib.experiments.settings import SuiteSettings, suite_settings

__all__ = ["NotebookContext", "learning_curve", "notebook_setup", "validation_baseline"]


@dataclass(frozen=True)
class NotebookContext:
    """Where a notebook run reads and writes.

    Attributes:
        profile: smoke, quick or full; settings: its :class:`SuiteSettings`.
        root: the HanCo-layout dataset. results: ``results/<profile>``; runs, figures,
        metrics: its ``runs/`` (checkpoints, logs), ``figures/`` and ``metrics/`` folders.
        mano_path: the hand model ("" = the open hand).
    """

    profile: str
    settings: SuiteSettings
    root: Path
    results: Path
    runs: Path
    figures: Path
    metrics: Path
    mano_path: str


def notebook_setup(profile: str, data: str, data_root: str, mano_path: str,
                   results_dir: str | os.PathLike[str], *, progress: bool = False
                   ) -> NotebookContext:
    """Resolve a notebook's parameters (see :func:`hand_lib.data.overview.multiview_root`
    for ``data``/``data_root``) and create its result folders."""
    from hand_lib.data.overview import multiview_root

    settings = suite_settings(profile)
    root = multiview_root(data, profile, data_root, mano_path, progress=progress)
    results = Path(results_dir)
    ctx = NotebookContext(profile=profile, settings=settings, root=root, results=results,
                          runs=results / "runs", figures=results / "figures",
                          metrics=results / "metrics", mano_path=mano_path or "")
    for folder in (ctx.figures, ctx.metrics):
        folder.mkdir(parents=True, exist_ok=True)
    return ctx


@functools.lru_cache(maxsize=8)
def _baseline(root: str, image_size: int, mano_path: str) -> dict[str, Any]:
    from hand_lib.experiments.baselines import MEAN_HAND_ROWS, mean_hand_rows

    rows, _ = mean_hand_rows(root, image_size, mano_path, split="val")
    return {name: rows[name] for name in MEAN_HAND_ROWS}


def validation_baseline(ctx: NotebookContext, image_size: int | None = None
                        ) -> dict[str, dict[str, float]]:
    """The mean-hand rows on the validation split (the learning curves' line to beat)."""
    size = image_size or ctx.settings.image_size
    return _baseline(str(ctx.root), size, ctx.mano_path)


def learning_curve(ctx: NotebookContext, run_dir: str | os.PathLike[str], *,
                   metric: str | list[str] = "pa_mpjpe_mm", title: str = "learning curve",
                   image_size: int | None = None) -> tuple[Any, pd.DataFrame]:
    """The validation curve of a run (``val_metrics.csv``) against the mean hand on the same
    split, PA-MPJPE by default (its interval shaded).

    Returns:
        ``(figure, curve)``: the matplotlib figure and the curve as a DataFrame.
    """
    from hand_lib.viz.plots import plot_learning_curves

    path = Path(run_dir) / "val_metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the run has no validation log (was it trained with "
                                "a validation split?)")
    curve = pd.read_csv(path)
    mean_hand = validation_baseline(ctx, image_size)["mean hand (best constant rotation)"]
    column = "PA-MPJPE" if "pa_mpjpe" in (metric if isinstance(metric, str) else metric[0]) \
        else "MPJPE"
    band = (mean_hand[column], mean_hand[f"{column} lo"], mean_hand[f"{column} hi"])
    ylabel = f"{column} (mm), validation split"
    fig = plot_learning_curves(curve, metric=metric, baselines={"mean hand": band},
                               ylabel=ylabel, title=title)
    return fig, curve
