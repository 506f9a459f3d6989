"""Model file I/O: chumpy-free pickles, npz, validation errors, the left-hand shapedirs bug."""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from hand_lib.mano import ManoFileError, load_model_file, save_model_file
from hand_lib.mano.io import left_shapedirs_look_unmirrored, resolve_model_path


def _fake_chumpy_pickle(arrays: dict, path: Path) -> None:
    """Write a pickle that references chumpy classes, as the official MANO files do.

    A throwaway ``chumpy.ch`` module with a ``Ch`` class is registered only while pickling;
    chumpy itself is never imported. Like the real class, the state is a dict whose key
    ``x`` holds the array.
    """
    chumpy = types.ModuleType("chumpy")
    ch_mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __reduce__(self):
            return (copyreg._reconstructor, (Ch, object, None), self.__dict__)

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch_mod.Ch = Ch
    chumpy.ch = ch_mod
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch_mod
    try:
        wrapped = {}
        for key, value in arrays.items():
            if key in ("v_template", "shapedirs", "posedirs", "weights", "hands_mean"):
                obj = Ch()
                obj.__dict__.update({"x": np.asarray(value), "_dirty_vars": set()})
                wrapped[key] = obj
            else:
                wrapped[key] = value
        with open(path, "wb") as fh:
            pickle.dump(wrapped, fh, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert b"chumpy.ch" in path.read_bytes()


def test_chumpy_pickle_loads_without_chumpy(tmp_path, random_model_arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    _fake_chumpy_pickle(random_model_arrays, path)
    assert "chumpy" not in sys.modules
    model = load_model_file(path)
    np.testing.assert_array_equal(model.v_template, random_model_arrays["v_template"])
    np.testing.assert_array_equal(model.posedirs, random_model_arrays["posedirs"])
    # the scipy-sparse regressor becomes dense
    assert isinstance(model.J_regressor, np.ndarray)
    np.testing.assert_allclose(model.J_regressor, random_model_arrays["J_regressor"].toarray())
    assert model.parents.tolist() == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    assert model.side == "right"


def test_chumpy_expression_gives_clear_error(tmp_path, random_model_arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    _fake_chumpy_pickle(random_model_arrays, path)
    # swap the state key so the object is no plain Ch array
    data = path.read_bytes().replace(b"X\x01\x00\x00\x00xq", b"X\x01\x00\x00\x00aq", 1)
    path.write_bytes(data)
    with pytest.raises(ManoFileError, match="v_template|shapedirs|posedirs|weights|hands_mean"):
        load_model_file(path)


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_round_trip(tmp_path, random_model_arrays, suffix):
    path = save_model_file(tmp_path / f"model{suffix}", random_model_arrays)
    model = load_model_file(path)
    for key, attr in [
        ("v_template", "v_template"),
        ("shapedirs", "shapedirs"),
        ("posedirs", "posedirs"),
        ("weights", "weights"),
        ("hands_components", "hands_components"),
        ("hands_mean", "hands_mean"),
    ]:
        np.testing.assert_array_equal(getattr(model, attr), random_model_arrays[key])
    np.testing.assert_array_equal(model.faces, random_model_arrays["f"].astype(np.int64))
    np.testing.assert_array_equal(model.tip_vertex_ids, random_model_arrays["tip_vertex_ids"])
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_missing_file_says_where_to_put_mano(tmp_path):
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de.*open hand model"):
        load_model_file(tmp_path / "MANO_RIGHT.pkl")
    with pytest.raises(FileNotFoundError, match="MANO_LEFT"):
        resolve_model_path(tmp_path, side="left")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("v_template", np.zeros((120, 2)), r"'v_template' has shape \(120, 2\), expected \(N, 3\)"),
        ("weights", np.zeros((120, 15)), r"'weights' has shape \(120, 15\), expected \(120, 16\)"),
        ("posedirs", np.zeros((120, 3, 10)), r"'posedirs'.*expected \(120, 3, 135\)"),
        ("hands_mean", np.zeros(44), r"'hands_mean'.*expected \(45,\)"),
        ("f", np.full((10, 3), 500), r"'f' indexes vertices outside"),
        ("tip_vertex_ids", np.array([1, 2, 3, 4, 999]), r"tip vertex ids"),
    ],
)
def test_bad_arrays_name_file_and_key(tmp_path, random_model_arrays, key, value, message):
    arrays = dict(random_model_arrays, **{key: value})
    path = save_model_file(tmp_path / "MANO_RIGHT.pkl", arrays)
    with pytest.raises(ManoFileError, match=message) as info:
        load_model_file(path)
    assert str(path) in str(info.value)


def test_missing_key_and_garbage(tmp_path, random_model_arrays):
    arrays = {k: v for k, v in random_model_arrays.items() if k != "posedirs"}
    path = tmp_path / "MANO_RIGHT.pkl"
    with open(path, "wb") as fh:
        pickle.dump(arrays, fh)
    with pytest.raises(ManoFileError, match=r"missing key\(s\) \['posedirs'\]"):
        load_model_file(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ManoFileError, match="not a readable MANO pickle"):
        load_model_file(path)


def _mirror_shapedirs(arrays: dict) -> dict:
    """A correctly mirrored left hand of ``arrays`` (x negated)."""
    left = dict(arrays)
    left["v_template"] = arrays["v_template"] * [-1, 1, 1]
    left["shapedirs"] = arrays["shapedirs"] * np.array([-1, 1, 1])[None, :, None]
    return left


def test_left_shapedirs_bug_detected_and_fixed(tmp_path):
    # a hand-like template: a scaling shape component moves points away from the centre
    rng = np.random.default_rng(3)
    from conftest import random_mano_arrays

    right = random_mano_arrays()
    v = right["v_template"] = rng.normal(size=(120, 3)) * [0.05, 0.09, 0.02]
    right["shapedirs"][:, :, 0] = (v - v.mean(0)) * 0.1  # size
    right["shapedirs"][:, :, 1] = (v - v.mean(0)) * [0.0, 0.1, 0.0]  # length
    good_left = _mirror_shapedirs(right)
    buggy_left = dict(good_left, shapedirs=right["shapedirs"].copy())  # x not mirrored

    # without the right file: geometry heuristic
    assert not left_shapedirs_look_unmirrored(good_left["v_template"], good_left["shapedirs"])
    assert left_shapedirs_look_unmirrored(buggy_left["v_template"], buggy_left["shapedirs"])
    # with the right file: exact comparison
    assert left_shapedirs_look_unmirrored(
        buggy_left["v_template"], buggy_left["shapedirs"], right["shapedirs"]
    )

    save_model_file(tmp_path / "MANO_RIGHT.pkl", right)
    save_model_file(tmp_path / "MANO_LEFT.pkl", buggy_left)
    with pytest.warns(UserWarning, match="smplx issue #48"):
        fixed = load_model_file(tmp_path / "MANO_LEFT.pkl")
    assert fixed.side == "left"
    np.testing.assert_allclose(fixed.shapedirs, good_left["shapedirs"])
    kept = load_model_file(tmp_path / "MANO_LEFT.pkl", fix_left_shapedirs=False)
    np.testing.assert_allclose(kept.shapedirs, right["shapedirs"])
    save_model_file(tmp_path / "MANO_LEFT.pkl", good_left)
    np.testing.assert_allclose(
        load_model_file(tmp_path / "MANO_LEFT.pkl").shapedirs, good_left["shapedirs"]
    )


def test_sparse_regressor_in_npz_is_dense(tmp_path, random_model_arrays):
    assert scipy.sparse.issparse(random_model_arrays["J_regressor"])
    path = save_model_file(tmp_path / "m.npz", random_model_arrays)
    with np.load(path) as npz:  # no pickle needed: plain arrays
        assert npz["J_regressor"].shape == (16, 120)
