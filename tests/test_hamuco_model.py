"""HaMuCo networks and multi-view inference: shapes, view permutations and masks, gradient
paths, rotations, fusion and triangulation refinement. Tiny images and a small config keep
it fast on CPU."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from hand_lib.geometry import (
    axis_angle_to_matrix,
    matrix_to_rot6d,
    project_points,
    rot6d_to_matrix,
)
from hand_lib.geometry.camera import world_to_camera
from hand_lib.models import (
    HaMuCoConfig,
    HaMuCoNet,
    fuse_views,
    normalized_to_pixels,
    pixels_to_normalized,
    predict_multiview,
    refine_with_triangulation,
)
from hand_lib.models.hamuco_blocks import CrossViewLayer, sample_joint_features

SIZE = 64
SMALL = HaMuCoConfig(
    token_dim=32, embed_dim=16, head_hidden=64, global_grid=2, head_token_dim=8, mlp_ratio=1.0
)
FIELDS = {  # per-view shape after (B, N)
    "pose_6d": (16, 6), "pose_axis_angle": (16, 3), "rot_mats": (16, 3, 3), "betas": (10,),
    "camera": (3,), "vertices_rel": (778, 3), "joints_rel": (21, 3), "keypoints_2d": (21, 2),
    "uvd": (21, 3),
}  # fmt: skip


@pytest.fixture(scope="module")
def model() -> HaMuCoNet:
    torch.manual_seed(0)
    net = HaMuCoNet(SMALL).eval()
    # Spread the untrained heads' outputs so that the checks below are not trivially met by
    # a network that predicts the same hand for every view.
    with torch.no_grad():
        net.single_head[-1].weight.mul_(100.0)
        net.cross_head[-1].weight.mul_(100.0)
    return net


def images(B: int, N: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, 3, SIZE, SIZE, generator=gen)


def camera_ring(N: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """N crop cameras (K (N, 3, 3), M (N, 4, 4)) 0.6 m from the origin, looking at it."""
    gen = torch.Generator().manual_seed(seed)
    axis_angle = torch.randn(N, 3, generator=gen) * 0.8
    M = torch.eye(4).repeat(N, 1, 1)
    M[:, :3, :3] = axis_angle_to_matrix(axis_angle)
    M[:, :3, 3] = torch.tensor([0.0, 0.0, 0.6])
    K = torch.tensor([[120.0, 0.0, 31.5], [0.0, 120.0, 31.5], [0.0, 0.0, 1.0]]).repeat(N, 1, 1)
    return K, M


def test_shapes_for_1_2_and_8_views(model: HaMuCoNet) -> None:
    for N in (1, 2, 8):
        B = 2 if N < 8 else 1
        with torch.no_grad():
            out = model(images(B, N))
        for branch in (out.single_view, out.cross_view):
            for name, shape in FIELDS.items():
                value = getattr(branch, name)
                assert value.shape == (B, N, *shape), (N, name)
                assert torch.isfinite(value).all(), (N, name)
        assert out.view_mask.all() and out.visible_mask.all()
        root = out.cross_view.joints_rel[..., 9, :]
        assert root.abs().max() == 0.0  # root-relative at the middle MCP
    px = out.single_view.keypoints_2d_px((SIZE, SIZE))
    assert px.shape == (1, 8, 21, 2)


def test_weak_perspective_and_rotations_are_consistent(model: HaMuCoNet) -> None:
    with torch.no_grad():
        out = model(images(2, 2, seed=1))
    for branch in (out.single_view, out.cross_view):
        R = rot6d_to_matrix(branch.pose_6d)
        eye = torch.eye(3).expand_as(R)
        assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-5)
        assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:-2]), atol=1e-5)
        assert torch.allclose(axis_angle_to_matrix(branch.pose_axis_angle), R, atol=1e-5)
        Rm = branch.rot_mats
        assert torch.allclose(Rm @ Rm.transpose(-1, -2), eye, atol=1e-5)
        s, t = branch.camera[..., None, :1], branch.camera[..., None, 1:]
        assert (s > 0).all()
        expected = s * branch.joints_rel[..., :2] + t
        assert torch.allclose(branch.keypoints_2d, expected, atol=1e-6)
        assert torch.allclose(branch.uvd[..., 2], s[..., 0] * branch.joints_rel[..., 2])
    # the cross-view shape is the single-view shape
    assert torch.equal(out.cross_view.betas, out.single_view.betas)


def test_decode_follows_manos_axis_angle_convention_and_survives_half_turns(
    model: HaMuCoNet,
) -> None:
    gen = torch.Generator().manual_seed(3)
    axis_angle = torch.randn(3, 16, 3, generator=gen) * 0.4
    axis_angle[2, 0] = torch.tensor([0.0, math.pi, 0.0])  # a global half turn
    pose_6d = matrix_to_rot6d(axis_angle_to_matrix(axis_angle)).requires_grad_()
    betas = torch.randn(3, 10, generator=gen) * 0.5
    camera = torch.tensor([[5.0, 0.1, -0.2]]).repeat(3, 1)
    out = model.decode(pose_6d, betas, camera)
    ref = model.mano(axis_angle, betas, pose_type="axis_angle")  # mean pose added
    expected = ref.keypoints - ref.keypoints[:, 9:10]
    assert torch.allclose(out["joints_rel"], expected, atol=1e-5)
    assert torch.allclose(out["pose_axis_angle"][:2], axis_angle[:2], atol=1e-4)
    out["vertices_rel"].sum().backward()
    assert torch.isfinite(pose_6d.grad).all()


def test_cross_view_network_is_permutation_equivariant(model: HaMuCoNet) -> None:
    x = images(2, 5, seed=2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        a = model(x)
        b = model(x[:, perm])
    for branch in ("single_view", "cross_view"):
        for name in ("joints_rel", "keypoints_2d", "pose_6d", "camera"):
            va = getattr(getattr(a, branch), name)[:, perm]
            vb = getattr(getattr(b, branch), name)
            assert torch.allclose(va, vb, atol=1e-4), (branch, name)
    # the views really interact: the cross-view result of a view depends on the others
    with torch.no_grad():
        c = model(torch.cat([x[:, :1], images(2, 4, seed=3)], dim=1))
    assert not torch.allclose(a.cross_view.joints_rel[:, 0], c.cross_view.joints_rel[:, 0])


def test_missing_views_do_not_influence_the_others(model: HaMuCoNet) -> None:
    x = images(2, 3, seed=4)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    y = x.clone()
    y[~mask] = torch.rand_like(y[~mask])  # change only the missing views
    with torch.no_grad():
        a = model(x, view_mask=mask)
        b = model(y, view_mask=mask)
        alone = [model(x[i : i + 1, mask[i]]) for i in range(2)]
    for branch in ("single_view", "cross_view"):
        va, vb = getattr(a, branch).joints_rel, getattr(b, branch).joints_rel
        assert torch.isnan(va[~mask]).all()  # no prediction for a missing view
        assert torch.equal(va[mask], vb[mask])
        for i in range(2):
            ref = getattr(alone[i], branch).joints_rel[0]
            assert torch.allclose(va[i][mask[i]], ref, atol=1e-5)


def test_hidden_views_inform_no_other_view_in_the_blocks() -> None:
    torch.manual_seed(0)
    layer = CrossViewLayer(dim=16, num_heads=4, dropout=0.0).eval()
    tokens = torch.randn(2, 3, 21, 16)
    visible = torch.tensor([[True, True, False], [False, True, True]])
    changed = tokens.clone()
    changed[~visible] = torch.randn_like(changed[~visible])
    with torch.no_grad():
        a, b = layer(tokens, visible), layer(changed, visible)
    assert torch.allclose(a[visible], b[visible], atol=1e-6)


def test_random_view_masking_in_training_keeps_a_view(model: HaMuCoNet) -> None:
    config = dataclasses.replace(SMALL, view_mask_prob=0.9)
    net = HaMuCoNet(config, mano=model.mano)
    present = torch.ones(64, 4, dtype=torch.bool)
    present[::2, 1:] = False
    torch.manual_seed(0)
    net.train()
    visible = net._visible(present)
    assert (visible <= present).all()
    assert visible.any(dim=1).all()
    assert (visible.sum(1) < present.sum(1)).any()  # some views were hidden
    net.eval()
    assert torch.equal(net._visible(present), present)
    net.train()
    out = net(images(2, 3, seed=5))
    assert out.visible_mask.any(dim=1).all() and out.view_mask.all()
    assert torch.isfinite(out.cross_view.joints_rel).all()  # hidden views still predicted
    with pytest.raises(ValueError, match="view_mask_prob"):
        HaMuCoConfig(view_mask_prob=1.0)


def _encoder_grads(net: HaMuCoNet) -> list[float]:
    return [
        sum(float(p.grad.abs().sum()) for p in stage.parameters() if p.grad is not None)
        for stage in net.encoder.stages
    ]


def test_gradients_reach_the_encoder_from_both_branches(model: HaMuCoNet) -> None:
    x = images(1, 2, seed=6)
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.single_view.keypoints_2d.square().sum().backward()
    assert all(g > 0 for g in _encoder_grads(model)[3:])  # through the pooled stage 4
    assert model.single_head[0].weight.grad is not None

    model.zero_grad(set_to_none=True)
    out = model(x)
    (out.cross_view.keypoints_2d.square().sum() + out.cross_view.joints_rel.square().sum()
     ).backward()  # fmt: skip
    # stages 1-3 through the joint-aligned features, stage 4 through the global tokens
    assert all(g > 0 for g in _encoder_grads(model))
    # the single-view head gets nothing from the cross-view outputs (detached inputs)
    head_grads = [p.grad for p in model.single_head.parameters()]
    assert all(g is None or g.abs().max() == 0 for g in head_grads)
    model.zero_grad(set_to_none=True)

    # without the detach, cross-view losses also train the single-view head
    net = HaMuCoNet(dataclasses.replace(SMALL, detach_single_view=False), mano=model.mano).eval()
    net(x).cross_view.joints_rel.square().sum().backward()
    assert net.single_head[-1].weight.grad.abs().max() > 0


def test_resnet50_and_non_square_images(model: HaMuCoNet) -> None:
    net = HaMuCoNet(dataclasses.replace(SMALL, encoder="resnet50"), mano=model.mano).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 2, 3, 64, 96))
    assert out.cross_view.vertices_rel.shape == (1, 2, 778, 3)
    assert torch.isfinite(out.cross_view.vertices_rel).all()


def test_joint_features_are_sampled_at_detached_keypoints() -> None:
    level = torch.arange(2 * 4 * 5, dtype=torch.float32).view(1, 2, 4, 5).requires_grad_()
    cols, rows = torch.tensor([0.0, 4.0, 2.0]), torch.tensor([0.0, 3.0, 1.0])
    keypoints = pixels_to_normalized(torch.stack([cols, rows], -1)[None], (4, 5))
    keypoints.requires_grad_()
    feats = sample_joint_features([level], keypoints)
    assert feats.shape == (1, 3, 2)
    # pixel centres sample the pixel values exactly (grid_sample, align_corners=False)
    expected = level[0, :, rows.long(), cols.long()].T
    assert torch.allclose(feats[0], expected)
    grad_level, grad_kp = torch.autograd.grad(
        feats.sum(), [level, keypoints], allow_unused=True
    )
    assert grad_level is not None and grad_kp is None


def test_pixel_convention_round_trip() -> None:
    edges = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    px = normalized_to_pixels(edges, (48, 64))
    assert torch.allclose(px, torch.tensor([[-0.5, -0.5], [63.5, 47.5], [31.5, 23.5]]))
    assert torch.allclose(pixels_to_normalized(px, (48, 64)), edges)


def test_fused_result_with_identity_calibration_is_the_average(model: HaMuCoNet) -> None:
    N = 3
    K, _ = camera_ring(N)
    M = torch.eye(4).repeat(N, 1, 1)
    pred = predict_multiview(model, images(1, N, seed=7)[0], (K, M))
    assert pred.fused_frame == "world"
    assert torch.allclose(pred.fused_joints, pred.cross_view.joints_rel.mean(0), atol=1e-6)
    assert torch.allclose(pred.fused_vertices, pred.cross_view.vertices_rel.mean(0), atol=1e-6)
    assert pred.single_view.joints_rel.shape == (N, 21, 3)
    assert pred.refinement is not None  # calibrated, 2+ views (all cameras coincide here)


def test_predict_multiview_is_invariant_to_view_order(model: HaMuCoNet) -> None:
    N = 4
    x = images(1, N, seed=8)[0]
    K, M = camera_ring(N, seed=1)
    perm = torch.tensor([2, 0, 3, 1])
    a = predict_multiview(model, x, (K, M))
    b = predict_multiview(model, x[perm], (K[perm], M[perm]))
    assert torch.allclose(a.cross_view.joints_rel[perm], b.cross_view.joints_rel, atol=1e-4)
    assert torch.allclose(a.fused_joints, b.fused_joints, atol=1e-4)
    assert torch.allclose(a.fused_vertices, b.fused_vertices, atol=1e-4)
    # uncalibrated: the same reference image gives the same result
    c = predict_multiview(model, x, reference_view=1)
    d = predict_multiview(model, x[perm], reference_view=3)  # x[perm][3] == x[1]
    assert c.fused_frame == "view1" and c.refinement is None
    assert torch.allclose(c.fused_joints, d.fused_joints, atol=1e-4)
    assert c.fused_joints[9].abs().max() < 1e-6
    assert model.training is False


def test_single_view_inference(model: HaMuCoNet) -> None:
    x = images(1, 1, seed=9)[0]
    pred = predict_multiview(model, x)
    assert torch.allclose(pred.fused_joints, pred.cross_view.joints_rel[0], atol=1e-5)
    K, M = camera_ring(1)
    assert predict_multiview(model, x, (K, M)).refinement is None  # one view: no triangulation


def test_triangulation_refinement_recovers_known_joints() -> None:
    gen = torch.Generator().manual_seed(0)
    joints_world = torch.randn(21, 3, generator=gen) * 0.04 + torch.tensor([0.01, -0.02, 0.03])
    N = 5
    K, M = camera_ring(N, seed=2)
    keypoints_px = project_points(world_to_camera(joints_world[None].expand(N, 21, 3), M), K)
    # through the network's coordinate convention and back, as predict_multiview does
    keypoints_px = normalized_to_pixels(pixels_to_normalized(keypoints_px, (SIZE, SIZE)),
                                        (SIZE, SIZE))  # fmt: skip
    # a fused hand with the right shape but a wrong size, off by a small rotation
    centred = joints_world - joints_world[9]
    R = axis_angle_to_matrix(torch.tensor([0.05, -0.03, 0.02]))
    fused = 1.1 * centred @ R.T
    vertices = torch.cat([fused, fused[:5] * 0.5])  # any points placed with the joints
    for method in ("ransac", "dlt"):
        ref = refine_with_triangulation(fused, vertices, keypoints_px, K, M, method=method)
        assert ref.valid.all()
        assert torch.allclose(ref.triangulated_joints, joints_world, atol=1e-5)
        assert torch.allclose(ref.joints_world, joints_world, atol=1e-5)
        assert torch.allclose(ref.vertices_world[:21], joints_world, atol=1e-4)
        expected = (centred[:5] * 0.5) + joints_world[9]
        assert torch.allclose(ref.vertices_world[21:], expected, atol=1e-4)
        assert ref.reprojection_error_px.max() < 1e-3


def test_fuse_views_without_calibration_aligns_to_the_reference() -> None:
    gen = torch.Generator().manual_seed(1)
    hand = torch.randn(21, 3, generator=gen) * 0.04
    hand = hand - hand[9]
    Rs = axis_angle_to_matrix(torch.randn(3, 3, generator=gen))
    joints = torch.stack([(1.0 + 0.1 * i) * hand @ R.T for i, R in enumerate(Rs)])
    fused, verts = fuse_views(joints, joints, reference_view=0)
    assert torch.allclose(fused, joints[0], atol=1e-5)  # same shape, seen in view 0's axes
    assert torch.allclose(verts, joints[0], atol=1e-5)
    fused_cal, _ = fuse_views(joints / torch.tensor([1.0, 1.1, 1.2])[:, None, None], joints, Rs)
    assert torch.allclose(fused_cal, hand, atol=1e-5)


def test_bad_shapes_raise_value_errors(model: HaMuCoNet) -> None:
    with pytest.raises(ValueError, match=r"\(B, N, 3, H, W\)"):
        model(torch.rand(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\(B, N\) = \(1, 2\)"):
        model(images(1, 2), view_mask=torch.ones(2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one view"):
        model(images(1, 2), view_mask=torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        predict_multiview(model, images(1, 2))
    K, M = camera_ring(2)
    with pytest.raises(ValueError, match=r"\(N, 3, 3\) = \(2, 3, 3\)"):
        predict_multiview(model, images(1, 2)[0], (K[:1], M))
    with pytest.raises(ValueError, match=r"\(N, 4, 4\) = \(2, 4, 4\)"):
        predict_multiview(model, images(1, 2)[0], (K, M[:, :2]))
    with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
        fuse_views(torch.zeros(2, 16, 3), torch.zeros(2, 778, 3))
    with pytest.raises(ValueError, match=r"\(N, 21, 2\)"):
        refine_with_triangulation(torch.zeros(21, 3), torch.zeros(5, 3), torch.zeros(2, 21, 3),
                                  K, M)  # fmt: skip
    with pytest.raises(ValueError, match="divisible"):
        HaMuCoConfig(token_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="encoder"):
        HaMuCoConfig(encoder="vgg16")


def test_pose_pca_keeps_lifted_and_cross_view_fingers_in_the_pca_span() -> None:
    """pose_pca: the lifter's finger pose is n PCA coefficients (offsets from the mean pose
    in the span of the first n components), the cross-view correction adds PCA offsets to
    the single view's; at initialisation both give the 6D network's hand."""
    config = dataclasses.replace(SMALL, keypoint_features=True, view_mask_prob=0.0)
    torch.manual_seed(0)
    free = HaMuCoNet(config).eval()
    torch.manual_seed(0)
    pca = HaMuCoNet(dataclasses.replace(config, pose_pca=12)).eval()
    keypoints = 16 + 32 * torch.rand(5, 21, 2, generator=torch.Generator().manual_seed(1))
    a, b = (net.decode_params(net.lift(keypoints, (64, 64))) for net in (free, pca))
    assert (a["joints_rel"] - b["joints_rel"]).abs().max() < 1e-3  # both start at the mean hand
    with torch.no_grad():  # a trained-looking lifter: its finger offsets stay in the span
        pca.lifter.mlp[-1].weight.normal_(std=1.0)
    fingers = pca.decode_params(pca.lift(keypoints, (64, 64)))["pose_axis_angle"][:, 1:]
    basis = pca.mano.hands_components[:12].T  # (45, 12)
    offsets = fingers.reshape(5, 45)
    inside = basis @ torch.linalg.lstsq(basis, offsets.T).solution
    assert offsets.abs().max() > 0.1
    assert (inside.T - offsets).abs().max() < 1e-4
    out = pca(images(1, 3))
    torch.testing.assert_close(out.cross_view.joints_rel, out.single_view.joints_rel,
                               atol=1e-3, rtol=0)  # a near-zero initial correction
    with pytest.raises(ValueError, match="pose_pca"):
        HaMuCoNet(dataclasses.replace(config, pose_pca=10_000))
