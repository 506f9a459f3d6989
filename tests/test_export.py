"""Submission files: FreiHAND/HO-3D pred.json layout, joint order, frame, atomic writes."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

import hand_lib.eval.export as export
from hand_lib.eval import (
    FREIHAND_TO_HO3D,
    HO3D_TO_FREIHAND,
    read_pred_json,
    write_freihand_pred_json,
    write_ho3d_pred_json,
    zip_submission,
)


def _preds(n: int = 3, n_verts: int = 778, seed: int = 0):
    rng = np.random.default_rng(seed)
    xyz = 0.05 * rng.standard_normal((n, 21, 3)) + [0.0, 0.0, 0.6]
    verts = 0.05 * rng.standard_normal((n, n_verts, 3)) + [0.0, 0.0, 0.6]
    return xyz, verts


def test_freihand_round_trip_and_layout(tmp_path):
    xyz, verts = _preds()
    path = write_freihand_pred_json(tmp_path / "sub" / "pred.json", xyz, verts)
    with open(path) as f:
        raw = json.load(f)
    assert isinstance(raw, list) and len(raw) == 2
    assert len(raw[0]) == 3 and len(raw[0][0]) == 21 and len(raw[0][0][0]) == 3
    assert len(raw[1]) == 3 and len(raw[1][0]) == 778
    assert isinstance(raw[0][0][0][0], float)
    xyz_r, verts_r = read_pred_json(path)
    np.testing.assert_array_equal(xyz_r, xyz)  # JSON round-trips doubles exactly
    np.testing.assert_array_equal(verts_r, verts)
    assert [p.name for p in path.parent.iterdir()] == ["pred.json"]  # no temp files left


def test_torch_float32_input(tmp_path):
    xyz, verts = _preds(2)
    xyz32 = torch.tensor(xyz, dtype=torch.float32)
    verts32 = torch.tensor(verts, dtype=torch.float32)
    path = write_freihand_pred_json(tmp_path / "pred.json", xyz32, verts32, expected_count=2)
    xyz_r, verts_r = read_pred_json(path)
    np.testing.assert_array_equal(xyz_r, xyz32.double().numpy())
    np.testing.assert_array_equal(verts_r, verts32.double().numpy())


@pytest.mark.parametrize(
    ("xyz_shape", "verts_shape", "match"),
    [
        ((3, 20, 3), (3, 778, 3), r"xyz_m must have shape \(N, 21, 3\)"),
        ((3, 21, 3), (3, 778, 2), r"verts_m must have shape \(N, V, 3\)"),
        ((3, 21, 3), (2, 778, 3), "samples"),
        ((0, 21, 3), (0, 778, 3), "no samples"),
    ],
)
def test_shape_validation(tmp_path, xyz_shape, verts_shape, match):
    with pytest.raises(ValueError, match=match):
        write_freihand_pred_json(tmp_path / "p.json", np.zeros(xyz_shape), np.zeros(verts_shape))
    assert not any(tmp_path.iterdir())


def test_value_validation(tmp_path):
    xyz, verts = _preds()
    bad = xyz.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_freihand_pred_json(tmp_path / "p.json", bad, verts)
    with pytest.raises(ValueError, match="millimetres"):
        write_freihand_pred_json(tmp_path / "p.json", xyz * 1000, verts * 1000)
    with pytest.raises(ValueError, match="expected 3960"):
        write_freihand_pred_json(tmp_path / "p.json", xyz, verts, expected_count=3960)
    with pytest.raises(TypeError):
        write_freihand_pred_json(tmp_path / "p.json", xyz.tolist(), verts)


def test_failed_write_leaves_previous_file_untouched(tmp_path, monkeypatch):
    xyz, verts = _preds()
    path = write_freihand_pred_json(tmp_path / "pred.json", xyz, verts)
    before = path.read_bytes()

    def exploding_dump(obj, fp, **kwargs):
        fp.write('[[[')  # a partial write, then failure
        raise OSError("disk full")

    monkeypatch.setattr(export.json, "dump", exploding_dump)
    with pytest.raises(OSError, match="disk full"):
        write_freihand_pred_json(path, xyz + 0.01, verts)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pred.json"]


def test_ho3d_order_permutations_are_inverse():
    assert sorted(HO3D_TO_FREIHAND) == list(range(21))
    assert [HO3D_TO_FREIHAND[i] for i in FREIHAND_TO_HO3D] == list(range(21))
    assert [FREIHAND_TO_HO3D[i] for i in HO3D_TO_FREIHAND] == list(range(21))


def test_ho3d_joint_order_and_opengl_frame(tmp_path):
    xyz, verts = _preds(2)
    path = write_ho3d_pred_json(tmp_path / "pred.json", xyz, verts)
    xyz_h, verts_h = read_pred_json(path)
    flip = np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(verts_h, verts * flip)
    # HO-3D order: wrist, index(3), middle(3), pinky(3), ring(3), thumb(3), tips T I M R P
    named = {0: 0, 1: 5, 4: 9, 7: 17, 10: 13, 13: 1, 15: 3, 16: 4, 17: 8, 18: 12, 19: 16, 20: 20}
    for ho3d_idx, freihand_idx in named.items():
        np.testing.assert_allclose(xyz_h[:, ho3d_idx], xyz[:, freihand_idx] * flip)
    # undoing both steps gives the input back
    np.testing.assert_allclose(xyz_h[:, list(HO3D_TO_FREIHAND)] * flip, xyz)
    assert (xyz_h[..., 2] < 0).all()


def test_ho3d_inputs_already_in_ho3d_order_and_opengl(tmp_path):
    xyz, verts = _preds(2)
    gl = np.array([1.0, -1.0, -1.0])
    path = write_ho3d_pred_json(tmp_path / "pred.json", xyz * gl, verts * gl,
                                joint_order="ho3d", frame="opengl")
    xyz_h, verts_h = read_pred_json(path)
    np.testing.assert_array_equal(xyz_h, xyz * gl)
    np.testing.assert_array_equal(verts_h, verts * gl)


def test_ho3d_rejects_wrong_frame(tmp_path):
    xyz, verts = _preds(2)
    # OpenCV data declared as OpenGL: every z > 0, as HO-3D's own pred.py refuses
    with pytest.raises(ValueError, match="z > 0"):
        write_ho3d_pred_json(tmp_path / "pred.json", xyz, verts, frame="opengl")
    with pytest.raises(ValueError, match="frame"):
        write_ho3d_pred_json(tmp_path / "pred.json", xyz, verts, frame="gl")
    with pytest.raises(ValueError, match="joint_order"):
        write_ho3d_pred_json(tmp_path / "pred.json", xyz, verts, joint_order="mano")
    assert not (tmp_path / "pred.json").exists()


def test_zip_submission_is_flat(tmp_path):
    xyz, verts = _preds(1)
    path = write_freihand_pred_json(tmp_path / "out" / "pred.json", xyz, verts)
    zpath = zip_submission(path)
    assert zpath == tmp_path / "out" / "pred.zip"
    with zipfile.ZipFile(zpath) as zf:
        assert zf.namelist() == ["pred.json"]
        assert zf.read("pred.json") == path.read_bytes()
