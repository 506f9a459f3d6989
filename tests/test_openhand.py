"""The shipped open hand model: a valid MANO-format hand, rebuilt bit-for-bit from its seed."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch

from hand_lib.mano import ManoLayer, load_model, load_model_file
from hand_lib.mano.io import OPEN_HAND_RIGHT
from hand_lib.mano.joints import MANO_PARENTS
from hand_lib.mano.openhand import (
    DIGIT_JOINTS,
    DIGITS,
    build_open_hand,
    mirror_to_left,
    pose_hand,
    save_model_file,
    showcase_poses,
    signed_volume,
)


@pytest.fixture(scope="module")
def raw() -> dict:
    assert OPEN_HAND_RIGHT.is_file(), f"the open hand asset {OPEN_HAND_RIGHT} must ship"
    with open(OPEN_HAND_RIGHT, "rb") as fh:
        return pickle.load(fh)


@pytest.fixture(scope="module")
def model():
    return load_model(None)


def _digit_chain(model, digit: str) -> list[np.ndarray]:
    """Joint positions (rest pose) from the wrist to the tip vertex of one digit."""
    joints = model.J_regressor @ model.v_template
    tip = model.v_template[model.tip_vertex_ids[DIGITS.index(digit)]]
    return [joints[0]] + [joints[j] for j in DIGIT_JOINTS[digit]] + [tip]


def test_rebuild_reproduces_the_shipped_asset(tmp_path, raw):
    """The builder reproduces the shipped file: bit for bit on the machine that wrote it;
    elsewhere every integer array exactly and every float array to 1e-4 m, because the
    shape space is an SVD whose last bits depend on the CPU's LAPACK kernels (measured:
    shapedirs differ by 2.4e-5 m on another 2-core VM, everything else identical)."""
    rebuilt = save_model_file(tmp_path / "open_hand_right.pkl", build_open_hand(seed=0))
    if rebuilt.read_bytes() == OPEN_HAND_RIGHT.read_bytes():
        return
    with open(rebuilt, "rb") as fh:
        new = pickle.load(fh, encoding="latin1")
    assert set(new) == set(raw)
    for key, value in raw.items():
        a = np.asarray(value.toarray() if hasattr(value, "toarray") else value)
        b = np.asarray(new[key].toarray() if hasattr(new[key], "toarray") else new[key])
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if a.dtype.kind == "f" and key == "shapedirs":
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4, err_msg=key)
        else:
            np.testing.assert_array_equal(b, a, err_msg=key)


def test_other_seed_gives_other_priors():
    other = build_open_hand(seed=1)
    with open(OPEN_HAND_RIGHT, "rb") as fh:
        shipped = pickle.load(fh)
    np.testing.assert_array_equal(other["v_template"], shipped["v_template"])  # seed-free
    assert not np.allclose(other["hands_mean"], shipped["hands_mean"])


def test_file_has_mano_keys_and_shapes(raw):
    expected = {
        "v_template": (778, 3),
        "f": (1552, 3),
        "J_regressor": (16, 778),
        "kintree_table": (2, 16),
        "weights": (778, 16),
        "shapedirs": (778, 3, 10),
        "posedirs": (778, 3, 135),
        "hands_components": (45, 45),
        "hands_mean": (45,),
        "tip_vertex_ids": (5,),
    }
    for key, shape in expected.items():
        assert raw[key].shape == shape, key
    assert raw["kintree_table"][0, 0] == 2**32 - 1  # MANO's root marker
    np.testing.assert_array_equal(raw["kintree_table"][0, 1:], MANO_PARENTS[1:])


def test_mesh_is_watertight_genus0_and_outward(model):
    faces = model.faces
    edges = Counter()
    directed = Counter()
    for a, b, c in faces:
        for u, v in ((a, b), (b, c), (c, a)):
            edges[(min(u, v), max(u, v))] += 1
            directed[(u, v)] += 1
    assert set(edges.values()) == {2}, "every edge must be shared by exactly two faces"
    assert max(directed.values()) == 1, "faces must be consistently oriented"
    V, E, F = model.num_vertices, len(edges), len(faces)
    assert V - E + F == 2, "closed genus-0 surface"
    assert len(np.unique(faces)) == V, "no unused vertices"
    assert signed_volume(model.v_template, faces) > 0, "normals point outwards"


def test_no_degenerate_faces(model):
    tri = model.v_template[model.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    assert area.min() > 1e-8  # m^2 (0.01 mm^2)
    edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2)
    assert edge.min() > 1e-4  # 0.1 mm


def test_skinning_weights_and_regressor(model, raw):
    w = model.weights
    assert w.min() >= 0
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert (w.max(0) > 0.5).all(), "every joint dominates some vertices"
    reg = model.J_regressor
    assert reg.min() >= 0
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(reg @ model.v_template, raw["J"], atol=1e-8)


def test_skinning_is_smooth_across_joints(model):
    """No seams: along no mesh edge does a vertex switch wholly from one joint to another
    (an L1 weight jump of 2); joints blend over at least two rings of vertices."""
    f = model.faces
    w = model.weights
    pairs = ((0, 1), (1, 2), (2, 0))
    jumps = np.concatenate([np.abs(w[f[:, a]] - w[f[:, b]]).sum(1) for a, b in pairs])
    assert jumps.max() < 1.0
    assert np.median(jumps) < 0.25


def test_anthropometric_lengths(model):
    """Adult hand: length 16-21 cm; phalanges within published adult ranges (metres)."""
    chain = {d: _digit_chain(model, d) for d in DIGITS}
    hand_length = np.linalg.norm(chain["middle"][-1] - chain["middle"][0])
    assert 0.16 < hand_length < 0.21
    ranges = {  # proximal, middle (thumb: proximal), distal incl. the tip pad
        "thumb": ((0.035, 0.055), (0.025, 0.037), (0.020, 0.032)),
        "index": ((0.035, 0.048), (0.020, 0.028), (0.016, 0.025)),
        "middle": ((0.040, 0.053), (0.023, 0.032), (0.017, 0.026)),
        "ring": ((0.037, 0.050), (0.022, 0.031), (0.016, 0.025)),
        "pinky": ((0.028, 0.040), (0.015, 0.024), (0.015, 0.023)),
    }
    for digit, bounds in ranges.items():
        pts = chain[digit]
        bones = [np.linalg.norm(pts[k + 1] - pts[k]) for k in (1, 2, 3)]
        for length, (lo, hi) in zip(bones, bounds, strict=True):
            assert lo < length < hi, (digit, bones)
    # finger order of lengths: middle > ring ~ index > pinky
    length = {d: sum(np.linalg.norm(np.diff(chain[d][1:], axis=0), axis=1)) for d in DIGITS}
    assert length["middle"] > max(length["index"], length["ring"]) > length["pinky"]


def test_tips_are_the_distal_ends(model):
    """Each tip vertex lies at the end of its digit: within 1.5 mm of the mesh point that
    reaches farthest along the last bone (the pad, not the apex, may reach a little further)."""
    joints = model.J_regressor @ model.v_template
    for k, digit in enumerate(DIGITS):
        _, mid, dist = DIGIT_JOINTS[digit]
        axis = joints[dist] - joints[mid]
        axis /= np.linalg.norm(axis)
        near = model.weights.argmax(1) == dist  # the vertices of the distal phalanx
        reach = (model.v_template[near] - joints[dist]) @ axis
        tip_reach = (model.v_template[model.tip_vertex_ids[k]] - joints[dist]) @ axis
        assert tip_reach >= reach.max() - 1.5e-3, digit
        assert tip_reach > 0.015, digit


def test_shape_space_varies_size_and_proportions(model):
    layer = ManoLayer(model, flat_hand_mean=True, dtype=torch.float64)
    pose = torch.zeros(1, 16, 3, dtype=torch.float64)
    size = []
    for b0 in (-2.0, 0.0, 2.0):
        betas = torch.zeros(1, 10, dtype=torch.float64)
        betas[0, 0] = b0
        kp = layer(pose, betas).keypoints[0]
        size.append(float((kp[12] - kp[0]).norm()))
    assert size[0] < size[1] < size[2], "positive betas[0] makes the hand larger"
    assert 0.14 < size[0] and size[2] < 0.24
    gen = torch.Generator().manual_seed(0)
    betas = torch.randn(200, 10, generator=gen, dtype=torch.float64)
    kp = layer(pose.expand(200, -1, -1), betas).keypoints
    length = (kp[:, 12] - kp[:, 0]).norm(dim=1)
    assert 0.15 < float(length.min()) and float(length.max()) < 0.23
    # proportions vary independently of size: finger/palm ratio spread
    finger = (kp[:, 12] - kp[:, 9]).norm(dim=1)
    ratio = finger / length
    assert float(ratio.std() / ratio.mean()) > 0.01
    # shape components are not collinear
    s = np.linalg.svd(model.shapedirs.reshape(-1, 10), compute_uv=False)
    assert s[-1] / s[0] > 1e-3


def test_pose_correctives_reduce_volume_loss(raw):
    """LBS collapses joints: in a fist the pose correctives keep the volume closer to rest."""
    faces = raw["f"]
    rest = signed_volume(raw["v_template"], faces)
    fist = showcase_poses(raw)["fist (mean + 2.5 PC1)"]
    with_pd, _ = pose_hand(raw, fist)
    without, _ = pose_hand(raw, fist, correctives=False)
    loss_with = abs(signed_volume(with_pd, faces) - rest)
    loss_without = abs(signed_volume(without, faces) - rest)
    assert np.abs(raw["posedirs"]).max() > 1e-3
    assert loss_with < 0.5 * loss_without


def test_pose_pca_is_scaled_and_ordered(raw):
    comps = raw["hands_components"]
    norms = np.linalg.norm(comps, axis=1)
    gram = comps @ comps.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-7)
    assert np.all(np.diff(norms) <= 1e-9), "rows sorted by explained variance"
    # natural poses concentrate: 10 of 45 components explain most of the variance
    var = norms**2
    assert var[:10].sum() / var.sum() > 0.85


def test_pca_poses_stay_natural(model):
    """Poses drawn from the PCA prior keep fingers flexing forward (palm side), not backward."""
    layer = ManoLayer(model, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    coeffs = torch.randn(256, 12, generator=gen, dtype=torch.float64)
    out = layer(coeffs, pose_type="pca")
    rest = layer(torch.zeros(1, 16, 3, dtype=torch.float64), pose_type="axis_angle")
    # the palm faces -y: fingertips of natural poses move to -y (flexion), rarely far to +y
    tips_y = out.keypoints[:, [8, 12, 16, 20], 1]
    assert float((tips_y > 0.03).double().mean()) < 0.05
    assert torch.isfinite(out.vertices).all() and rest.vertices.shape == (1, 778, 3)


def test_left_hand_is_the_mirror_image(raw, model):
    twice = mirror_to_left(mirror_to_left(raw))
    for key in ("v_template", "shapedirs", "posedirs", "hands_mean", "hands_components"):
        np.testing.assert_array_equal(twice[key], raw[key])
    left = ManoLayer(side="left", dtype=torch.float64)
    right = ManoLayer(model, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    pose = 0.3 * torch.randn(4, 16, 3, generator=gen, dtype=torch.float64)
    betas = torch.randn(4, 10, generator=gen, dtype=torch.float64)
    mirror_pose = pose * pose.new_tensor([1.0, -1.0, -1.0])
    m = pose.new_tensor([-1.0, 1.0, 1.0])
    out_r = right(pose, betas)
    out_l = left(mirror_pose, betas)
    torch.testing.assert_close(out_l.vertices, out_r.vertices * m, atol=1e-10, rtol=0)
    torch.testing.assert_close(out_l.keypoints, out_r.keypoints * m, atol=1e-10, rtol=0)


def test_npz_and_pkl_load_the_same(tmp_path, raw):
    npz = save_model_file(tmp_path / "MANO_RIGHT.npz", raw)
    a = load_model_file(OPEN_HAND_RIGHT)
    b = load_model_file(npz)
    for key in ("v_template", "J_regressor", "weights", "shapedirs", "posedirs"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
