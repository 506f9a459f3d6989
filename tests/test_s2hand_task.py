"""S2HAND stages: which terms count, which parameters train, and that a stage learns."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hand_lib.geometry import project_points
from hand_lib.losses import S2HandLossWeights
from hand_lib.models import S2HandConfig, S2HandNet
from hand_lib.tasks import S2HandTask

SMALL = S2HandConfig(encoder="resnet18", hidden=64, hourglass_width=32, heatmap_size=16)
SIZE = 64


def _batch(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    K = torch.tensor([[2.0 * SIZE, 0, SIZE / 2], [0, 2.0 * SIZE, SIZE / 2], [0, 0, 1]])
    return {
        "image": torch.rand(batch, 3, SIZE, SIZE, generator=g),
        "K": K.expand(batch, 3, 3).clone(),
        "pseudo_2d": SIZE / 2 + 12 * torch.randn(batch, 21, 2, generator=g),
        "pseudo_conf": 0.5 + 0.5 * torch.rand(batch, 21, generator=g),
    }


@pytest.fixture(scope="module")
def net() -> S2HandNet:
    torch.manual_seed(0)
    return S2HandNet(SMALL)


@pytest.mark.parametrize(
    "stage,expected",
    [
        ("shape", {"keypoint_2d", "bone_direction", "scale_anchor", "angle_prior"}),
        ("kp", {"heatmap_integral"}),
        ("finetune", {"keypoint_2d", "bone_direction", "scale_anchor", "angle_prior",
                      "heatmap_integral", "keypoint_consistency", "photometric", "mean_colour",
                      "texture_outlier", "laplacian"}),  # fmt: skip
    ],
)
def test_terms_per_stage(net, stage, expected):
    task = S2HandTask(net, stage)
    terms = task.training_step(_batch(), step=0)
    assert set(terms) == expected
    for name, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), name


def test_terms_are_weighted(net):
    batch = _batch()
    base = S2HandTask(net, "shape").training_step(batch, 0)
    doubled = S2HandLossWeights(keypoint_2d=2e-3)
    other = S2HandTask(net, "shape", weights=doubled).training_step(batch, 0)
    torch.testing.assert_close(other["keypoint_2d"], 2 * base["keypoint_2d"])
    torch.testing.assert_close(other["bone_direction"], base["bone_direction"])


def test_free_shape_adds_the_shape_regulariser():
    cfg = dataclasses.replace(SMALL, use_mean_shape=False, hourglass=False, texture=False)
    terms = S2HandTask(S2HandNet(cfg), "shape").training_step(_batch(), 0)
    assert "shape_regularizer" in terms


def test_stage_freezes_the_other_parts(net):
    S2HandTask(net, "kp")
    assert all(p.requires_grad for p in net.hourglass.parameters())
    assert not any(p.requires_grad for p in net.encoder.parameters())
    S2HandTask(net, "shape")
    assert not any(p.requires_grad for p in net.hourglass.parameters())
    assert all(p.requires_grad for p in net.regressor.parameters())
    S2HandTask(net, "finetune")
    assert all(p.requires_grad for p in net.parameters() if p is not None)


def test_stage_needs_its_heads():
    cfg = dataclasses.replace(SMALL, hourglass=False)
    with pytest.raises(ValueError, match="needs the network's hourglass"):
        S2HandTask(S2HandNet(cfg), "kp")
    with pytest.raises(ValueError, match="stage must be one of"):
        S2HandTask(S2HandNet(cfg), "warmup")


def test_photometric_ignores_the_render_background(net):
    """The same-background fix: the render's background colour does not change the loss."""
    batch = _batch()
    black = S2HandTask(net, "finetune", background=(0.0, 0.0, 0.0)).eval()
    white = S2HandTask(net, "finetune", background=(1.0, 1.0, 1.0)).eval()
    with torch.no_grad():
        a, b = black.training_step(batch, 0), white.training_step(batch, 0)
    torch.testing.assert_close(a["photometric"], b["photometric"], atol=1e-7, rtol=1e-4)


def test_downsampled_render_matches_the_pooled_full_render(net):
    """render_downsample: the camera rescaled with pixel centres kept, so the small render
    is the full render average-pooled (up to the soft edge); the loss compares like with
    like; a factor that does not divide the crop is an error."""
    from hand_lib.tasks.s2hand import S2HandTask as Task

    batch = _batch(batch=3)
    task = Task(net, "finetune", render_downsample=2).eval()
    with torch.no_grad():
        out = net(batch["image"], batch["K"], run_hourglass=False, run_texture=True)
        full = task.render(out, batch["K"], (SIZE, SIZE)).alpha
        K = batch["K"].clone()
        K[:, :2, :2] /= 2
        K[:, :2, 2] = (K[:, :2, 2] + 0.5) / 2 - 0.5
        small = task.render(out, K, (SIZE // 2, SIZE // 2), sigma=task.sigma / 4).alpha
        wide = task.render(out, K, (SIZE // 2, SIZE // 2)).alpha  # sigma not rescaled
    pooled = torch.nn.functional.avg_pool2d(full[:, None], 2)[:, 0]
    assert (full > 0.5).sum() > 500  # the hands are in view
    error = (pooled - small).abs().mean() / pooled.mean()
    assert error < 0.1  # measured 0.064; only the soft edges differ
    assert (pooled - wide).abs().mean() / pooled.mean() > 3 * error
    # a principal point off by half a small pixel is measurably worse
    K[:, :2, 2] += 0.5
    with torch.no_grad():
        shifted = task.render(out, K, (SIZE // 2, SIZE // 2), sigma=task.sigma / 4).alpha
    assert (pooled - shifted).abs().mean() / pooled.mean() > 2 * error
    with torch.no_grad():
        terms = task.training_step(batch, 0)
    assert torch.isfinite(terms["photometric"])
    with pytest.raises(ValueError, match="divide"):
        Task(net, "finetune", render_downsample=3).training_step(batch, 0)
    with pytest.raises(ValueError, match="render_downsample"):
        Task(net, "finetune", render_downsample=0)


def test_render_samples_renders_a_subset_of_the_batch(net):
    """render_samples=n: the photometric term is the full task's term on the first n crops;
    the texture outlier term still sees the whole batch."""
    batch = _batch(batch=4)
    first = {k: v[:2] for k, v in batch.items()}
    subset = S2HandTask(net, "finetune", render_samples=2).eval()
    whole = S2HandTask(net, "finetune").eval()
    with torch.no_grad():
        a, b, c = (subset.training_step(batch, 0), whole.training_step(first, 0),
                   whole.training_step(batch, 0))
    torch.testing.assert_close(a["photometric"], b["photometric"])
    torch.testing.assert_close(a["texture_outlier"], c["texture_outlier"])
    assert not torch.allclose(a["photometric"], c["photometric"])
    with pytest.raises(ValueError, match="render_samples"):
        S2HandTask(net, "finetune", render_samples=0)


def test_shape_stage_fits_consistent_pseudo_labels():
    """A few Adam steps on one batch whose labels a hand can explain cut the 2D error."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, hourglass=False, texture=False)
    net = S2HandNet(cfg)
    task = S2HandTask(net, "shape")
    batch = _batch(batch=2, seed=1)
    with torch.no_grad():  # labels = a real hand, posed and projected
        pca = torch.randn(2, cfg.num_pca) * 0.5
        _, joints, _ = net.pose_hand(pca, torch.tensor([[2.0, 0.3, 0.2], [1.8, -0.2, 0.4]]),
                                     torch.zeros(2, 10), torch.ones(2),
                                     torch.tensor([[0.01, 0.0, 0.6], [-0.02, 0.01, 0.7]]))
        batch["pseudo_2d"] = project_points(joints, batch["K"])
        batch["pseudo_conf"] = torch.ones(2, 21)
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-3)
    task.train()

    def error() -> float:
        with torch.no_grad():
            task.eval()
            e = (task(batch).joints_2d - batch["pseudo_2d"]).norm(dim=-1).mean()
            task.train()
            return float(e)

    before = error()
    for step in range(60):
        loss = sum(task.training_step(batch, step).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.5 * before, (before, after)


def test_scale_anchor_targets_the_models_own_bone(net):
    """The anchor is the network's hand model's middle MCP -> PIP bone (the open hand's
    0.045 m), not S2HAND's constant for MANO (0.0282 m): at the mean hand the anchor term
    is zero, so it does not shrink every predicted hand by 0.0282 / 0.045."""
    from hand_lib.losses import SCALE_ANCHOR_BONE, bone_length_anchor_loss
    from hand_lib.tasks.s2hand import anchor_bone_length

    length = anchor_bone_length(net)
    joints = net.mano(torch.zeros(2, 16, 3)).keypoints
    p, q = SCALE_ANCHOR_BONE
    assert length == pytest.approx(float((joints[0, q] - joints[0, p]).norm()), rel=1e-6)
    assert abs(length - 0.0282) > 0.005  # the open hand's proportions differ from MANO's
    assert S2HandTask(net, "shape").anchor_length_m == pytest.approx(length)
    assert bone_length_anchor_loss(joints, target_length_m=length).item() < 1e-6
    assert bone_length_anchor_loss(joints, target_length_m=0.0282).item() > 1e-3
