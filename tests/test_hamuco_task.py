"""HaMuCo task and suite glue: the terms, missing views, both rotation modes, a learning test,
and a short run on the smoke dataset (train, resume, evaluate). Tiny images and a small
network keep it fast on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from hand_lib.experiments import (
    METRIC_COLUMNS,
    error_vs_views,
    evaluate_hamuco,
    hamuco_metrics,
    hamuco_predictions,
    suite_settings,
    train_hamuco,
)
from hand_lib.geometry import axis_angle_to_matrix
from hand_lib.losses import HaMuCoLossWeights
from hand_lib.models import HaMuCoConfig, HaMuCoNet, normalized_to_pixels
from hand_lib.tasks import HaMuCoTask

SIZE = 64
SMALL = HaMuCoConfig(token_dim=32, embed_dim=16, head_hidden=64, global_grid=2, head_token_dim=8,
                     mlp_ratio=1.0, dropout=0.0, view_mask_prob=0.0)  # fmt: skip
TERMS = {"keypoint_2d_single", "keypoint_2d_cross", "multiview_consistency", "distillation",
         "shape_prior", "pose_prior_single", "pose_prior_cross"}  # fmt: skip
QUIET = {"train.progress_bar": False, "train.log_every_steps": 1}


def rotations(B: int, N: int, seed: int = 0) -> torch.Tensor:
    """(B, N, 3, 3) random camera rotations."""
    gen = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(B, N, 3, generator=gen))


def make_batch(B: int = 2, N: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    M = torch.eye(4).repeat(B, N, 1, 1)
    M[..., :3, :3] = rotations(B, N, seed)
    M[..., 2, 3] = 0.6
    return {
        "image": torch.rand(B, N, 3, SIZE, SIZE, generator=gen),
        "pseudo_2d": SIZE / 2 + 10 * torch.randn(B, N, 21, 2, generator=gen),
        "pseudo_conf": 0.5 + 0.5 * torch.rand(B, N, 21, generator=gen),
        "view_mask": torch.ones(B, N, dtype=torch.bool),
        "M": M,
    }


@pytest.fixture(scope="module")
def net() -> HaMuCoNet:
    torch.manual_seed(0)
    return HaMuCoNet(SMALL)


@pytest.mark.parametrize("rotation", ["svd", "calibrated"])
def test_terms_present_finite_and_differentiable(net, rotation):
    task = HaMuCoTask(net, rotation=rotation).train()
    for step in (0, 1):  # both consistency phases
        terms = task.training_step(make_batch(), step)
        assert set(terms) == TERMS
        for name, value in terms.items():
            assert value.ndim == 0 and torch.isfinite(value), name
    net.zero_grad()
    sum(terms.values()).backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert float(net.single_head[-1].weight.grad.abs().sum()) > 0


def test_terms_are_weighted(net):
    task = HaMuCoTask(net).eval()
    batch = make_batch()
    base = task.training_step(batch, 0)
    weights = HaMuCoLossWeights(distillation=3.0, pose_prior_cross=0.0)
    other = HaMuCoTask(net, weights=weights).eval().training_step(batch, 0)
    torch.testing.assert_close(other["distillation"], 3.0 * base["distillation"])
    torch.testing.assert_close(other["keypoint_2d_single"], base["keypoint_2d_single"])
    assert float(other["pose_prior_cross"].detach()) == 0.0


def test_calibrated_needs_extrinsics(net):
    batch = make_batch()
    del batch["M"]
    with pytest.raises(KeyError, match='"M"'):
        HaMuCoTask(net, rotation="calibrated").training_step(batch, 0)
    with pytest.raises(ValueError, match="rotation must be one of"):
        HaMuCoTask(net, rotation="triangulated")  # type: ignore[arg-type]


def test_calibrated_consistency_uses_the_relative_rotations(net):
    """The calibrated term differs from the SVD one, and depends on M (rotating every
    camera by the same world rotation changes nothing: only relative rotations count)."""
    batch = make_batch(seed=3)
    task = HaMuCoTask(net, rotation="calibrated").eval()
    calibrated = task.training_step(batch, 0)["multiview_consistency"]
    svd = HaMuCoTask(net, rotation="svd").eval().training_step(batch, 0)["multiview_consistency"]
    assert not torch.allclose(calibrated, svd)
    turned = dict(batch)
    turned["M"] = batch["M"].clone()
    world = axis_angle_to_matrix(torch.tensor([0.3, -1.1, 0.7]))
    turned["M"][..., :3, :3] = batch["M"][..., :3, :3] @ world.T
    torch.testing.assert_close(task.training_step(turned, 0)["multiview_consistency"],
                               calibrated, rtol=1e-4, atol=1e-6)  # fmt: skip
    other = dict(batch)
    other["M"] = batch["M"].clone()
    other["M"][..., :3, :3] = rotations(2, 3, seed=7)
    assert not torch.allclose(task.training_step(other, 0)["multiview_consistency"], calibrated)


@pytest.mark.parametrize("rotation", ["svd", "calibrated"])
def test_missing_views_contribute_nothing(net, rotation):
    """Changing a missing view's image, labels and extrinsics leaves every term unchanged,
    also with samples of different view patterns and a sample with a single view."""
    task = HaMuCoTask(net, rotation=rotation).train()
    batch = make_batch(B=3, N=4)
    batch["view_mask"] = torch.tensor([[True, False, True, True], [True, True, True, True],
                                       [False, False, True, False]])  # fmt: skip
    changed = {k: v.clone() for k, v in batch.items()}
    missing = ~batch["view_mask"]
    gen = torch.Generator().manual_seed(5)
    changed["image"][missing] = torch.rand(int(missing.sum()), 3, SIZE, SIZE, generator=gen)
    changed["pseudo_2d"][missing] = 50 * torch.randn(int(missing.sum()), 21, 2, generator=gen)
    changed["pseudo_conf"][missing] = 1.0
    changed["M"][missing] = torch.eye(4)
    for step in (0, 1):
        a = task.training_step(batch, step)
        b = task.training_step(changed, step)
        for name in TERMS:
            torch.testing.assert_close(a[name], b[name], msg=name)
            assert torch.isfinite(a[name]), name


def test_single_view_frames_have_no_consistency(net):
    task = HaMuCoTask(net).eval()
    batch = make_batch(B=2, N=3)
    batch["view_mask"] = torch.tensor([[True, False, False], [False, True, False]])
    terms = task.training_step(batch, 0)
    assert float(terms["multiview_consistency"]) == 0.0
    assert torch.isfinite(terms["distillation"])


def test_labels_enter_as_normalised_crop_coordinates(net):
    """Pseudo labels equal to the prediction's own pixels give a zero 2D term."""
    task = HaMuCoTask(net).eval()
    batch = make_batch()
    with torch.no_grad():
        out = task(batch)
    batch["pseudo_2d"] = normalized_to_pixels(out.single_view.keypoints_2d, (SIZE, SIZE))
    terms = task.training_step(batch, 0)
    assert float(terms["keypoint_2d_single"].detach()) < 1e-6
    assert float(terms["keypoint_2d_cross"].detach()) > 1e-4  # the cross-view output differs


def test_predict_shapes_and_fusion(net):
    task = HaMuCoTask(net).eval()
    batch = make_batch(B=2, N=3)
    batch["view_mask"] = torch.tensor([[True, True, True], [True, False, True]])
    for fusion in ("svd", "calibrated"):
        out = task.predict(batch, fusion)
        assert out["joints_fused"].shape == (2, 3, 21, 3)
        assert out["vertices_single"].shape == (2, 3, 778, 3)
        assert out["keypoints_2d_cross"].shape == (2, 3, 21, 2)
        assert torch.isnan(out["joints_fused"][1, 1]).all()
        assert torch.isfinite(out["joints_fused"][0]).all()
        torch.testing.assert_close(out["joints_fused"][..., 9, :][out["view_mask"]],
                                   torch.zeros(5, 3), atol=1e-6, rtol=0)  # fmt: skip
    # calibrated: one hand, seen in every view's axes: x_world = R_v^T x_v is the same
    out = task.predict(batch, "calibrated")
    R = batch["M"][0, :, :3, :3]
    world = out["joints_fused"][0] @ R  # row vectors: x @ R = R^T x
    torch.testing.assert_close(world[1], world[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(world[2], world[0], atol=1e-5, rtol=0)


def test_a_few_steps_reduce_the_2d_loss():
    """A learning test: Adam on one fixed batch whose labels a hand can explain (the
    network's own projection, scaled and shifted: a change of weak-perspective camera)."""
    torch.manual_seed(0)
    task = HaMuCoTask(HaMuCoNet(SMALL))
    batch = make_batch(B=1, N=2, seed=1)
    with torch.no_grad():
        out = task.eval()(batch)
        target = 0.6 * out.single_view.keypoints_2d + 0.15
        batch["pseudo_2d"] = normalized_to_pixels(target, (SIZE, SIZE))
        batch["pseudo_conf"] = torch.ones(1, 2, 21)
    task.train()  # no dropout or view masking in SMALL: train mode is deterministic
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)

    def loss_2d() -> float:
        with torch.no_grad():
            terms = task.training_step(batch, 0)
        return float(terms["keypoint_2d_single"] + terms["keypoint_2d_cross"])

    before = loss_2d()
    for step in range(12):
        loss = sum(task.training_step(batch, step).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = loss_2d()
    assert after < 0.5 * before, (before, after)


# --------------------------------------------------------------------------- suite glue


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, synthetic_smoke_root):
    runs = tmp_path_factory.mktemp("hamuco_runs")
    settings = suite_settings("smoke")
    run = train_hamuco(synthetic_smoke_root, runs, settings, max_steps=3, **QUIET)
    return run, runs, settings, synthetic_smoke_root


def test_train_hamuco_writes_a_checkpoint_and_resumes(smoke_run):
    run, runs, settings, root = smoke_run
    assert run.summary.steps == 3 and run.summary.bad_steps == 0
    assert run.checkpoint is not None and run.checkpoint.is_file()
    assert run.out_dir == runs / "hamuco"
    assert set(TERMS) <= set(run.losses().columns)
    logged = len(run.losses())
    again = train_hamuco(root, runs, settings, max_steps=3, **QUIET)
    assert again.summary.steps == 3  # nothing retrained
    assert len(again.losses()) == logged
    for (name, a), b in zip(run.task.state_dict().items(), again.task.state_dict().values(),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, msg=name)


def test_evaluate_hamuco_rows(smoke_run):
    run, _, settings, root = smoke_run
    rows = evaluate_hamuco(run, root, settings, max_samples=2)
    assert set(rows) == {"single_view", "cross_view", "fused"}
    for name, row in rows.items():
        assert set(METRIC_COLUMNS) <= set(row), name
        for column in METRIC_COLUMNS:
            assert math.isfinite(row[column]), (name, column)
        assert row["views"] == 8.0


def test_fewer_views_and_error_vs_views(smoke_run):
    run, _, settings, root = smoke_run
    preds = hamuco_predictions(run, root, settings, num_views=3, max_samples=3, seed=1)
    assert (preds["pred_view_mask"].sum(1) == 3).all()
    again = hamuco_predictions(run, root, settings, num_views=3, max_samples=3, seed=1)
    assert (again["pred_view_mask"] == preds["pred_view_mask"]).all()  # seeded
    rows = hamuco_metrics(preds, vertices=False)
    assert rows["fused"]["views"] == 3.0 and math.isnan(rows["fused"]["PA-MPVPE"])
    table = error_vs_views(run, root, settings, views=[1, 2, 8], max_samples=2)
    assert list(table.index) == [1, 2, 8]
    outputs = ["single_view", "cross_view", "fused"]
    assert list(table.columns) == [f"{o}{b}" for o in outputs for b in ("", " lo", " hi")]
    assert table.notna().all().all()
    for o in outputs:  # the interval holds the mean
        assert (table[f"{o} lo"] <= table[o] + 1e-9).all()
        assert (table[o] <= table[f"{o} hi"] + 1e-9).all()
    # one view: fusion has nothing to add
    assert table.loc[1, "fused"] == pytest.approx(table.loc[1, "cross_view"], rel=1e-4)
    # paired: every row is measured on the same target views
    assert table["single_view"].to_numpy() == pytest.approx(table.loc[1, "single_view"], rel=1e-5)
    assert table.loc[8, "cross_view"] != table.loc[1, "cross_view"]
