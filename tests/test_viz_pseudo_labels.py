"""Pseudo-label figures and the best/worst view selection (arrays in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hand_lib.pseudo.report import extreme_views
from hand_lib.viz.plots import (
    plot_error_histograms,
    plot_label_overlays,
    plot_pseudo_label_comparison,
    save_figure,
)


def test_extreme_views_rank_by_mean_error_and_skip_views_without_a_hand():
    err = np.full((3, 2, 21), 5.0)
    err[1, 0] = 1.0
    err[2, 1] = 50.0
    err[0, 1, :15] = np.nan  # 6 detected joints: not ranked
    err[2, 1, 0] = np.nan
    best, worst = extreme_views(err, n=2)
    assert best[0] == (1, 0) and worst[0] == (2, 1)
    assert (0, 1) not in best + worst and len(best) == len(worst) == 2


def test_pseudo_label_figures(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(20, 40, (3, 21, 2))
    labels = gt + rng.normal(0, 2, gt.shape)
    conf = rng.uniform(0, 1, (3, 21))
    conf[0, 3] = 0.0
    fig = plot_label_overlays(rng.uniform(0, 1, (3, 64, 64, 3)), labels, gt, conf,
                              ["a", "b", "c"])
    assert len(save_figure(fig, tmp_path / "overlays")) == 2
    err = {"raw": rng.gamma(2, 4, 500), "reweighted": np.r_[rng.gamma(2, 3, 499), np.nan]}
    fig = plot_error_histograms(err, {"raw": np.ones(500), "reweighted": rng.uniform(0, 1, 500)})
    assert len(fig.axes) == 2
    summary = pd.DataFrame({"raw": {"weighted_error_2d_px": 8.0, "mean_error_2d_px": 11.0,
                                    "mean_error_3d_mm": 7.0, "joint_detection_rate": 0.94},
                            "reweighted": {"weighted_error_2d_px": 5.0, "mean_error_2d_px": 8.0,
                                           "mean_error_3d_mm": 7.1,
                                           "joint_detection_rate": 0.86}})
    fig = plot_pseudo_label_comparison(summary)
    assert len(fig.axes) == 4
