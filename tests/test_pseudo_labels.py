"""Label files: HanCo/HaMuCo, S2HAND and OpenPose round trips, errors, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hand_lib.pseudo.labels import (
    LabelFormatError,
    atomic_write_json,
    hanco_label_path,
    read_hanco_label,
    read_openpose_hand,
    read_s2hand_detections,
    write_hanco_label,
    write_openpose_hand,
    write_s2hand_detections,
)


def _label(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kps = rng.uniform(0, 224, (21, 2))
    conf = rng.uniform(0.05, 1.0, 21)
    conf[3] = 0.0  # a missing joint
    kps[3] = 0.0
    return kps, conf


def test_hanco_round_trip_and_layout(tmp_path):
    kps, conf = _label()
    path = hanco_label_path(tmp_path, 12, 3, 45)
    assert path == tmp_path / "rgb_2D_keypoints" / "0012" / "cam3" / "00000045.json"
    assert write_hanco_label(path, kps, conf)
    raw = json.loads(path.read_text())
    assert isinstance(raw, list) and len(raw) == 2 and len(raw[0]) == 21 and len(raw[1]) == 21
    kps2, conf2 = read_hanco_label(path)
    np.testing.assert_allclose(kps2, kps, atol=1e-3)
    np.testing.assert_allclose(conf2, conf, atol=1e-4)
    assert conf2[3] == 0.0


def test_hanco_confidences_in_any_nesting(tmp_path):
    # Like the HanCo loader, accept the 21 confidences in any nesting (e.g. 21 x 1).
    kps, conf = _label(1)
    path = tmp_path / "a.json"
    path.write_text(json.dumps([kps.tolist(), conf[:, None].tolist()]))
    np.testing.assert_allclose(read_hanco_label(path)[1], conf)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", r"invalid JSON.*expected \[keypoints 21x2, confidences 21\]"),
        ('{"kps": 1}', r"expected \[keypoints 21x2, confidences 21\], got dict"),
        ("[[1, 2], [3]]", r"\[0\] \(keypoints\) has shape \(2,\), expected \(21, 2\)"),
        (json.dumps([[[0, 0]] * 21, [0.5] * 20]), r"\[1\] \(confidences\) has shape \(20,\)"),
        (json.dumps([[[0, 0]] * 21, [-0.5] * 21]), r"negative"),
        (json.dumps([[["a", 0]] * 21, [0.5] * 21]), r"not numeric"),
    ],
)
def test_hanco_malformed_files_name_file_and_expectation(tmp_path, content, message):
    path = tmp_path / "bad_label.json"
    path.write_text(content)
    with pytest.raises(LabelFormatError, match=message) as info:
        read_hanco_label(path)
    assert str(info.value).startswith(str(path))
    assert info.value.path == path


def test_missing_file_is_named(tmp_path):
    with pytest.raises(LabelFormatError, match=r"nope\.json: file not found"):
        read_hanco_label(tmp_path / "nope.json")


def test_s2hand_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    kps = rng.uniform(0, 224, (5, 21, 2))
    conf = rng.uniform(0, 1, (5, 21))
    names = [f"{i:08d}.jpg" for i in range(5)]
    path = tmp_path / "det" / "freihand_train.json"
    assert write_s2hand_detections(path, kps, conf, names)
    det = read_s2hand_detections(path)
    assert len(det) == 5 and det.names == tuple(names)
    np.testing.assert_allclose(det.keypoints, kps, atol=1e-3)
    np.testing.assert_allclose(det.confidence, conf, atol=1e-4)
    # Two-element files (no names) are read with index names.
    path.write_text(json.dumps([kps.tolist(), conf.tolist()]))
    assert read_s2hand_detections(path).names == ("0", "1", "2", "3", "4")
    # Empty dataset.
    write_s2hand_detections(path, np.zeros((0, 21, 2)), np.zeros((0, 21)), [])
    assert len(read_s2hand_detections(path)) == 0


def test_s2hand_malformed(tmp_path):
    path = tmp_path / "s2.json"
    kps = np.zeros((2, 21, 2)).tolist()
    path.write_text(json.dumps([kps, np.zeros((3, 21)).tolist(), ["a", "b"]]))
    with pytest.raises(LabelFormatError, match=r"s2\.json: \[1\] \(conf\) has shape \(3, 21\), "
                       r"expected \(2, 21\)"):
        read_s2hand_detections(path)
    path.write_text(json.dumps([kps, np.zeros((2, 21)).tolist(), ["a"]]))
    with pytest.raises(LabelFormatError, match=r"names.*1 entries, expected 2"):
        read_s2hand_detections(path)
    path.write_text(json.dumps([kps]))
    with pytest.raises(LabelFormatError, match=r"expected \[xy Nx21x2, conf Nx21, names N\]"):
        read_s2hand_detections(path)
    with pytest.raises(ValueError, match="distinct"):
        write_s2hand_detections(path, np.zeros((2, 21, 2)), np.zeros((2, 21)), ["a", "a"])


def test_openpose_round_trip_and_native_layout(tmp_path):
    kps, conf = _label(3)
    path = tmp_path / "op" / "00000001_keypoints.json"
    assert write_openpose_hand(path, kps, conf)
    raw = json.loads(path.read_text())
    flat = raw["people"][0]["hand_right_keypoints_2d"]
    assert len(flat) == 63
    np.testing.assert_allclose(flat[3:6], [*kps[1], conf[1]], atol=1e-3)
    kps2, conf2 = read_openpose_hand(path)
    np.testing.assert_allclose(kps2, kps, atol=1e-3)
    np.testing.assert_allclose(conf2, conf, atol=1e-3)
    # The left hand slot is empty: reading it gives "no hand found".
    k_left, c_left = read_openpose_hand(path, hand="left")
    assert (c_left == 0).all() and (k_left == 0).all()


def test_openpose_no_hand_and_several_people(tmp_path):
    path = tmp_path / "none.json"
    write_openpose_hand(path, np.zeros((21, 2)), np.zeros(21))
    assert json.loads(path.read_text())["people"] == []
    kps, conf = read_openpose_hand(path)
    assert (conf == 0).all()
    # Two people: the hand with the larger total confidence wins.
    weak = np.concatenate([np.ones((21, 2)), np.full((21, 1), 0.1)], 1).reshape(-1)
    strong = np.concatenate([np.full((21, 2), 5.0), np.full((21, 1), 0.9)], 1).reshape(-1)
    doc = {"version": 1.3, "people": [
        {"hand_right_keypoints_2d": weak.tolist(), "hand_left_keypoints_2d": []},
        {"hand_right_keypoints_2d": strong.tolist(), "hand_left_keypoints_2d": []}]}
    path.write_text(json.dumps(doc))
    kps, conf = read_openpose_hand(path)
    np.testing.assert_allclose(kps, 5.0)
    np.testing.assert_allclose(conf, 0.9)


def test_openpose_malformed(tmp_path):
    path = tmp_path / "op.json"
    path.write_text(json.dumps({"version": 1.3}))
    with pytest.raises(LabelFormatError, match=r"op\.json: missing key 'people'"):
        read_openpose_hand(path)
    path.write_text(json.dumps({"people": [{"hand_right_keypoints_2d": [0.0] * 60}]}))
    with pytest.raises(LabelFormatError, match=r"hand_right_keypoints_2d has shape \(60,\), "
                       r"expected \(63,\)"):
        read_openpose_hand(path)
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": []}]}))
    with pytest.raises(LabelFormatError, match=r"people\[0\] has no key 'hand_right"):
        read_openpose_hand(path)


def test_writers_check_inputs(tmp_path):
    kps, conf = _label()
    with pytest.raises(ValueError, match=r"keypoints must have shape \(21, 2\)"):
        write_hanco_label(tmp_path / "x.json", kps[:20], conf)
    bad = kps.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        write_hanco_label(tmp_path / "x.json", bad, conf)
    assert not (tmp_path / "x.json").exists()


def test_atomic_write_leaves_nothing_when_dump_fails(tmp_path, monkeypatch):
    kps, conf = _label()
    path = tmp_path / "lab" / "00000000.json"
    write_hanco_label(path, kps, conf)
    before = path.read_bytes()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        write_hanco_label(path, kps + 1, conf)
    with pytest.raises(OSError, match="disk full"):
        write_openpose_hand(tmp_path / "lab" / "new.json", kps, conf)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(os.listdir(path.parent)) == ["00000000.json"]  # no partial or temp file


def test_overwrite_false_keeps_existing_file(tmp_path):
    kps, conf = _label()
    path = tmp_path / "a.json"
    assert write_hanco_label(path, kps, conf)
    assert not write_hanco_label(path, kps + 5, conf, overwrite=False)
    np.testing.assert_allclose(read_hanco_label(path)[0], kps, atol=1e-3)
    assert atomic_write_json(tmp_path / "b.json", {"a": 1}, overwrite=False)
