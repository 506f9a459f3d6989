"""S2HAND network: conventions of the hand regressor, heads, soft-argmax and test-time fitting."""

from __future__ import annotations

import pytest
import torch

from hand_lib.geometry import project_points
from hand_lib.models import ImageEncoder, S2HandConfig, S2HandNet, fit_to_keypoints, soft_argmax

SMALL = S2HandConfig(encoder="resnet18", hidden=64, hourglass_width=32, heatmap_size=16)


def _K(batch: int, size: int = 64) -> torch.Tensor:
    K = torch.tensor([[2.0 * size, 0.0, size / 2], [0.0, 2.0 * size, size / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


@pytest.fixture(scope="module")
def net() -> S2HandNet:
    torch.manual_seed(0)
    return S2HandNet(SMALL).eval()


def test_output_shapes_and_initial_hand(net):
    images = torch.rand(2, 3, 64, 64)
    out = net(images, _K(2))
    assert out.vertices.shape == (2, 778, 3) and out.joints.shape == (2, 21, 3)
    assert out.face_colors.shape == (2, 1552, 3) and out.lighting.shape == (2, 11)
    assert out.hourglass.keypoints_2d.shape == (2, 21, 2)
    assert out.hourglass.heatmaps[0].shape == (2, 21, 16, 16)
    # initialised as in the paper: scale ~0.95, hand 0.65 m in front of the camera
    torch.testing.assert_close(out.scale, torch.full((2,), 0.95), atol=0.02, rtol=0)
    # the depth is focal-normalised: f = 2 image widths here, the reference is 2.5
    torch.testing.assert_close(out.transl[:, 2], torch.full((2,), 0.65 * 2.0 / 2.5), atol=0.02,
                               rtol=0)
    # the middle MCP is the anchor: it sits exactly at transl
    torch.testing.assert_close(out.joints[:, 9], out.transl)
    torch.testing.assert_close(out.joints_2d, project_points(out.joints, _K(2)))
    # a 64 px crop with f = 128 px at 0.52 m: the hand (~0.18 m) spans ~45 px, in view
    assert out.joints_2d.min() > -16 and out.joints_2d.max() < 80
    assert torch.all((out.face_colors >= 0) & (out.face_colors <= 1))
    assert torch.all(out.lighting[:, :8] > 0) and torch.all(out.lighting[:, :8] < 1)
    assert torch.all(out.betas == 0)  # the released configs use the mean shape


def test_scale_multiplies_the_hand_about_its_anchor(net):
    pca = torch.zeros(1, SMALL.num_pca)
    rot = torch.tensor([[0.3, -0.2, 0.1]])
    betas = torch.zeros(1, 10)
    transl = torch.tensor([[0.01, -0.02, 0.7]])
    _, j1, _ = net.pose_hand(pca, rot, betas, torch.tensor([1.0]), transl)
    _, j2, _ = net.pose_hand(pca, rot, betas, torch.tensor([2.0]), transl)
    torch.testing.assert_close(j2 - transl[:, None], 2 * (j1 - transl[:, None]))


def test_gradients_reach_every_head():
    torch.manual_seed(0)
    net = S2HandNet(SMALL).train()
    out = net(torch.rand(2, 3, 64, 64), _K(2))
    loss = (
        out.joints_2d.mean() + out.face_colors.mean() + out.lighting.mean()
        + out.hourglass.keypoints_2d.mean()
    )  # fmt: skip
    loss.backward()
    for name, module in [("encoder", net.encoder), ("regressor", net.regressor),
                         ("texture", net.texture_head), ("hourglass", net.hourglass)]:  # fmt: skip
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_free_shape_when_not_forced():
    torch.manual_seed(0)
    net = S2HandNet(S2HandConfig(**{**SMALL.__dict__, "use_mean_shape": False,
                                    "hourglass": False, "texture": False}))  # fmt: skip
    with torch.no_grad():
        net.regressor[-1].bias[SMALL.num_pca + 3] = 1.0
    out = net(torch.rand(1, 3, 64, 64), _K(1))
    assert out.betas[0, 0] > 0.5
    assert out.hourglass is None and out.face_colors is None


def test_bad_inputs_raise(net):
    with pytest.raises(ValueError, match=r"K must be \(B, 3, 3\)"):
        net(torch.rand(2, 3, 64, 64), _K(1))
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\)"):
        net(torch.rand(2, 64, 64), _K(2))
    with pytest.raises(ValueError, match="encoder must be one of"):
        ImageEncoder("vgg16")
    with pytest.raises(FileNotFoundError, match="random initialisation"):
        ImageEncoder("resnet18", weights_path="/nonexistent/resnet18.pth")


def test_local_encoder_weights_round_trip(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    enc = ImageEncoder("resnet18", weights_path=path)
    torch.testing.assert_close(enc.stages[0][0][0].weight, ref.conv1.weight)
    torch.save({"fc.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="does not match ResNet"):
        ImageEncoder("resnet18", weights_path=path)


def test_soft_argmax_of_peaked_heatmaps():
    h = torch.full((1, 2, 8, 10), -1e4)
    h[0, 0, 3, 7] = 0.0  # row 3, column 7
    h[0, 1, 5, 2] = 0.0
    h[0, 1, 5, 3] = 0.0  # two equal peaks: the mean
    xy, probs = soft_argmax(h)
    torch.testing.assert_close(xy, torch.tensor([[[7.0, 3.0], [2.5, 5.0]]]))
    torch.testing.assert_close(probs.sum(dim=(2, 3)), torch.ones(1, 2))


def test_fitting_recovers_keypoints(net):
    torch.manual_seed(1)
    K = _K(2)
    with torch.no_grad():
        init = net(torch.rand(2, 3, 64, 64), K, run_hourglass=False)
        pca = 0.8 * torch.randn(2, SMALL.num_pca)
        _, target_joints, _ = net.pose_hand(pca, init.global_orient + 0.2, init.betas,
                                            init.scale, init.transl)  # fmt: skip
        target = project_points(target_joints, K)
    before = (init.joints_2d - target).norm(dim=-1).mean()
    fitted = fit_to_keypoints(net, init, target, K, steps=150, lr=2e-2)
    after = (fitted.joints_2d - target).norm(dim=-1).mean()
    assert before > 1.0
    assert after < 0.25 * before
    assert not any(p.grad is not None for p in net.parameters())


def test_projection_does_not_depend_on_the_crop_focal_length(net):
    """The same image with a longer crop focal length gives the same 2D hand up to the
    (weaker) perspective distortion of a proportionally farther hand: the depth scales."""
    images = torch.rand(1, 3, 64, 64)
    K1, K2 = _K(1), _K(1)
    K2[:, 0, 0] *= 1.7
    K2[:, 1, 1] *= 1.7
    a, b = net(images, K1), net(images, K2)
    torch.testing.assert_close(a.joints_2d, b.joints_2d, atol=1.0, rtol=0)  # hand: ~45 px
    torch.testing.assert_close(b.transl[:, 2], 1.7 * a.transl[:, 2])
