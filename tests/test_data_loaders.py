"""Dataset loaders on small fixtures written in the real HanCo, FreiHAND and HO3D layouts."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hand_lib.data import (
    HO3D,
    FreiHAND,
    FreiHANDFormatError,
    HanCo,
    HanCoFormatError,
    HO3DFormatError,
    reorder_joints,
)
from hand_lib.data import hanco as hanco_module
from hand_lib.data.joints import (
    FREIHAND_JOINT_NAMES,
    FREIHAND_PARENTS,
    FREIHAND_TO_HO3D,
    HO3D_JOINT_NAMES,
    HO3D_TO_FREIHAND,
)
from hand_lib.data.transforms import CropConfig, HandCrop
from hand_lib.geometry.camera import project_points
from hand_lib.mano.joints import MANO_TO_FREIHAND

# Written out by hand (not derived from the module under test).
FREIHAND_ORDER = [
    "wrist",
    "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
]  # fmt: skip
HO3D_ORDER = [
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "pinky_mcp", "pinky_pip", "pinky_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_mcp", "thumb_pip", "thumb_dip",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
]  # fmt: skip

V = 8
IMG = 32
META_KEYS = ("is_train", "subject_id", "is_valid", "object_id", "has_fit")


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (IMG, IMG),
                fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt, quality=95)


def mean_colour(image: torch.Tensor) -> np.ndarray:
    return (image.mean((-1, -2)) * 255).numpy()


def project_np(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    uvw = points_cam @ K.T
    return uvw[:, :2] / uvw[:, 2:]


# --------------------------------------------------------------------------- HanCo fixture


def hanco_colour(seq: int, cam: int, frame: int) -> tuple[int, int, int]:
    """Image colour that says which (seq, cam, frame) an image is."""
    return (16 + 28 * cam, 30 + 50 * frame, 40 + 60 * (seq % 4))


def look_at(centre: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera matrix of a camera at ``centre`` looking at the origin."""
    z = -centre / np.linalg.norm(centre)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, -R @ centre
    return M


def make_hanco(root: Path, frames: dict[int, int] | None = None,
               pseudo_dir: str | None = "rgb_2D_keypoints",
               image_dirs: tuple[str, ...] = ("rgb",),
               seed: int = 0) -> dict[tuple[int, int], dict]:
    """Write a HanCo-layout fixture; return the ground truth per (seq, frame)."""
    frames = frames if frames is not None else {0: 3, 1: 2, 1200: 2}
    rng = np.random.default_rng(seed)
    n_seq = max(frames) + 1
    meta: dict[str, list[list[Any]]] = {k: [[] for _ in range(n_seq)] for k in META_KEYS}
    truth = {}
    for seq, n in frames.items():
        for frame in range(n):
            K = np.zeros((V, 3, 3))
            M = np.zeros((V, 4, 4))
            for k in range(V):
                f = 40 + rng.uniform(-3, 3)
                K[k] = [[f, 0, 15.5 + rng.uniform(-1, 1)], [0, f * 1.01, 15.5 + rng.uniform(-1, 1)],
                        [0, 0, 1]]
                a = 2 * np.pi * k / V + rng.uniform(-0.1, 0.1)
                M[k] = look_at(np.array([0.6 * np.cos(a), 0.6 * np.sin(a), 0.1]))
            xyz = rng.uniform(-0.04, 0.04, (21, 3))
            cam = np.einsum("vij,nj->vni", M[:, :3, :3], xyz) + M[:, None, :3, 3]
            kps = np.stack([project_np(cam[k], K[k]) for k in range(V)])
            pseudo = kps + rng.normal(0, 0.5, kps.shape)
            conf = rng.uniform(0.2, 1.0, (V, 21))
            pose, shape, trans = rng.normal(size=48), rng.normal(size=10), rng.normal(size=3)
            mano_cam = rng.normal(size=(V, 61))
            write_json(root / "calib" / f"{seq:04d}" / f"{frame:08d}.json",
                       {"K": K.tolist(), "M": M.tolist()})
            write_json(root / "xyz" / f"{seq:04d}" / f"{frame:08d}.json", xyz.tolist())
            write_json(root / "shape" / f"{seq:04d}" / f"{frame:08d}.json",
                       {"poses": [pose.tolist()], "shapes": [shape.tolist()],
                        "global_t": [[trans.tolist()]]})
            for k in range(V):
                for d in image_dirs:
                    write_image(root / d / f"{seq:04d}" / f"cam{k}" / f"{frame:08d}.jpg",
                                hanco_colour(seq, k, frame))
                if pseudo_dir is not None:
                    write_json(root / pseudo_dir / f"{seq:04d}" / f"cam{k}" / f"{frame:08d}.json",
                               [pseudo[k].tolist(), conf[k].tolist()])
                write_json(root / "shape" / f"{seq:04d}" / f"cam{k}" / f"{frame:08d}.json",
                           [mano_cam[k].tolist()])
            meta["is_train"][seq].append(seq < 1200)
            meta["subject_id"][seq].append(seq % 3)
            meta["is_valid"][seq].append(frame != 1)
            meta["object_id"][seq].append(None if frame == 0 else 5)
            meta["has_fit"][seq].append(True)
            truth[(seq, frame)] = dict(K=K, M=M, xyz=xyz, cam=cam, kps=kps, pseudo=pseudo,
                                       conf=conf, pose=pose, shape=shape, trans=trans,
                                       mano_cam=mano_cam)
    write_json(root / "meta.json", meta)
    return truth


@pytest.fixture
def hanco(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "HanCo"
    return root, make_hanco(root)


def check_views(sample: dict, truth: dict, seq: int, frame: int) -> None:
    for j, k in enumerate(sample["cams"].tolist()):
        if not sample["view_mask"][j]:
            continue
        np.testing.assert_allclose(mean_colour(sample["image"][j]), hanco_colour(seq, k, frame),
                                   atol=4)


# --------------------------------------------------------------------------- joints


def test_joint_orders() -> None:
    assert list(FREIHAND_JOINT_NAMES) == FREIHAND_ORDER
    assert list(HO3D_JOINT_NAMES) == HO3D_ORDER
    assert HO3D_TO_FREIHAND == (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19,
                                7, 8, 9, 20)
    assert HO3D_TO_FREIHAND == MANO_TO_FREIHAND  # HO3D = MANO's 16 joints + tips thumb..pinky
    assert [HO3D_ORDER[i] for i in HO3D_TO_FREIHAND] == FREIHAND_ORDER
    assert [FREIHAND_ORDER[i] for i in FREIHAND_TO_HO3D] == HO3D_ORDER
    x = torch.randn(2, 21, 3)
    torch.testing.assert_close(reorder_joints(reorder_joints(x, HO3D_TO_FREIHAND),
                                              FREIHAND_TO_HO3D), x)
    # every finger is a chain wrist -> 1 -> 2 -> 3 -> 4
    for f in range(5):
        base = 1 + 4 * f
        assert FREIHAND_PARENTS[base] == 0
        assert [FREIHAND_PARENTS[base + i] for i in (1, 2, 3)] == [base, base + 1, base + 2]
    with pytest.raises(ValueError):
        reorder_joints(torch.zeros(20, 3), HO3D_TO_FREIHAND)


# --------------------------------------------------------------------------- HanCo


def test_hanco_multi_view_values(hanco: tuple[Path, dict]) -> None:
    root, truth = hanco
    ds = HanCo(root, split="train", mode="multi")
    assert len(ds) == 5 and ds.num_skipped_frames == 0 and ds.num_incomplete_frames == 0
    assert ds.items[:, :2].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]
    for i, (seq, frame) in enumerate(ds.items[:, :2].tolist()):
        s, t = ds[i], truth[(seq, frame)]
        assert s["image"].shape == (V, 3, IMG, IMG) and s["image"].dtype == torch.float32
        assert 0 <= s["image"].min() and s["image"].max() <= 1
        assert s["view_mask"].all() and s["cams"].tolist() == list(range(V))
        np.testing.assert_allclose(s["K"].numpy(), t["K"], rtol=1e-6)
        np.testing.assert_allclose(s["M"].numpy(), t["M"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s["joints_world"].numpy(), t["xyz"], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s["joints_cam"].numpy(), t["cam"], rtol=1e-6, atol=1e-6)
        # independent projection through each view's K and M lands on the loaded 2D GT
        assert np.abs(s["joints_2d"].numpy() - t["kps"]).max() < 1e-4
        np.testing.assert_allclose(s["pseudo_2d"].numpy(), t["pseudo"], atol=1e-4)
        np.testing.assert_allclose(s["pseudo_conf"].numpy(), t["conf"], atol=1e-6)
        assert s["pseudo_valid"].all()
        np.testing.assert_allclose(s["mano_pose"].numpy(), t["pose"], atol=1e-6)
        np.testing.assert_allclose(s["mano_shape"].numpy(), t["shape"], atol=1e-6)
        np.testing.assert_allclose(s["mano_trans"].numpy(), t["trans"], atol=1e-6)
        np.testing.assert_allclose(s["mano_cam"].numpy(), t["mano_cam"], atol=1e-6)
        assert s["has_mano"] and s["has_mano_cam"].all()
        assert int(s["seq"]) == seq and int(s["frame"]) == frame and int(s["index"]) == i
        assert bool(s["is_train"]) and int(s["subject_id"]) == seq % 3
        assert bool(s["is_valid"]) == (frame != 1)
        assert int(s["object_id"]) == (-1 if frame == 0 else 5)
        check_views(s, truth, seq, frame)


def test_hanco_single_view_and_splits(hanco: tuple[Path, dict]) -> None:
    root, truth = hanco
    ds = HanCo(root, split="train", mode="single")
    assert len(ds) == 5 * V
    s = ds[V + 3]  # (seq 0, frame 1, cam 3)
    assert ds.items[V + 3].tolist() == [0, 1, 3]
    assert s["image"].shape == (3, IMG, IMG) and s["K"].shape == (3, 3)
    assert s["joints_2d"].shape == (21, 2) and s["pseudo_conf"].shape == (21,)
    assert int(s["cam"]) == 3 and "view_mask" not in s
    np.testing.assert_allclose(mean_colour(s["image"]), hanco_colour(0, 3, 1), atol=4)
    assert np.abs(s["joints_2d"].numpy() - truth[(0, 1)]["kps"][3]).max() < 1e-4
    # standard split by sequence id: < 1200 train, >= 1200 test
    test = HanCo(root, split="test", mode="multi")
    assert len(test) == 2 and set(test.items[:, 0].tolist()) == {1200}
    assert not bool(test[0]["is_train"])
    assert len(HanCo(root, split="all", mode="multi")) == 7
    # configurable split: a callable or explicit lists
    odd = HanCo(root, split="train", mode="multi", split_fn=lambda s: "train" if s % 2 else "test")
    assert set(odd.items[:, 0].tolist()) == {1}
    lists = HanCo(root, split="test", mode="multi", split_fn={"train": [0], "test": [1, 1200]})
    assert set(lists.items[:, 0].tolist()) == {1, 1200}
    with pytest.raises(ValueError, match="returned"):
        HanCo(root, split_fn=lambda s: "val")


@pytest.mark.parametrize("spelling", ["rgb_2D_keypoints", "rgb_2d_keypoints"])
def test_hanco_pseudo_label_spellings(tmp_path: Path, spelling: str) -> None:
    root = tmp_path / "HanCo"
    truth = make_hanco(root, {0: 1}, pseudo_dir=spelling)
    ds = HanCo(root, split="train", mode="multi")
    assert ds.pseudo_dir == spelling
    np.testing.assert_allclose(ds[0]["pseudo_2d"].numpy(), truth[(0, 0)]["pseudo"], atol=1e-4)


def test_hanco_pseudo_label_folder_required_unless_disabled(tmp_path: Path) -> None:
    root = tmp_path / "HanCo"
    make_hanco(root, {0: 1}, pseudo_dir=None)
    with pytest.raises(HanCoFormatError, match="rgb_2D_keypoints"):
        HanCo(root)
    s = HanCo(root, pseudo_labels=False, mode="multi")[0]
    assert not s["pseudo_valid"].any() and s["pseudo_conf"].abs().max() == 0


def test_hanco_missing_view_skip_is_counted_and_does_not_misalign(
        hanco: tuple[Path, dict], caplog: pytest.LogCaptureFixture) -> None:
    root, truth = hanco
    (root / "rgb" / "0000" / "cam3" / "00000001.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="hand_lib.data.hanco"):
        ds = HanCo(root, split="train", mode="multi", missing_views="skip")
    assert len(ds) == 4
    assert ds.num_skipped_frames == 1 and ds.num_incomplete_frames == 1
    assert ds.num_missing_views == 1
    assert "1 frames miss 1 of their 8-view images" in caplog.text and "dropped" in caplog.text
    assert ds.items[:, :2].tolist() == [[0, 0], [0, 2], [1, 0], [1, 1]]
    # every later frame still has the right image in the right view
    for i, (seq, frame) in enumerate(ds.items[:, :2].tolist()):
        s = ds[i]
        check_views(s, truth, seq, frame)
        assert np.abs(s["joints_2d"].numpy() - truth[(seq, frame)]["kps"]).max() < 1e-4
    # single-view mode keeps every image that exists
    assert len(HanCo(root, split="train", mode="single")) == 5 * V - 1


def test_hanco_missing_view_mask(hanco: tuple[Path, dict]) -> None:
    root, truth = hanco
    (root / "rgb" / "0000" / "cam3" / "00000001.jpg").unlink()
    (root / "rgb_2D_keypoints" / "0000" / "cam5" / "00000002.json").unlink()
    ds = HanCo(root, split="train", mode="multi", missing_views="mask")
    assert len(ds) == 5 and ds.num_incomplete_frames == 1 and ds.num_skipped_frames == 0
    assert ds.num_missing_pseudo_labels == 1
    s = ds[1]
    assert s["view_mask"].tolist() == [True, True, True, False, True, True, True, True]
    assert s["image"][3].abs().max() == 0
    assert s["joints_2d"][3].abs().max() == 0 and s["joints_cam"][3].abs().max() == 0
    assert s["pseudo_2d"][3].abs().max() == 0 and s["pseudo_conf"][3].abs().max() == 0
    assert not s["pseudo_valid"][3] and not s["has_mano_cam"][3]
    ok = s["view_mask"].numpy()
    assert np.abs(s["joints_2d"].numpy()[ok] - truth[(0, 1)]["kps"][ok]).max() < 1e-4
    check_views(s, truth, 0, 1)
    # a view with an image but no pseudo label: confidence 0, flagged
    s2 = ds[2]
    assert s2["view_mask"].all() and not s2["pseudo_valid"][5]
    assert s2["pseudo_conf"][5].abs().max() == 0 and s2["pseudo_valid"].sum() == V - 1


def test_hanco_index_is_cached_and_rescanned_on_change(hanco: tuple[Path, dict],
                                                       tmp_path: Path) -> None:
    root, _ = hanco
    a = hanco_module.scan_hanco(root, "rgb", "rgb_2D_keypoints")
    assert hanco_module.scan_hanco(root, "rgb", "rgb_2D_keypoints") is a
    (root / "rgb" / "0001" / "cam0" / "00000000.jpg").unlink()
    b = hanco_module.scan_hanco(root, "rgb", "rgb_2D_keypoints")
    assert b is not a and b.views.sum() == a.views.sum() - 1
    cache = tmp_path / "cache"
    c = hanco_module.scan_hanco(root, "rgb", "rgb_2D_keypoints", cache_dir=cache)
    assert len(list(cache.glob("hanco_index_*.npz"))) == 1
    hanco_module._INDEX_CACHE.clear()
    d = hanco_module.scan_hanco(root, "rgb", "rgb_2D_keypoints", cache_dir=cache)
    assert d is not c and np.array_equal(d.views, c.views) and np.array_equal(d.seqs, c.seqs)


def test_hanco_rgb_merged_and_collate(tmp_path: Path) -> None:
    root = tmp_path / "HanCo"
    make_hanco(root, {0: 2, 1200: 2}, image_dirs=("rgb_merged",))
    with pytest.raises(HanCoFormatError, match="image_dir='rgb_merged'"):
        HanCo(root)
    crop = HandCrop(CropConfig(out_size=24, rotation_deg=90, scale_jitter=0.2), seed=0)
    ds = HanCo(root, split="test", mode="multi", image_dir="rgb_merged", transform=crop)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, V, 3, 24, 24)
    assert batch["K"].shape == (2, V, 3, 3) and batch["view_mask"].shape == (2, V)
    proj = project_points(batch["joints_cam"].double(), batch["K"].double())
    assert (proj - batch["joints_2d"].double()).abs().max() < 1e-3
    single = DataLoader(HanCo(root, split="all", image_dir="rgb_merged"), batch_size=5)
    b = next(iter(single))
    assert b["image"].shape == (5, 3, IMG, IMG) and b["cam"].tolist() == [0, 1, 2, 3, 4]


def test_hanco_bad_layout_names_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "rgb").mkdir()
    with pytest.raises(HanCoFormatError) as e:
        HanCo(tmp_path)
    msg = str(e.value)
    assert "missing calib/, xyz/, meta.json" in msg and "rgb/<seq>/cam<k>/<frame>.jpg" in msg
    with pytest.raises(HanCoFormatError, match="not found"):
        HanCo(tmp_path / "nope")


def test_hanco_bad_files_name_file_and_key(hanco: tuple[Path, dict]) -> None:
    root, truth = hanco
    ds = HanCo(root, split="train", mode="multi")
    calib = root / "calib" / "0000" / "00000001.json"
    t = truth[(0, 1)]
    write_json(calib, {"K": t["K"][:7].tolist(), "M": t["M"].tolist()})
    with pytest.raises(HanCoFormatError) as e:
        ds[1]
    assert str(e.value) == ("calib/0000/00000001.json: key 'K' has shape (7, 3, 3), "
                            "expected (8, 3, 3)")
    assert e.value.key == "K" and e.value.path == calib
    write_json(calib, {"K": t["K"].tolist()})
    with pytest.raises(HanCoFormatError, match=r"calib/0000/00000001.json: missing key 'M'"):
        ds[1]
    calib.write_text('{"K": [1, 2,')
    with pytest.raises(HanCoFormatError, match=r"calib/0000/00000001.json: invalid JSON"):
        ds[1]
    (root / "xyz" / "0000" / "00000002.json").unlink()
    with pytest.raises(HanCoFormatError, match=r"xyz/0000/00000002.json: file not found"):
        ds[2]
    xyz = root / "xyz" / "0001" / "00000000.json"
    write_json(xyz, [[0.0, 0.0, "a"]] * 21)
    with pytest.raises(HanCoFormatError, match=r"xyz/0001/00000000.json: array is not numeric"):
        ds[3]
    write_json(root / "rgb_2D_keypoints" / "0001" / "cam2" / "00000001.json", [[[0, 0]] * 21])
    with pytest.raises(HanCoFormatError,
                       match=r"rgb_2D_keypoints/0001/cam2/00000001.json: expected \[keypoints"):
        ds[4]


def test_hanco_corrupt_jpeg_names_file(hanco: tuple[Path, dict]) -> None:
    root, _ = hanco
    ds = HanCo(root, split="train", mode="multi")
    img = root / "rgb" / "0000" / "cam4" / "00000000.jpg"
    img.write_bytes(img.read_bytes()[:200])  # truncated
    with pytest.raises(HanCoFormatError, match=r"rgb/0000/cam4/00000000.jpg: cannot decode"):
        ds[0]
    img.write_bytes(b"not a jpeg at all")
    with pytest.raises(HanCoFormatError, match=r"rgb/0000/cam4/00000000.jpg: cannot decode"):
        ds[0]


def test_hanco_bad_meta(tmp_path: Path) -> None:
    root = tmp_path / "HanCo"
    make_hanco(root, {0: 2}, pseudo_dir=None)
    meta = json.loads((root / "meta.json").read_text())
    del meta["has_fit"]
    write_json(root / "meta.json", meta)
    with pytest.raises(HanCoFormatError, match="meta.json: missing key 'has_fit'"):
        HanCo(root, pseudo_labels=False)
    meta["has_fit"] = [[True]]  # one frame fewer than on disk
    write_json(root / "meta.json", meta)
    with pytest.raises(HanCoFormatError, match="meta.json: sequence 0000: keys list different"):
        HanCo(root, pseudo_labels=False)
    for k in META_KEYS:
        meta[k] = [meta[k][0][:1]]
    write_json(root / "meta.json", meta)
    with pytest.raises(HanCoFormatError, match="image of frame 1 but meta.json lists 1 frames"):
        HanCo(root, pseudo_labels=False)


def test_hanco_frames_without_any_image_are_counted(hanco: tuple[Path, dict],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    root, _ = hanco
    for k in range(V):
        (root / "rgb" / "0001" / f"cam{k}" / "00000001.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="hand_lib.data.hanco"):
        ds = HanCo(root, split="train", mode="multi", missing_views="mask")
    assert len(ds) == 4 and ds.num_empty_frames == 1 and ds.num_skipped_frames == 1
    assert "no image in any view" in caplog.text


# --------------------------------------------------------------------------- FreiHAND


def freihand_colour(image_id: int) -> tuple[int, int, int]:
    return (20 + 18 * image_id, 200 - 15 * image_id, 90)


def make_freihand(root: Path, n: int = 3, n_eval: int = 2, eval_xyz: bool = False,
                  seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, count in (("training", n), ("evaluation", n_eval)):
        K = np.stack([[[120 + i, 0, 11.5], [0, 120 + i, 12.0], [0, 0, 1]] for i in range(count)])
        xyz = np.stack([np.array([0, 0, 0.6]) + rng.uniform(-0.05, 0.05, (21, 3))
                        for _ in range(count)])
        scale = rng.uniform(0.02, 0.03, count)
        mano = rng.normal(size=(count, 1, 61))
        write_json(root / f"{split}_K.json", K.tolist())
        write_json(root / f"{split}_scale.json", scale.tolist())
        if split == "training" or eval_xyz:
            write_json(root / f"{split}_xyz.json", xyz.tolist())
            write_json(root / f"{split}_mano.json", mano.tolist())
        n_images = 4 * count if split == "training" else count
        for image_id in range(n_images):
            write_image(root / split / "rgb" / f"{image_id:08d}.jpg", freihand_colour(image_id),
                        size=(24, 24))
        out[split] = dict(K=K, xyz=xyz, scale=scale, mano=mano.reshape(count, 61))
    return out


def test_freihand_training_values_and_versions(tmp_path: Path) -> None:
    truth = make_freihand(tmp_path)["training"]
    ds = FreiHAND(tmp_path, "training", version="gs")
    assert len(ds) == 3
    for i in range(3):
        s = ds[i]
        np.testing.assert_allclose(s["K"].numpy(), truth["K"][i], rtol=1e-6)
        np.testing.assert_allclose(s["joints_cam"].numpy(), truth["xyz"][i], atol=1e-7)
        assert np.abs(s["joints_2d"].numpy() - project_np(truth["xyz"][i], truth["K"][i])
                      ).max() < 1e-4
        np.testing.assert_allclose(float(s["scale"]), truth["scale"][i], rtol=1e-6)
        np.testing.assert_allclose(s["mano"].numpy(), truth["mano"][i], atol=1e-6)
        assert s["has_joints"] and s["has_mano"] and int(s["image_id"]) == i
        np.testing.assert_allclose(mean_colour(s["image"]), freihand_colour(i), atol=4)
    # colour versions are offsets of N in training/rgb, with the same annotations
    for v, name in enumerate(("gs", "hom", "sample", "auto")):
        s = FreiHAND(tmp_path, "training", version=name)[1]
        assert int(s["image_id"]) == 1 + 3 * v and int(s["version"]) == v
        np.testing.assert_allclose(mean_colour(s["image"]), freihand_colour(1 + 3 * v), atol=4)
        np.testing.assert_allclose(s["joints_cam"].numpy(), truth["xyz"][1], atol=1e-7)
    both = FreiHAND(tmp_path, "training", version=["hom", "auto"])
    assert len(both) == 6 and [int(both[i]["image_id"]) for i in (0, 3, 5)] == [3, 9, 11]
    batch = next(iter(DataLoader(both, batch_size=4)))
    assert batch["image"].shape == (4, 3, 24, 24) and batch["joints_cam"].shape == (4, 21, 3)


def test_freihand_evaluation(tmp_path: Path) -> None:
    truth = make_freihand(tmp_path)["evaluation"]
    ds = FreiHAND(tmp_path, "evaluation")
    assert len(ds) == 2
    s = ds[1]
    assert not s["has_joints"] and s["joints_cam"].abs().max() == 0 and not s["has_mano"]
    np.testing.assert_allclose(s["K"].numpy(), truth["K"][1], rtol=1e-6)
    with pytest.raises(ValueError, match="single image version"):
        FreiHAND(tmp_path, "evaluation", version="hom")
    root2 = tmp_path / "with_xyz"
    truth2 = make_freihand(root2, eval_xyz=True)["evaluation"]
    s = FreiHAND(root2, "evaluation")[0]
    assert s["has_joints"]
    np.testing.assert_allclose(s["joints_cam"].numpy(), truth2["xyz"][0], atol=1e-7)


def test_freihand_bad_data(tmp_path: Path) -> None:
    truth = make_freihand(tmp_path)["training"]
    write_json(tmp_path / "training_xyz.json", truth["xyz"][:2].tolist())
    with pytest.raises(FreiHANDFormatError,
                       match=r"training_xyz.json: array has shape \(2, 21, 3\), "
                             r"expected \(3, 21, 3\)"):
        FreiHAND(tmp_path)
    write_json(tmp_path / "training_xyz.json", truth["xyz"].tolist())
    (tmp_path / "training_K.json").write_text("[[[1, 2")
    with pytest.raises(FreiHANDFormatError, match="training_K.json: invalid JSON"):
        FreiHAND(tmp_path)
    write_json(tmp_path / "training_K.json", truth["K"].tolist())
    (tmp_path / "training" / "rgb" / "00000002.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(FreiHANDFormatError, match="training/rgb/00000002.jpg: cannot decode"):
        FreiHAND(tmp_path)[2]
    (tmp_path / "training_mano.json").unlink()
    with pytest.raises(FreiHANDFormatError, match="missing training_mano.json"):
        FreiHAND(tmp_path)


# --------------------------------------------------------------------------- HO3D


def make_ho3d(root: Path, version: str = "v2", seed: int = 2) -> dict[str, Any]:
    """Train seq ABF10 frames 0000-0001 (+0002 unannotated), evaluation seq SM1 frame 0000."""
    rng = np.random.default_rng(seed)
    ext, fmt = ("png", "PNG") if version == "v2" else ("jpg", "JPEG")
    K = np.array([[90.0, 0, 31.5], [0, 91.0, 23.5], [0, 0, 1]])
    truth: dict[str, Any] = {"K": K}
    lines = []
    for frame in ("0000", "0001", "0002"):
        named_gl = {name: np.array([0, 0, -0.5]) + rng.uniform(-0.05, 0.05, 3)
                    for name in FREIHAND_ORDER}  # OpenGL: in front of the camera is z < 0
        annotated = frame != "0002"
        meta = {"camMat": K,
                "handJoints3D": np.stack([named_gl[n] for n in HO3D_ORDER]) if annotated
                else None,
                "handPose": rng.normal(size=48) if annotated else None,
                "handBeta": rng.normal(size=10) if annotated else None,
                "handTrans": rng.normal(size=3) if annotated else None,
                "objRot": None, "objName": "006_mustard_bottle"}
        base = root / "train" / "ABF10"
        (base / "meta").mkdir(parents=True, exist_ok=True)
        with open(base / "meta" / f"{frame}.pkl", "wb") as f:
            pickle.dump(meta, f, protocol=2)
        write_image(base / "rgb" / f"{frame}.{ext}", (10, 20, 30), size=(64, 48), fmt=fmt)
        truth[frame] = dict(named_gl=named_gl, meta=meta)
        lines.append(f"ABF10/{frame}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    root_gl = np.array([0.01, -0.02, -0.55])
    box = np.array([10.0, 5.0, 40.0, 30.0])
    base = root / "evaluation" / "SM1"
    (base / "meta").mkdir(parents=True, exist_ok=True)
    with open(base / "meta" / "0000.pkl", "wb") as f:
        pickle.dump({"camMat": K, "handJoints3D": root_gl, "handBoundingBox": box,
                     "objRot": np.zeros(3)}, f, protocol=2)
    write_image(base / "rgb" / f"0000.{ext}", (10, 20, 30), size=(64, 48), fmt=fmt)
    (root / "evaluation.txt").write_text("SM1/0000\n")
    truth["eval"] = dict(root_gl=root_gl, box=box)
    return truth


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_ho3d_train_flip_and_joint_order(tmp_path: Path, version: str) -> None:
    truth = make_ho3d(tmp_path, version)
    ds = HO3D(tmp_path, "train", version)
    assert len(ds) == 3
    s = ds[1]
    named = truth["0001"]["named_gl"]
    for j, name in enumerate(FREIHAND_ORDER):
        x, y, z = named[name]
        np.testing.assert_allclose(s["joints_cam"][j].numpy(), [x, -y, -z], atol=1e-7)
        # the HO3D way: flip to OpenCV, then pinhole; done here by hand
        K = truth["K"]
        u, v = K[0, 0] * x / -z + K[0, 2], K[1, 1] * -y / -z + K[1, 2]
        assert abs(float(s["joints_2d"][j, 0]) - u) < 1e-4
        assert abs(float(s["joints_2d"][j, 1]) - v) < 1e-4
    assert (s["joints_cam"][:, 2] > 0).all() and s["has_joints"]
    torch.testing.assert_close(s["root_cam"], s["joints_cam"][0])
    np.testing.assert_allclose(s["mano_pose_gl"].numpy(), truth["0001"]["meta"]["handPose"],
                               atol=1e-6)
    assert s["image"].shape == (3, 48, 64) and s["seq"] == "ABF10" and s["frame"] == "0001"
    unannotated = ds[2]
    assert not unannotated["has_joints"] and not unannotated["has_mano"]
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["joints_cam"].shape == (3, 21, 3) and batch["seq"] == ["ABF10"] * 3


def test_ho3d_evaluation(tmp_path: Path) -> None:
    truth = make_ho3d(tmp_path)
    s = HO3D(tmp_path, "evaluation")[0]
    x, y, z = truth["eval"]["root_gl"]
    np.testing.assert_allclose(s["root_cam"].numpy(), [x, -y, -z], atol=1e-7)
    np.testing.assert_allclose(s["hand_box"].numpy(), truth["eval"]["box"])
    assert not s["has_joints"] and s["has_hand_box"] and s["joints_cam"].abs().max() == 0
    out = HandCrop(CropConfig(out_size=32), box_from="hand_box", augment=False)(s)
    assert out["image"].shape == (3, 32, 32)
    with pytest.raises(HO3DFormatError, match="SM1/rgb/0000.jpg: file not found"):
        HO3D(tmp_path, "evaluation", version="v3")[0]


def test_ho3d_bad_data(tmp_path: Path) -> None:
    make_ho3d(tmp_path)
    meta_path = tmp_path / "train" / "ABF10" / "meta" / "0000.pkl"
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    meta["handJoints3D"] = meta["handJoints3D"][:20]
    with open(meta_path, "wb") as f:
        pickle.dump(meta, f)
    ds = HO3D(tmp_path)
    with pytest.raises(HO3DFormatError, match=r"train/ABF10/meta/0000.pkl: key 'handJoints3D' "
                                              r"has shape \(20, 3\), expected \(21, 3\)"):
        ds[0]
    del meta["camMat"]
    with open(meta_path, "wb") as f:
        pickle.dump(meta, f)
    with pytest.raises(HO3DFormatError, match="0000.pkl: missing key 'camMat'"):
        ds[0]
    meta_path.write_bytes(b"garbage")
    with pytest.raises(HO3DFormatError, match="0000.pkl: cannot unpickle"):
        ds[0]
    (tmp_path / "train.txt").write_text("ABF10/0000\nbroken line\n")
    with pytest.raises(HO3DFormatError, match="train.txt: line 2"):
        HO3D(tmp_path)
    shutil.rmtree(tmp_path / "evaluation")
    with pytest.raises(HO3DFormatError, match="missing evaluation/"):
        HO3D(tmp_path, "evaluation")
