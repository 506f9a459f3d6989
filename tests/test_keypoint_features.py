"""The suite's additions to the single-view networks: narrow encoders, the keypoint head and
its lifter, 6D global rotations starting upright, the heatmap cross-entropy, the gradient
scaling between encoder and regressor."""

from __future__ import annotations

import pytest
import torch

from hand_lib.losses import heatmap_cross_entropy_loss, heatmap_integral_loss
from hand_lib.models import S2HandConfig, S2HandNet
from hand_lib.models.encoders import ImageEncoder
from hand_lib.models.keypoint_head import KeypointHead, normalized_keypoints
from hand_lib.models.s2hand import scale_gradient


def test_narrow_encoder_channels_and_errors() -> None:
    enc = ImageEncoder("resnet18", width=0.5)
    assert enc.channels == (32, 64, 128, 256)
    levels = enc(torch.rand(2, 3, 64, 64)).levels
    assert [tuple(x.shape[-2:]) for x in levels] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    full = sum(p.numel() for p in ImageEncoder("resnet18").parameters())
    half = sum(p.numel() for p in enc.parameters())
    assert 0.2 < half / full < 0.3  # channels halved: about a quarter of the weights
    with pytest.raises(ValueError, match="width"):
        ImageEncoder("efficientnet_b0", width=0.5)
    with pytest.raises(ValueError, match="stem channels"):
        ImageEncoder("resnet18", width=0.05)


def test_keypoint_head_soft_argmax_is_in_input_pixels() -> None:
    head = KeypointHead((8, 16, 32), width=8)
    with torch.no_grad():  # a head whose logits are all zero
        for p in head.parameters():
            p.zero_()
        head.out[-1].bias.fill_(0.0)
    levels = [torch.zeros(1, 8, 16, 16), torch.zeros(1, 16, 8, 8), torch.zeros(1, 32, 4, 4)]
    out = head(levels, (64, 64))
    assert out.logits.shape == (1, 21, 16, 16)
    # uniform heatmaps: the soft-argmax is the image centre, (W - 1) / 2
    torch.testing.assert_close(out.keypoints_2d, torch.full((1, 21, 2), 31.5))


def test_heatmap_cross_entropy_is_lowest_at_the_target() -> None:
    h = w = 16
    target = torch.tensor([[[22.0, 37.0]]]).expand(2, 21, 2).clone()
    ys, xs = torch.meshgrid(torch.arange(h) * 4 + 1.5, torch.arange(w) * 4 + 1.5,
                            indexing="ij")

    def logits_at(x: float, y: float) -> torch.Tensor:
        d2 = (xs - x) ** 2 + (ys - y) ** 2
        return (-d2 / (2 * 4.0**2)).expand(2, 21, h, w).clone()

    best = heatmap_cross_entropy_loss(logits_at(22.0, 37.0), target, (64, 64))
    for dx, dy in ((4, 0), (0, -8), (10, 10)):
        worse = heatmap_cross_entropy_loss(logits_at(22.0 + dx, 37.0 + dy), target, (64, 64))
        assert worse > best + 0.1
    conf = torch.zeros(2, 21)
    assert heatmap_cross_entropy_loss(logits_at(0, 0), target, (64, 64), conf) == 0
    logits = torch.zeros(2, 21, h, w, requires_grad=True)
    heatmap_cross_entropy_loss(logits, target, (64, 64)).backward()
    assert logits.grad.abs().sum() > 0  # a flat heatmap still gets a gradient
    with pytest.raises(ValueError, match=r"\(B, 21, h, w\)"):
        heatmap_cross_entropy_loss(torch.zeros(2, 20, h, w), target, (64, 64))


def test_scale_gradient() -> None:
    x = torch.ones(3, requires_grad=True)
    for factor, expected in ((1.0, 1.0), (0.25, 0.25), (0.0, None)):
        x.grad = None
        y = scale_gradient(x, factor)
        assert torch.equal(y, x)
        if expected is None:
            assert not y.requires_grad
        else:
            y.sum().backward()
            assert torch.allclose(x.grad, torch.full((3,), expected))


def _net(**changes: object) -> S2HandNet:
    config = S2HandConfig(encoder="resnet18", encoder_width=0.25, hidden=32, texture=False,
                          hourglass=False, **changes)
    torch.manual_seed(0)
    return S2HandNet(config)


def test_rot6d_network_starts_upright_with_the_palm_to_the_camera() -> None:
    net = _net(rotation="rot6d", keypoint_features=True)
    K = torch.tensor([[150.0, 0.0, 31.5], [0.0, 150.0, 31.5], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    out = net(torch.rand(2, 3, 64, 64), K)
    joints = out.joints_2d[0]
    up = joints[9] - joints[0]
    assert up[1] < -5 * up[0].abs()  # the middle finger's base is straight above the wrist
    assert joints[5, 0] > joints[17, 0]  # the index side (thumb side) on the right
    torch.testing.assert_close(torch.det(out.global_rotmat), torch.ones(2), atol=1e-5, rtol=0)
    assert out.keypoints is not None and out.keypoints.keypoints_2d.shape == (2, 21, 2)


def test_encoder_learns_from_the_keypoint_head_only_when_asked() -> None:
    K = torch.tensor([[150.0, 0.0, 31.5], [0.0, 150.0, 31.5], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    images = torch.rand(2, 3, 64, 64)
    for factor, reaches in ((0.0, False), (1.0, True)):
        net = _net(rotation="rot6d", keypoint_features=True, regressor_gradient=factor)
        with torch.no_grad():  # the correction head starts at zero; give it weights
            net.regressor[-1].weight.normal_(std=1e-2)
        out = net(images, K)
        out.joints.square().sum().backward()  # a 3D loss only
        grads = [p.grad for p in net.encoder.parameters() if p.grad is not None]
        assert bool(grads and any(g.abs().sum() > 0 for g in grads)) == reaches
        assert all(p.grad is None for p in net.keypoint_head.parameters())  # detached kp
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in net.lifter.parameters())


def test_normalized_keypoints_and_integral_loss_agree_on_units() -> None:
    kp = torch.tensor([[[31.5, 31.5], [63.5, -0.5]]])
    torch.testing.assert_close(normalized_keypoints(kp, (64, 64)),
                               torch.tensor([[0.0, 0.0, 0.5, -0.5]]))
    target = torch.zeros(1, 21, 2)
    pred = torch.zeros(1, 21, 2)
    pred[..., 0] = 3.0
    assert float(heatmap_integral_loss(pred, target)) == pytest.approx(3.0)
