"""The suite's experiment layer: profiles, results-table metrics and files, the no-learning
baseline."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hand_lib.experiments import (
    METRIC_COLUMNS,
    ground_truth_vertices,
    metrics_row,
    suite_settings,
    training_config,
)
from hand_lib.experiments.evaluate import (
    pa_pck,
    results_table,
    training_seconds,
    write_results_table,
)
from hand_lib.mano import ManoLayer


def _hands(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, ManoLayer]:
    layer = ManoLayer(dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(n, 16, 3, generator=g, dtype=torch.float64)
    transl = torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64).expand(n, 3)
    out = layer(pose, transl=transl)
    return out.keypoints.numpy(), out.vertices.numpy(), layer


def test_training_config_resizes_the_original_schedule():
    quick = suite_settings("quick")
    cfg = training_config("s2hand_shape", quick)
    epochs = quick.epochs["s2hand_shape"]
    assert cfg.train.epochs == epochs and cfg.train.batch_size == quick.batch_size
    # quick: warm-up and a cosine over its own length, at the profile's learning-rate scale
    assert cfg.schedule.name == "cosine" and cfg.schedule.warmup_steps == quick.warmup_steps
    assert cfg.optim.name == "adam" and cfg.optim.lr == pytest.approx(1e-3 * quick.lr_scale)
    assert cfg.train.validate_every_steps == quick.validate_every_steps
    # with the original schedule the milestones keep their place: 30/60/90 of 120 epochs
    original = training_config("s2hand_shape", dataclasses.replace(quick, schedule="original",
                                                                   lr_scale=1.0))
    assert original.schedule.milestones == pytest.approx([epochs / 4, epochs / 2,
                                                          3 * epochs / 4])
    assert original.optim.lr == 1e-3
    with pytest.raises(ValueError, match="schedule"):
        training_config("s2hand_shape", dataclasses.replace(quick, schedule="step"))
    hamuco = training_config("hamuco", quick)
    assert hamuco.optim.name == "adamw" and hamuco.schedule.name == "cosine"
    assert hamuco.train.batch_size == quick.hamuco_batch_size
    full = training_config("s2hand_finetune", suite_settings("full"))
    assert full.train.epochs == 60 and full.schedule.milestones == (20, 40)
    assert training_config("supervised", quick, **{"optim.lr": 5e-4}).optim.lr == 5e-4
    with pytest.raises(ValueError, match="stage must be one of"):
        training_config("warmup", quick)
    with pytest.raises(ValueError, match="profile must be one of"):
        suite_settings("huge")


def test_metrics_row_perfect_and_shifted():
    joints, verts, _ = _hands()
    perfect = metrics_row(joints, joints, verts, verts)
    assert set(perfect) == set(METRIC_COLUMNS)
    for key in ("MPJPE", "PA-MPJPE", "N-JE", "PA-MPVPE"):
        assert perfect[key] == pytest.approx(0.0, abs=1e-6)
    assert perfect["F@5"] == perfect["F@15"] == pytest.approx(1.0)
    # float round-off after alignment (~1e-9 mm) can miss only the 0 mm threshold
    assert 1.0 - 0.5 / 99 - 1e-9 <= perfect["AUC"] <= 1.0
    # a pure translation: no error after root-centring or alignment
    moved = metrics_row(joints + 0.05, joints, verts + 0.05, verts)
    assert moved["MPJPE"] == pytest.approx(0.0, abs=1e-6)
    assert moved["PA-MPVPE"] == pytest.approx(0.0, abs=1e-6)
    # every joint but the wrist 10 mm off along x: MPJPE = 20/21 * 10 mm
    shifted = joints.copy()
    shifted[:, 1:, 0] += 0.010
    row = metrics_row(shifted, joints)
    assert row["MPJPE"] == pytest.approx(10.0 * 20 / 21, rel=1e-6)
    assert math.isnan(row["PA-MPVPE"]) and math.isnan(row["F@5"])


def test_pa_pck_curve():
    joints, _, _ = _hands()
    curve = pa_pck(joints, joints)
    assert len(curve["thresholds_mm"]) == 100 and curve["thresholds_mm"][-1] == 50.0
    assert 1.0 - 0.5 / 99 - 1e-9 <= curve["auc"] <= 1.0  # all but perhaps the 0 mm threshold
    json.dumps(curve)  # JSON-ready


def test_ground_truth_vertices_from_hanco_fits():
    """HanCo's per-camera fit (48 pose + 10 shape + 3 translation) gives the mesh."""
    layer = ManoLayer()
    g = torch.Generator().manual_seed(1)
    fit = torch.cat([0.2 * torch.randn(2, 48, generator=g), torch.randn(2, 10, generator=g),
                     torch.tensor([[0.0, 0.01, 0.5], [0.02, 0.0, 0.7]])], dim=1)
    expected = layer(fit[:, :48].view(2, 16, 3), fit[:, 48:58], fit[:, 58:]).vertices
    np.testing.assert_allclose(ground_truth_vertices(fit.numpy(), layer),
                               expected.reshape(2, -1, 3).numpy(), atol=1e-6)


def test_results_table_files(tmp_path):
    rows = {"a": {"MPJPE": 12.345, "PA-MPJPE": 6.5, "train s": 10.0},
            "b": {"MPJPE": 9.0, "N-JE": 7.25, "AUC": 0.8125}}
    table = results_table(rows)
    assert list(table.columns) == [*METRIC_COLUMNS, "train s"]
    assert math.isnan(table.loc["b", "PA-MPJPE"])
    csv, md = write_results_table(table, tmp_path / "table", note="a note")
    back = pd.read_csv(csv, index_col=0)
    np.testing.assert_allclose(back.to_numpy(dtype=float), table.to_numpy(dtype=float))
    text = md.read_text()
    assert "| a | 12.35 | 6.50 |" in text and "0.812" in text and text.rstrip().endswith("a note")


def test_training_seconds(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no training log"):
        training_seconds(run)
    run.mkdir()
    (run / "metrics.csv").write_text("step,total,seconds\n1,0.5,1.5\n2,0.4,3.25\n")
    assert training_seconds(run) == 3.25


def test_triangulated_pseudo_labels_recover_the_truth(synthetic_smoke_root, tmp_path):
    """Noise-free labels of every view triangulate to the ground truth in every camera."""
    import shutil

    from hand_lib.experiments.baselines import triangulated_pseudo_labels
    from hand_lib.pseudo.hanco_labels import hanco_projections
    from hand_lib.pseudo.labels import write_hanco_label

    root = tmp_path / "exact"
    shutil.copytree(synthetic_smoke_root, root, ignore=shutil.ignore_patterns(
        "rgb_2D_keypoints", "rgb_merged", "mask_hand"))
    test_seqs = [int(d.name) for d in (root / "xyz").iterdir() if int(d.name) >= 1200]
    assert test_seqs
    for seq in test_seqs:
        for xyz in sorted((root / "xyz" / f"{seq:04d}").glob("*.json")):
            frame = int(xyz.stem)
            uv, *_ = hanco_projections(root, seq, frame)
            for cam in range(8):
                path = root / "rgb_2D_keypoints" / f"{seq:04d}" / f"cam{cam}" / xyz.name
                write_hanco_label(path, uv[cam], np.ones(21))
    tri = triangulated_pseudo_labels(root)
    assert tri["valid"].all()
    row = metrics_row(tri["pred_joints"], tri["joints_cam"])
    assert row["MPJPE"] < 1e-3 and row["PA-MPJPE"] < 1e-3


def test_a_stage_trains_identically_whatever_ran_before(synthetic_smoke_root, tmp_path):
    """The initialisation is seeded by the stage's seed, not by the global RNG state that
    earlier cells of a notebook happened to leave (the S2HAND stages were not)."""
    from hand_lib.experiments.s2hand import train_s2hand_stage

    settings = suite_settings("smoke")
    curves = []
    for i in range(2):
        torch.rand(i + 1)  # earlier work consumed a different amount of randomness
        run = train_s2hand_stage("s2hand_shape", synthetic_smoke_root, tmp_path / str(i),
                                 settings, **{"train.epochs": 1})  # fmt: skip
        curves.append(pd.read_csv(run.out_dir / "metrics.csv").drop(columns=["seconds"]))
    pd.testing.assert_frame_equal(curves[0], curves[1])
