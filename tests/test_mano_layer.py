"""ManoLayer against smplx.MANO, gradients, conventions and input checks."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_lib.mano import ManoLayer, load_model_file, save_model_file
from hand_lib.mano.io import OPEN_HAND_RIGHT
from hand_lib.mano.joints import MANO_TO_FREIHAND

smplx = pytest.importorskip("smplx", reason="smplx is the reference implementation")

ATOL = 1e-5  # metres, the agreement bar (float64 agrees to ~1e-8)


def _write(tmp_path: Path, arrays: dict, name: str = "MANO_RIGHT.pkl") -> Path:
    return save_model_file(tmp_path / name, arrays)


def _model_files(tmp_path: Path, random_model_arrays: dict) -> list[Path]:
    """The random model as pkl and npz, and the shipped open hand as pkl and npz."""
    files = [_write(tmp_path, random_model_arrays), _write(tmp_path, random_model_arrays, "r.npz")]
    with open(OPEN_HAND_RIGHT, "rb") as fh:  # the shipped asset must exist
        open_arrays = pickle.load(fh)
    files += [OPEN_HAND_RIGHT, _write(tmp_path / "open", open_arrays, "MANO_RIGHT.npz")]
    return files


def _smplx_reference(path: Path, **kwargs) -> torch.nn.Module:
    return smplx.MANO(str(path), is_rhand=True, ext=path.suffix[1:], dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_axis_angle_matches_smplx(tmp_path, random_model_arrays, flat_hand_mean):
    gen = torch.Generator().manual_seed(1)
    for path in _model_files(tmp_path, random_model_arrays):
        ours = ManoLayer(path, flat_hand_mean=flat_hand_mean, dtype=torch.float64)
        ref = _smplx_reference(path, use_pca=False, flat_hand_mean=flat_hand_mean)
        B = 6
        pose = torch.randn(B, 16, 3, generator=gen, dtype=torch.float64) * 0.6
        betas = torch.randn(B, 10, generator=gen, dtype=torch.float64)
        transl = torch.randn(B, 3, generator=gen, dtype=torch.float64) * 0.1
        out = ours(pose, betas, transl)
        exp = ref(
            betas=betas, global_orient=pose[:, 0], hand_pose=pose[:, 1:].flatten(1), transl=transl
        )
        assert torch.allclose(out.vertices, exp.vertices, atol=ATOL, rtol=0), path
        assert torch.allclose(out.joints, exp.joints[:, :16], atol=ATOL, rtol=0), path


@pytest.mark.parametrize("num_comps", [6, 12, 45])
def test_pca_matches_smplx(tmp_path, random_model_arrays, num_comps):
    gen = torch.Generator().manual_seed(2)
    for path in _model_files(tmp_path, random_model_arrays):
        ours = ManoLayer(path, dtype=torch.float64)
        ref = _smplx_reference(path, use_pca=True, num_pca_comps=num_comps)
        B = 4
        coeffs = torch.randn(B, num_comps, generator=gen, dtype=torch.float64)
        orient = torch.randn(B, 3, generator=gen, dtype=torch.float64)
        betas = torch.randn(B, 10, generator=gen, dtype=torch.float64)
        out = ours(coeffs, betas, pose_type="pca", global_orient=orient)
        if num_comps == 45:  # smplx switches PCA off at 45 components
            components = torch.as_tensor(np.asarray(ref.np_hand_components), dtype=torch.float64)
            hand = coeffs @ components
            exp = ref(betas=betas, global_orient=orient, hand_pose=hand)
        else:
            exp = ref(betas=betas, global_orient=orient, hand_pose=coeffs)
        assert torch.allclose(out.vertices, exp.vertices, atol=ATOL, rtol=0), path


def test_float32_close_to_float64(random_model_arrays, tmp_path):
    path = _write(tmp_path, random_model_arrays)
    pose = torch.randn(8, 16, 3, dtype=torch.float64) * 0.5
    betas = torch.randn(8, 10, dtype=torch.float64)
    v64 = ManoLayer(path, dtype=torch.float64)(pose, betas).vertices
    v32 = ManoLayer(path)(pose.float(), betas.float()).vertices
    assert v32.dtype == torch.float32
    assert torch.allclose(v32.double(), v64, atol=1e-5)
    # .to(dtype) converts the buffers too (their values were rounded to float32 at build)
    out = ManoLayer(path).to(torch.float64)(pose, betas).vertices
    assert out.dtype == torch.float64
    assert torch.allclose(out, v64, atol=1e-6)


def test_rot6d_and_rotmat_agree_with_axis_angle(random_model_arrays, tmp_path):
    from hand_lib.geometry import axis_angle_to_matrix, matrix_to_rot6d

    layer = ManoLayer(
        _write(tmp_path, random_model_arrays), flat_hand_mean=True, dtype=torch.float64
    )
    pose = torch.randn(5, 16, 3, dtype=torch.float64) * 0.7
    rot = axis_angle_to_matrix(pose)
    ref = layer(pose).vertices
    assert torch.allclose(layer(rot, pose_type="rotmat").vertices, ref, atol=1e-12)
    assert torch.allclose(layer(matrix_to_rot6d(rot), pose_type="rot6d").vertices, ref, atol=1e-10)
    flat6d = matrix_to_rot6d(rot).flatten(1)
    assert torch.allclose(layer(flat6d, pose_type="rot6d").vertices, ref, atol=1e-10)


def test_keypoints_order_and_tips(random_model_arrays, tmp_path):
    layer = ManoLayer(_write(tmp_path, random_model_arrays), dtype=torch.float64)
    out = layer(
        torch.randn(3, 16, 3, dtype=torch.float64) * 0.3,
        torch.randn(3, 10, dtype=torch.float64),
        torch.randn(3, 3, dtype=torch.float64) * 0.1,
    )
    tips = random_model_arrays["tip_vertex_ids"]
    assert out.keypoints.shape == (3, 21, 3)

    def assert_tip(keypoint, vertex):
        # tips are skinned on their own (same arithmetic, other summation order)
        torch.testing.assert_close(keypoint, vertex, rtol=0, atol=1e-12)

    # FreiHAND order: 0 wrist, thumb 1-4 (MANO 13-15 + tip), index 5-8 (MANO 1-3 + tip), ...
    assert torch.equal(out.keypoints[:, 0], out.joints[:, 0])
    assert torch.equal(out.keypoints[:, 1:4], out.joints[:, 13:16])
    assert_tip(out.keypoints[:, 4], out.vertices[:, tips[0]])  # thumb tip
    assert torch.equal(out.keypoints[:, 5:8], out.joints[:, 1:4])
    assert_tip(out.keypoints[:, 8], out.vertices[:, tips[1]])  # index tip
    assert torch.equal(out.keypoints[:, 9:12], out.joints[:, 4:7])
    assert_tip(out.keypoints[:, 12], out.vertices[:, tips[2]])  # middle tip
    assert torch.equal(out.keypoints[:, 13:16], out.joints[:, 10:13])  # ring
    assert_tip(out.keypoints[:, 16], out.vertices[:, tips[3]])
    assert torch.equal(out.keypoints[:, 17:20], out.joints[:, 7:10])  # pinky
    assert_tip(out.keypoints[:, 20], out.vertices[:, tips[4]])
    assert MANO_TO_FREIHAND == (
        0,
        13,
        14,
        15,
        16,
        1,
        2,
        3,
        17,
        4,
        5,
        6,
        18,
        10,
        11,
        12,
        19,
        7,
        8,
        9,
        20,
    )


def test_joint_transforms_are_rigid_frames(random_model_arrays, tmp_path):
    layer = ManoLayer(_write(tmp_path, random_model_arrays), dtype=torch.float64)
    transl = torch.tensor([[0.1, -0.2, 0.5]], dtype=torch.float64)
    out = layer(torch.randn(1, 16, 3, dtype=torch.float64), transl=transl)
    T = out.joint_transforms
    assert T.shape == (1, 16, 4, 4)
    R = T[..., :3, :3]
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-12)
    assert torch.allclose(T[..., :3, 3], out.joints)
    assert torch.equal(
        T[..., 3, :], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(1, 16, 4)
    )


def test_gradients_reach_every_input(random_model_arrays, tmp_path):
    layer = ManoLayer(_write(tmp_path, random_model_arrays), dtype=torch.float64)
    for pose_type, pose in [
        ("axis_angle", torch.randn(2, 16, 3, dtype=torch.float64) * 0.5),
        ("rot6d", torch.randn(2, 16, 6, dtype=torch.float64)),
        ("pca", torch.randn(2, 10, dtype=torch.float64)),
    ]:
        pose = pose.requires_grad_()
        betas = torch.randn(2, 10, dtype=torch.float64, requires_grad=True)
        transl = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
        orient = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
        out = layer(
            pose,
            betas,
            transl,
            pose_type=pose_type,
            global_orient=orient if pose_type == "pca" else None,
        )
        (out.vertices.square().sum() + out.keypoints.sum()).backward()
        inputs = [pose, betas, transl] + ([orient] if pose_type == "pca" else [])
        for t in inputs:
            assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_gradcheck_against_finite_differences(random_model_arrays, tmp_path):
    arrays = dict(random_model_arrays)
    layer = ManoLayer(_write(tmp_path, arrays), dtype=torch.float64)
    pose = (torch.randn(2, 16, 3, dtype=torch.float64) * 0.5).requires_grad_()
    betas = torch.randn(2, 10, dtype=torch.float64, requires_grad=True)
    transl = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def f(p, b, t):
        out = layer(p, b, t)
        return out.vertices[:, ::7], out.keypoints

    assert torch.autograd.gradcheck(f, (pose, betas, transl), atol=1e-6)


def test_zero_pose_gives_template(random_model_arrays, tmp_path):
    model = load_model_file(_write(tmp_path, random_model_arrays))
    layer = ManoLayer(model, flat_hand_mean=True, dtype=torch.float64)
    out = layer(torch.zeros(1, 16, 3, dtype=torch.float64))
    assert np.allclose(out.vertices[0].numpy(), model.v_template, atol=1e-12)
    assert np.allclose(out.joints[0].numpy(), model.J_regressor @ model.v_template, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pose": torch.zeros(2, 15, 3)}, r"\(B, 16, 3\) or \(B, 48\)"),
        ({"pose": torch.zeros(2, 16, 3), "betas": torch.zeros(3, 10)}, r"betas must be \(B, S\)"),
        ({"pose": torch.zeros(2, 16, 3), "betas": torch.zeros(2, 11)}, r"<= 10"),
        ({"pose": torch.zeros(2, 16, 3), "transl": torch.zeros(2, 2)}, r"transl must be \(B, 3\)"),
        ({"pose": torch.zeros(2, 16, 5), "pose_type": "rot6d"}, r"\(B, 16, 6\)"),
        ({"pose": torch.zeros(2, 16, 3), "pose_type": "rotmat"}, r"\(B, 16, 3, 3\)"),
        ({"pose": torch.zeros(2, 46), "pose_type": "pca"}, r"n <= 45"),
        (
            {"pose": torch.zeros(2, 6), "pose_type": "pca", "global_orient": torch.zeros(2, 4)},
            r"global_orient must be \(B, 3\)",
        ),
        ({"pose": torch.zeros(2, 16, 3), "pose_type": "quat"}, r"pose_type must be"),
    ],
)
def test_bad_shapes_raise_value_error(random_model_arrays, tmp_path, kwargs, message):
    layer = ManoLayer(_write(tmp_path, random_model_arrays))
    with pytest.raises(ValueError, match=message):
        layer(**kwargs)


def test_compiles_with_torch_compile(random_model_arrays, tmp_path):
    layer = ManoLayer(_write(tmp_path, random_model_arrays), dtype=torch.float32)
    pose = torch.randn(4, 16, 3) * 0.4
    betas = torch.randn(4, 10)
    eager = layer(pose, betas)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    out = compiled(pose, betas)
    assert torch.allclose(out.vertices, eager.vertices, atol=1e-6)
    assert torch.allclose(out.keypoints, eager.keypoints, atol=1e-6)


@pytest.mark.slow
def test_compiles_with_inductor(random_model_arrays, tmp_path):
    """The default backend generates C++ here (~30 s): the forward has no graph breaks and no
    host synchronisation, and the backward compiles too."""
    layer = ManoLayer(_write(tmp_path, random_model_arrays))
    pose = (torch.randn(3, 16, 3) * 0.4).requires_grad_()
    eager = layer(pose)
    compiled = torch.compile(layer, fullgraph=True)
    out = compiled(pose)
    assert torch.allclose(out.vertices, eager.vertices, atol=1e-5)
    out.vertices.sum().backward()
    assert pose.grad is not None and torch.isfinite(pose.grad).all()


def test_model_arrays_never_enter_a_state_dict(random_model_arrays, tmp_path):
    """MANO is licensed: checkpoints of networks holding a ManoLayer must not carry it."""
    layer = ManoLayer(_write(tmp_path, random_model_arrays))
    assert layer.state_dict() == {}
    wrapper = torch.nn.ModuleDict({"mano": layer, "head": torch.nn.Linear(2, 2)})
    assert all(not k.startswith("mano.") for k in wrapper.state_dict())
    # the layer still moves with .to() (buffers, just not persistent ones)
    assert layer.to(torch.float64).v_template.dtype == torch.float64


@pytest.mark.parametrize(
    "parents",
    [
        (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14),  # MANO: stacked views
        (-1, 0, 0, 1, 2, 1, 3, 5),  # uneven levels: gathers and a permutation
        (-1, 0, 1, 2, 3),  # a single chain
        (-1,),  # a root alone
    ],
)
def test_kinematic_tree_matches_generic_forward_kinematics(parents):
    from hand_lib.geometry.rotations import axis_angle_to_matrix
    from hand_lib.mano.lbs import KinematicTree, forward_kinematics, kinematic_levels

    J = len(parents)
    rot = axis_angle_to_matrix(torch.randn(3, J, 3, dtype=torch.float64))
    rest = torch.randn(3, J, 3, dtype=torch.float64)
    levels = [(torch.as_tensor(a), torch.as_tensor(b)) for a, b in kinematic_levels(parents)]
    want_rot, want_pos = forward_kinematics(rot, rest, levels)
    got_rot, got_pos = KinematicTree(parents)(rot, rest)
    torch.testing.assert_close(got_rot, want_rot, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_pos, want_pos, rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ["pose", "betas", "transl"])
def test_gradcheck_each_input_alone(random_model_arrays, tmp_path, which):
    """The hand-written skinning backward skips what is not needed: check each path."""
    layer = ManoLayer(_write(tmp_path, random_model_arrays), dtype=torch.float64)
    inputs = {
        "pose": torch.randn(2, 16, 3, dtype=torch.float64) * 0.5,
        "betas": torch.randn(2, 10, dtype=torch.float64),
        "transl": torch.randn(2, 3, dtype=torch.float64),
    }
    inputs[which].requires_grad_()

    def f(x):
        args = dict(inputs, **{which: x})
        out = layer(args["pose"], args["betas"], args["transl"])
        return out.vertices[:, ::5], out.keypoints

    assert torch.autograd.gradcheck(f, (inputs[which],), atol=1e-6)


def test_translation_of_another_dtype_is_cast(random_model_arrays, tmp_path):
    layer = ManoLayer(_write(tmp_path, random_model_arrays))  # float32
    pose, transl = torch.randn(2, 16, 3) * 0.3, torch.randn(2, 3)
    want = layer(pose, None, transl)
    got = layer(pose, None, transl.double())
    assert got.vertices.dtype == torch.float32
    torch.testing.assert_close(got.vertices, want.vertices)
    torch.testing.assert_close(got.keypoints, want.keypoints)
