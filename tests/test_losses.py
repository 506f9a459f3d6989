"""Tests for hand_lib.losses: 2D keypoint terms, priors and the weight sets.

Hand-computed cases check each formula; every loss is also checked to be zero at the ground
truth with finite gradients there.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hand_lib.losses import (
    ANGLE_LIMITS_MAX_RAD,
    ANGLE_LIMITS_MIN_RAD,
    KEYPOINT_BONES,
    S2HAND_KEYPOINT_WEIGHTS,
    HaMuCoLossWeights,
    S2HandLossWeights,
    bone_direction_loss,
    bone_length_anchor_loss,
    heatmap_integral_loss,
    huber_like,
    joint_angle_prior_loss,
    keypoint_2d_l1_loss,
    keypoint_2d_loss,
    keypoint_consistency_loss,
    pose_prior_loss,
    shape_regularizer,
    weighted_total,
)

TIPS = (4, 8, 12, 16, 20)
#: sum over joints of (joint weight)^2 with unit confidences: wrist 4 + 15 x 1 + 5 tips x 2.25
SUM_W2 = 4.0 + 15.0 + 5 * 2.25


def _keypoints(batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 21, 2, generator=g, dtype=torch.float64) * 200.0


# ----------------------------------------------------------------------------- huber_like
def test_huber_like_matches_formula() -> None:
    d = torch.tensor([0.0, 3.0, 5.0, 10.0], dtype=torch.float64)
    got = huber_like(d**2, 5.0)
    # d^2/10 below 5 px, d - 2.5 above
    assert torch.allclose(got, torch.tensor([0.0, 0.9, 2.5, 7.5], dtype=torch.float64))


def test_huber_like_gradient_finite_at_zero_and_continuous_slope() -> None:
    d = torch.tensor([0.0, 5.0 - 1e-6, 5.0 + 1e-6], dtype=torch.float64, requires_grad=True)
    huber_like(d**2, 5.0).sum().backward()
    assert torch.isfinite(d.grad).all()
    assert d.grad[0] == 0
    assert abs(d.grad[1].item() - 1.0) < 1e-6 and abs(d.grad[2].item() - 1.0) < 1e-6


# ---------------------------------------------------------------------- keypoint_2d_loss
def test_keypoint_2d_loss_hand_computed_3px_and_10px() -> None:
    target = _keypoints(1)
    pred = target.clone()
    pred[0, 1] += torch.tensor([3.0, 0.0], dtype=torch.float64)  # 3 px -> 0.9
    pred[0, 2] += torch.tensor([6.0, 8.0], dtype=torch.float64)  # 10 px -> 7.5
    loss = keypoint_2d_loss(pred, target)
    assert loss.item() == pytest.approx((0.9 + 7.5) / SUM_W2)


def test_keypoint_2d_loss_wrist_and_tip_weights() -> None:
    target = _keypoints(1)
    ten_px = torch.tensor([6.0, 8.0], dtype=torch.float64)
    for joint, weight in [(0, 2.0), (8, 1.5), (5, 1.0)]:
        pred = target.clone()
        pred[0, joint] += ten_px
        expected = weight**2 * 7.5 / SUM_W2
        assert keypoint_2d_loss(pred, target).item() == pytest.approx(expected)
    assert all(S2HAND_KEYPOINT_WEIGHTS[t] == 1.5 for t in TIPS)
    assert S2HAND_KEYPOINT_WEIGHTS[0] == 2.0


def test_keypoint_2d_loss_confidence_squared_and_zero_removes_joint() -> None:
    target = _keypoints(1)
    pred = target.clone()
    pred[0, 3] += 100.0  # a wild outlier on joint 3 ...
    pred[0, 6] += torch.tensor([6.0, 8.0], dtype=torch.float64)
    conf = torch.ones(1, 21, dtype=torch.float64)
    conf[0, 3] = 0.0  # ... removed by a zero confidence
    conf[0, 6] = 0.5
    expected = 0.25 * 7.5 / (SUM_W2 - 1.0 - 1.0 + 0.25)
    assert keypoint_2d_loss(pred, target, conf).item() == pytest.approx(expected)


def test_keypoint_2d_loss_all_zero_confidence_is_zero_not_nan() -> None:
    target = _keypoints(2)
    loss = keypoint_2d_loss(target + 5.0, target, torch.zeros(2, 21, dtype=torch.float64))
    assert loss.item() == 0.0


def test_keypoint_2d_loss_zero_at_ground_truth_with_finite_gradient() -> None:
    target = _keypoints(3)
    pred = target.clone().requires_grad_(True)
    loss = keypoint_2d_loss(pred, target, torch.rand(3, 21, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(pred.grad).all()


def test_keypoint_2d_loss_shape_errors_name_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\(B, 21, 2\)"):
        keypoint_2d_loss(torch.zeros(2, 20, 2), torch.zeros(2, 20, 2))
    with pytest.raises(ValueError, match="confidence"):
        keypoint_2d_loss(torch.zeros(2, 21, 2), torch.zeros(2, 21, 2), torch.ones(2, 21, 1))
    with pytest.raises(ValueError, match="same shape"):
        keypoint_2d_loss(torch.zeros(2, 21, 2), torch.zeros(3, 21, 2))


# ------------------------------------------------------------------------ HaMuCo 2D L1
def test_keypoint_2d_l1_loss_hand_computed_with_views() -> None:
    target = torch.zeros(2, 4, 21, 2)  # (B, V, 21, 2): any leading shape
    pred = target.clone()
    pred[1, 2, 7, 0] = 2.0
    conf = torch.ones(2, 4, 21)
    conf[1, 2, 7] = 0.5
    assert keypoint_2d_l1_loss(pred, target, conf).item() == pytest.approx(0.5 * 2.0 / (8 * 42))
    assert keypoint_2d_l1_loss(pred, target).item() == pytest.approx(2.0 / (8 * 42))
    conf[1, 2, 7] = 0.0
    assert keypoint_2d_l1_loss(pred, target, conf).item() == 0.0
    with pytest.raises(ValueError, match=r"\(\.\.\., J, 2\)"):
        keypoint_2d_l1_loss(torch.zeros(2, 21, 3), torch.zeros(2, 21, 3))


# ------------------------------------------------------------------------ bone direction
def test_keypoint_bones_follow_parents() -> None:
    assert len(KEYPOINT_BONES) == 20
    assert (0, 1) in KEYPOINT_BONES and (3, 4) in KEYPOINT_BONES and (0, 17) in KEYPOINT_BONES


def test_bone_direction_zero_at_truth_and_for_scaled_hand() -> None:
    target = _keypoints(2)
    pred = target.clone().requires_grad_(True)
    loss = bone_direction_loss(pred, target)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(pred.grad).all()
    scaled = 2.0 * (target - target[:, :1]) + target[:, :1] + 7.0  # same directions
    assert bone_direction_loss(scaled, target).item() == pytest.approx(0.0, abs=1e-8)


def test_bone_direction_reversed_tip_bone_hand_computed() -> None:
    target = _keypoints(1)
    pred = target.clone()
    pred[0, 4] = 2 * target[0, 3] - target[0, 4]  # thumb tip mirrored: bone 3->4 reversed
    # ||u - (-u)||^2 = 4 for that one bone, mean over 20 bones
    assert bone_direction_loss(pred, target).item() == pytest.approx(4.0 / 20, rel=1e-4)
    conf = torch.ones(1, 21, dtype=torch.float64)
    conf[0, 3], conf[0, 4] = 0.8, 0.5  # weight = product of the endpoint confidences
    assert bone_direction_loss(pred, target, conf).item() == pytest.approx(
        0.4 * 4.0 / 20, rel=1e-4
    )


def test_bone_direction_coincident_joints_finite_gradient() -> None:
    pred = torch.zeros(1, 21, 2, dtype=torch.float64, requires_grad=True)  # zero-length bones
    bone_direction_loss(pred, _keypoints(1)).backward()
    assert torch.isfinite(pred.grad).all()


# ---------------------------------------------------------------- heatmap integral loss
def test_heatmap_integral_loss_hand_computed_and_stacks() -> None:
    target = _keypoints(1)
    pred = target.clone()
    pred[0, 5] += torch.tensor([3.0, 4.0], dtype=torch.float64)  # 5 px
    assert heatmap_integral_loss(pred, target).item() == pytest.approx(5.0 / 21)
    conf = torch.ones(1, 21, dtype=torch.float64)
    conf[0, 5] = 0.5
    assert heatmap_integral_loss(pred, target, conf).item() == pytest.approx(
        0.25 * 5.0 / (20 + 0.25)
    )
    # stacks are summed
    assert heatmap_integral_loss([pred, pred], target).item() == pytest.approx(10.0 / 21)


def test_heatmap_integral_loss_zero_at_truth_finite_gradient() -> None:
    target = _keypoints(2)
    pred = target.clone().requires_grad_(True)
    loss = heatmap_integral_loss(pred, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


# ------------------------------------------------------------------ 2D-3D consistency
def test_keypoint_consistency_hand_computed_and_both_sides_get_gradient() -> None:
    hm = _keypoints(1).requires_grad_(True)
    proj = hm.detach().clone()
    proj[0, 12] += torch.tensor([6.0, 8.0], dtype=torch.float64)
    proj.requires_grad_(True)
    loss = keypoint_consistency_loss(hm, proj)
    assert loss.item() == pytest.approx(7.5 / 21)
    loss.backward()
    assert hm.grad.abs().sum() > 0 and proj.grad.abs().sum() > 0
    assert keypoint_consistency_loss(hm, hm.detach()).item() == 0.0


# ------------------------------------------------------------------------------ priors
def _keypoints_3d(bone_length: float) -> torch.Tensor:
    kp = torch.zeros(2, 21, 3, dtype=torch.float64)
    kp[:, 9] = torch.tensor([0.01, 0.02, 0.5], dtype=torch.float64)
    kp[:, 10] = kp[:, 9] + torch.tensor([0.6, 0.0, 0.8], dtype=torch.float64) * bone_length
    return kp


def test_bone_length_anchor() -> None:
    assert bone_length_anchor_loss(_keypoints_3d(0.0282)).item() == pytest.approx(0, abs=1e-12)
    assert bone_length_anchor_loss(_keypoints_3d(0.03)).item() == pytest.approx(0.0018)
    kp = _keypoints_3d(0.02).requires_grad_(True)
    bone_length_anchor_loss(kp).backward()
    assert torch.isfinite(kp.grad).all() and kp.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        bone_length_anchor_loss(torch.zeros(2, 16, 3))


def test_angle_limits_table_is_consistent() -> None:
    lo = torch.tensor(ANGLE_LIMITS_MIN_RAD)
    hi = torch.tensor(ANGLE_LIMITS_MAX_RAD)
    assert lo.shape == hi.shape == (15, 3)
    assert (lo < 0).all() and (hi > 0).all()  # the flat hand (zero pose) is allowed


def test_angle_prior_zero_inside_positive_outside() -> None:
    lo = torch.tensor(ANGLE_LIMITS_MIN_RAD, dtype=torch.float64)
    hi = torch.tensor(ANGLE_LIMITS_MAX_RAD, dtype=torch.float64)
    inside = (0.05 * lo + 0.95 * hi).unsqueeze(0).requires_grad_(True)
    loss = joint_angle_prior_loss(inside)
    loss.backward()
    assert loss.item() == 0.0 and (inside.grad == 0).all()
    assert joint_angle_prior_loss(torch.zeros(3, 45)).item() == 0.0

    outside = (0.5 * (lo + hi)).unsqueeze(0).clone()
    outside[0, 0, 2] = hi[0, 2] + 0.1  # index MCP over-flexed: z weighted x2
    outside[0, 13, 0] = lo[13, 0] - 0.2  # thumb below its x range
    expected = (2 * 0.1 + 0.2) / 45
    assert joint_angle_prior_loss(outside).item() == pytest.approx(expected)
    # the global rotation of a (B, 16, 3) or (B, 48) pose is ignored
    with_global = torch.cat([torch.full((1, 1, 3), 3.0, dtype=torch.float64), outside], dim=1)
    assert joint_angle_prior_loss(with_global).item() == pytest.approx(expected)
    assert joint_angle_prior_loss(with_global.view(1, 48)).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"\(B, 15, 3\)"):
        joint_angle_prior_loss(torch.zeros(1, 14, 3))


def test_angle_prior_flexion_convention_on_the_hand_model() -> None:
    """Positive z of a finger joint curls the finger toward the palm (MANO's convention),
    which the limits allow up to ~100 deg, while bending backwards is penalised."""
    from hand_lib.mano.layer import ManoLayer

    layer = ManoLayer(None, flat_hand_mean=True, dtype=torch.float64)
    rest = layer(torch.zeros(1, 16, 3, dtype=torch.float64)).keypoints[0]
    # right hand: (index MCP - wrist) x (pinky MCP - wrist) points out of the palm
    palm_normal = torch.linalg.cross(rest[5] - rest[0], rest[17] - rest[0])
    palm_normal = palm_normal / palm_normal.norm()
    pose = torch.zeros(1, 16, 3, dtype=torch.float64)
    pose[0, 1, 2] = 1.2  # index MCP, +z
    curled = layer(pose).keypoints[0]
    assert torch.dot(curled[8] - rest[8], palm_normal) > 0.02  # tip moved to the palm side
    assert joint_angle_prior_loss(pose).item() == 0.0
    pose[0, 1, 2] = -1.2  # hyper-extension
    assert joint_angle_prior_loss(pose).item() > 0.0


def test_shape_regularizer_p2_and_p1() -> None:
    betas = torch.tensor([[1.0, -2.0], [0.0, 1.0]])
    assert shape_regularizer(betas).item() == pytest.approx((1 + 4 + 0 + 1) / 4)
    assert shape_regularizer(betas, p=1).item() == pytest.approx((1 + 2 + 0 + 1) / 4)
    assert shape_regularizer(torch.zeros(3, 10)).item() == 0.0
    with pytest.raises(ValueError):
        shape_regularizer(betas, p=3)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        shape_regularizer(torch.zeros(10))


def test_pose_prior_l1_toward_mean_ignoring_global() -> None:
    pose = torch.zeros(2, 48)
    pose[:, :3] = 5.0  # global rotation: ignored
    assert pose_prior_loss(pose).item() == 0.0
    pose[0, 3] = 0.9
    assert pose_prior_loss(pose).item() == pytest.approx(0.9 / 90)
    mean = torch.zeros(45)
    mean[0] = 0.9
    assert pose_prior_loss(pose, mean).item() == pytest.approx(0.9 / 90)  # sample 1 is off
    p = pose[:, 3:].clone().requires_grad_(True)
    pose_prior_loss(p).backward()
    assert torch.isfinite(p.grad).all()


# ----------------------------------------------------------------------------- weights
def test_default_weights_are_the_original_ones() -> None:
    s2 = S2HandLossWeights()
    assert dataclasses.asdict(s2) == {
        "keypoint_2d": 1e-3,
        "bone_direction": 0.1,
        "heatmap_integral": 1e-3,
        "keypoint_consistency": 2e-4,
        "scale_anchor": 0.1,
        "angle_prior": 0.1,
        "shape_regularizer": 1e-2,
        "laplacian": 0.1,
        "photometric": 5e-3,
        "mean_colour": 1e-3,
        "texture_outlier": 5e-3,
        # the suite's keypoint head and lifter (not in the paper)
        "keypoint_heatmap": 1.0,
        "keypoint_integral": 1e-2,
        "lifter": 1.0,
    }
    hm = HaMuCoLossWeights()
    assert hm.pose_prior_single == hm.pose_prior_cross == 0.01
    added = {"keypoint_heatmap": 1.0, "keypoint_integral": 1e-2, "lifter": 1.0,
             "lifter_angle_prior": 0.1}
    assert {k: getattr(hm, k) for k in added} == added
    others = {k: v for k, v in dataclasses.asdict(hm).items()
              if not k.startswith("pose_prior") and k not in added}
    assert set(others.values()) == {1.0} and len(others) == 5


def test_weights_are_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        S2HandLossWeights().laplacian = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        S2HandLossWeights(laplacian=-1.0)
    with pytest.raises(ValueError):
        HaMuCoLossWeights(distillation=float("nan"))
    with pytest.raises(TypeError):
        HaMuCoLossWeights(distillation="1")  # type: ignore[arg-type]


def test_weighted_total_sums_rejects_unknown_and_non_finite() -> None:
    w = HaMuCoLossWeights()
    terms = {"distillation": torch.tensor(2.0), "pose_prior_cross": torch.tensor(3.0)}
    total = weighted_total(terms, w)
    assert total.item() == pytest.approx(2.0 + 0.03)
    with pytest.raises(KeyError, match="distilation"):
        weighted_total({"distilation": torch.tensor(1.0)}, w)
    with pytest.raises(FloatingPointError, match="shape_prior"):
        weighted_total({"shape_prior": torch.tensor(float("nan"))}, w)
    with pytest.raises(ValueError, match="scalar"):
        weighted_total({"shape_prior": torch.ones(2)}, w)
