"""The synthetic HanCo generator: layout, loader round trip, exact MANO fits, determinism,
resuming, image content."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hand_lib.data import HanCo, synthetic
from hand_lib.data.synthetic import (
    CONFIG_FILE,
    FrameSynthesizer,
    SyntheticConfig,
    frame_done,
    frame_files,
    generate,
    load_visibility,
    profile_size,
)
from hand_lib.data.transforms import CropConfig, HandCrop
from hand_lib.geometry.camera import project_points, world_to_camera
from hand_lib.mano import ManoLayer

CONFIG = SyntheticConfig(num_train_sequences=2, num_test_sequences=1, frames_per_sequence=2,
                         seed=3)
SEQS = [0, 1, 1200]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "hanco"
    report = generate(root, CONFIG, workers=1, progress=False)
    assert report.frames_written == 6 and report.frames_skipped == 0
    return root


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- layout


def test_profiles_and_split_numbering() -> None:
    assert profile_size("smoke") == (8, 4, 2)
    quick = SyntheticConfig.for_profile("quick")
    full = SyntheticConfig.for_profile("full")
    # many sequences of few frames: pose diversity, not near-duplicate frames (issue 14)
    assert 10000 <= quick.num_images <= 30000 and 20000 <= full.num_images <= 99999
    assert quick.num_train_sequences >= 1000 and quick.frames_per_sequence <= 2
    smoke_ids = SyntheticConfig.for_profile("smoke").sequence_ids()
    assert smoke_ids == [*range(8), 1200, 1201, 1202, 1203]
    with pytest.raises(ValueError, match="profile"):
        profile_size("huge")
    with pytest.raises(ValueError, match="unknown"):
        SyntheticConfig.from_dict({"seeds": 1})


def test_files_have_hanco_names_and_shapes(dataset: Path) -> None:
    for seq in SEQS:
        for frame in range(2):
            for path in frame_files(dataset, seq, frame):
                assert path.is_file(), path
    s, f = "1200", "00000001"
    calib = json.loads((dataset / "calib" / s / f"{f}.json").read_text())
    assert np.shape(calib["K"]) == (8, 3, 3) and np.shape(calib["M"]) == (8, 4, 4)
    M = np.asarray(calib["M"])
    R = M[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(M[:, 3], [0, 0, 0, 1])
    K = np.asarray(calib["K"])
    assert np.all((K[:, 0, 0] > 150) & (K[:, 0, 0] < 1000))  # a few hundred pixels, like HanCo
    assert np.shape(json.loads((dataset / "xyz" / s / f"{f}.json").read_text())) == (21, 3)
    shape = json.loads((dataset / "shape" / s / f"{f}.json").read_text())
    assert np.shape(shape["poses"]) == (1, 48) and np.shape(shape["shapes"]) == (1, 10)
    assert np.shape(shape["global_t"]) == (1, 3)
    assert np.shape(json.loads((dataset / "shape" / s / "cam5" / f"{f}.json").read_text())) == (61,)
    for top, mode in (("rgb", "RGB"), ("rgb_merged", "RGB"), ("mask_hand", "L")):
        with Image.open(dataset / top / s / "cam3" / f"{f}.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", mode, (224, 224))
    meta = json.loads((dataset / "meta.json").read_text())
    assert set(meta) == {"is_train", "subject_id", "is_valid", "object_id", "has_fit"}
    assert all(len(v) == 1201 for v in meta.values())
    assert meta["is_train"][1] == [True, True] and meta["is_train"][1200] == [False, False]
    assert meta["is_train"][5] == [] and meta["subject_id"][1] == [0, 0]
    # sequences within 1-2 m of no camera: every camera 0.4-0.8 m from the hand
    centres = -np.einsum("vji,vj->vi", R, M[:, :3, 3])
    hand = np.asarray(json.loads((dataset / "xyz" / s / f"{f}.json").read_text())).mean(0)
    assert np.all((np.linalg.norm(centres - hand, axis=1) > 0.33)
                  & (np.linalg.norm(centres - hand, axis=1) < 0.87))


# --------------------------------------------------------------------------- round trip


def test_loader_round_trip_projection(dataset: Path) -> None:
    ds = HanCo(dataset, split="all", mode="multi", pseudo_labels=False)
    assert len(ds) == 6 and ds.num_skipped_frames == 0
    assert sorted(set(ds.items[:, 0].tolist())) == SEQS
    assert set(HanCo(dataset, split="train", pseudo_labels=False).items[:, 0].tolist()) == {0, 1}
    assert set(HanCo(dataset, split="test", pseudo_labels=False).items[:, 0].tolist()) == {1200}
    n_visible = on_mask = 0
    for i in range(len(ds)):
        sample = ds[i]
        seq, frame = int(sample["seq"]), int(sample["frame"])
        assert bool(sample["is_train"]) == (seq < 1200)
        for k in range(8):
            vis = load_visibility(dataset, seq, frame, k)
            visible = vis["visible"].astype(bool)
            uv_loader = sample["joints_2d"][k].double().numpy()
            err = np.linalg.norm(uv_loader - vis["uv"], axis=1)
            assert err[visible].max() < 0.5, (seq, frame, k)
            # the image agrees: visible keypoints land on the rendered hand
            mask = np.asarray(Image.open(dataset / "mask_hand" / f"{seq:04d}" / f"cam{k}"
                                         / f"{frame:08d}.jpg")) > 127
            grown = mask.copy()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    grown |= np.roll(mask, (dy, dx), axis=(0, 1))
            px = np.rint(vis["uv"][visible]).astype(int)
            on_mask += int(grown[px[:, 1], px[:, 0]].sum())
            n_visible += int(visible.sum())
    assert on_mask >= 0.97 * n_visible


def test_mano_fit_reproduces_xyz(dataset: Path) -> None:
    layer = ManoLayer(dtype=torch.float64)
    ds = HanCo(dataset, split="all", mode="multi", pseudo_labels=False)
    for i in range(len(ds)):
        seq, frame = (int(x) for x in ds.items[i, :2])
        shape = json.loads((dataset / "shape" / f"{seq:04d}" / f"{frame:08d}.json").read_text())
        xyz = torch.tensor(json.loads((dataset / "xyz" / f"{seq:04d}" / f"{frame:08d}.json")
                                      .read_text()), dtype=torch.float64)
        out = layer(torch.tensor(shape["poses"], dtype=torch.float64),
                    torch.tensor(shape["shapes"], dtype=torch.float64),
                    torch.tensor(shape["global_t"], dtype=torch.float64))
        assert (out.keypoints[0] - xyz).norm(dim=-1).max() < 1e-4
        calib = json.loads((dataset / "calib" / f"{seq:04d}" / f"{frame:08d}.json").read_text())
        cam = world_to_camera(xyz.expand(8, 21, 3), torch.tensor(calib["M"], dtype=torch.float64))
        fits = torch.tensor([json.loads((dataset / "shape" / f"{seq:04d}" / f"cam{k}"
                                         / f"{frame:08d}.json").read_text()) for k in range(8)],
                            dtype=torch.float64)
        out_cam = layer(fits[:, :48], fits[:, 48:58], fits[:, 58:])
        assert (out_cam.keypoints - cam).norm(dim=-1).max() < 1e-4
        # the loader hands out the same fits (float32)
        sample = ds[i]
        assert torch.allclose(sample["mano_cam"].double(), fits, atol=1e-5)
        assert bool(sample["has_mano"]) and bool(sample["has_mano_cam"].all())


def test_augmentations_keep_projections_exact(dataset: Path) -> None:
    crop = HandCrop(CropConfig(out_size=128, rotation_deg=180, scale_jitter=0.2,
                               translate_jitter=0.1), box_from="joints_2d", seed=0)
    ds = HanCo(dataset, split="all", mode="multi", pseudo_labels=False, transform=crop)
    hits = total = 0
    for i in range(len(ds)):
        s = ds[i]
        cam = world_to_camera(s["joints_world"].double().expand(8, 21, 3), s["M"].double())
        proj = project_points(cam, s["K"].double())
        assert (proj - s["joints_2d"].double()).norm(dim=-1).max() < 1e-3
        # image content moved with the labels: visible keypoints are not on the green screen
        for k in range(8):
            visible = load_visibility(ds.root, int(s["seq"]), int(s["frame"]), k)["visible"]
            px = s["joints_2d"][k][torch.from_numpy(visible.astype(bool))].round().long()
            px = px.clamp(0, 127)
            rgb = s["image"][k][:, px[:, 1], px[:, 0]]  # (3, N)
            greenish = rgb[1] > rgb[0] + 0.15
            hits += int((~greenish).sum())
            total += len(px)
    assert hits >= 0.9 * total


# --------------------------------------------------------------------------- content


def test_images_show_a_hand_with_self_occlusion(dataset: Path) -> None:
    fractions, visible, occluded, in_image = [], 0, 0, 0
    for seq in SEQS:
        for frame in range(2):
            for k in range(8):
                name = Path(f"{seq:04d}") / f"cam{k}" / f"{frame:08d}.jpg"
                mask = np.asarray(Image.open(dataset / "mask_hand" / name)) > 127
                rgb = np.asarray(Image.open(dataset / "rgb" / name)).astype(float)
                fractions.append(mask.mean())
                # hand pixels are not green-screen pixels
                assert (rgb[mask][:, 1] - rgb[mask][:, 0]).mean() < 0
                assert (rgb[~mask][:, 1] - rgb[~mask][:, 0]).mean() > 40
                vis = load_visibility(dataset, seq, frame, k)
                assert abs(vis["hand_pixels"] - mask.sum()) <= 0.02 * mask.size
                visible += int(vis["visible"].sum())
                occluded += int(vis["occluded"].sum())
                in_image += int(vis["in_image"].sum())
    fractions = np.asarray(fractions)
    assert fractions.min() > 0.01 and fractions.max() < 0.6
    assert 0.04 < np.median(fractions) < 0.35
    assert in_image >= 0.95 * len(fractions) * 21
    assert 0.05 * in_image < occluded < 0.5 * in_image
    assert visible == in_image - occluded


def test_frames_differ_and_depend_on_seed() -> None:
    synth = FrameSynthesizer(CONFIG)
    a, b = synth.frame(0, 0), synth.frame(0, 1)
    other = FrameSynthesizer(SyntheticConfig(seed=4)).frame(0, 0)
    assert 0.001 < np.abs(a.xyz - b.xyz).max() < 0.05  # same sequence: slow motion
    assert np.array_equal(a.K, b.K) and np.array_equal(a.betas, b.betas)  # same rig, subject
    assert np.abs(a.xyz - other.xyz).max() > 0.01
    assert not np.array_equal(synth.frame(1200, 0).betas, a.betas)


# --------------------------------------------------------------------------- determinism


def test_same_bytes_with_two_workers(dataset: Path, tmp_path: Path) -> None:
    report = generate(tmp_path / "w2", CONFIG, workers=2, progress=False)
    assert report.frames_written == 6
    assert all_files(tmp_path / "w2") == all_files(dataset)


def test_resume_rewrites_only_the_missing_frame(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    for rel, data in all_files(dataset).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    before = all_files(root)
    victim = root / "rgb_merged" / "0001" / "cam6" / "00000001.jpg"
    victim.unlink()
    (victim.parent / f".{victim.name}.tmp123").write_bytes(b"half-written")  # a killed run
    stats = {p: os.stat(p).st_ino for p in root.rglob("*") if p.is_file()}
    report = generate(root, CONFIG, workers=1, progress=False)
    assert (report.frames_written, report.frames_skipped) == (1, 5)
    rewritten = set(frame_files(root, 1, 1))
    for path, inode in stats.items():
        if path not in rewritten and ".tmp" not in path.name:
            assert os.stat(path).st_ino == inode, path  # untouched
    after = {k: v for k, v in all_files(root).items() if ".tmp" not in k}
    assert after == before
    # a complete root is skipped entirely
    assert generate(root, CONFIG, workers=1, progress=False).frames_written == 0


def test_other_config_or_version_in_same_root_is_refused(dataset: Path, tmp_path: Path) -> None:
    assert (dataset / CONFIG_FILE).is_file()
    with pytest.raises(ValueError, match="another config"):
        generate(dataset, SyntheticConfig(num_train_sequences=2, num_test_sequences=1,
                                          frames_per_sequence=2, seed=4), progress=False)
    record = json.loads((dataset / CONFIG_FILE).read_text())
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / CONFIG_FILE).write_text(json.dumps({**record, "generator_version": 0}))
    with pytest.raises(ValueError, match="version"):
        generate(tmp_path / "old", CONFIG, progress=False)


def test_older_version_is_refused_or_upgraded_in_place(dataset: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "v2"
    for rel, data in all_files(dataset).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    stale = root / "visibility" / "0000" / "cam0" / "00000000.json"
    stale.write_text("{}")
    record = json.loads((root / CONFIG_FILE).read_text())
    (root / CONFIG_FILE).write_text(json.dumps({**record, "generator_version": 2}))
    # version 3 changed every image: a version-2 folder is refused, untouched
    with pytest.raises(ValueError, match="version 2, this is version 3"):
        generate(root, CONFIG, workers=1, progress=False)
    assert stale.read_text() == "{}"
    # a version whose files differ only in rewritten files is upgraded in place
    monkeypatch.setattr(synthetic, "UPGRADABLE_VERSIONS", (2,))
    report = generate(root, CONFIG, workers=1, progress=False)
    assert report.frames_written == 6 and all_files(root) == all_files(dataset)


# --------------------------------------------------------------------------- notebook helpers


def test_statistics_and_figures(dataset: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from hand_lib.data.overview import (
        hanco_statistics,
        multiview_root,
        plot_pose_statistics,
        plot_views,
    )

    stats = hanco_statistics(dataset, max_frames=4)
    summary = stats.summary()
    assert summary["frames"] == 4 and summary["images"] == 32
    assert summary["projection_error_px"] < 0.5 and summary["fit_error_m"] < 1e-4
    assert 0.33 <= summary["camera_distance_m_min"] and summary["camera_distance_m_max"] <= 0.87
    assert stats.joint_angles_deg.shape == (4, 15) and stats.visible.shape == (32, 21)
    sample = HanCo(dataset, split="all", mode="multi", pseudo_labels=False)[0]
    plot_views(sample, [np.ones(21, bool)] * 8, "x").savefig(tmp_path / "views.png")
    plot_pose_statistics(stats).savefig(tmp_path / "stats.png")
    assert (tmp_path / "views.png").stat().st_size > 10_000
    assert multiview_root("hanco", "smoke", str(dataset)) == dataset
    monkeypatch.setitem(synthetic.PROFILE_SIZES, "smoke", (1, 0, 1))  # one frame
    made = multiview_root("synthetic", "smoke", str(tmp_path / "made"), workers=1, progress=False)
    assert made == tmp_path / "made" and frame_done(made, 0, 0)
    with pytest.raises(ValueError, match="data_root"):
        multiview_root("hanco", "smoke", "")


# --------------------------------------------------------------------------- model and prior


def test_a_mano_file_is_rendered_when_given(tmp_path: Path, random_model_arrays: dict) -> None:
    from hand_lib.mano import save_model_file

    path = save_model_file(tmp_path / "MANO_RIGHT.pkl", random_model_arrays)
    config = SyntheticConfig(num_train_sequences=1, num_test_sequences=0, frames_per_sequence=1,
                             mano_path=str(path))
    data = FrameSynthesizer(config).frame(0, 0)
    layer = ManoLayer(path, dtype=torch.float64)
    out = layer(*(torch.from_numpy(x)[None] for x in (data.pose, data.betas, data.global_t)))
    assert np.abs(out.keypoints[0].numpy() - data.xyz).max() < 1e-9
    assert np.abs(FrameSynthesizer(SyntheticConfig()).frame(0, 0).xyz - data.xyz).max() > 1e-3
    assert data.mask.any()


def test_pose_prior_natural_and_extreme() -> None:
    from hand_lib.data.synthetic_scene import PosePrior, sample_pca_pose

    layer = ManoLayer()
    prior = PosePrior.from_components(layer.hands_components.numpy())
    assert np.allclose(prior.scales, 1.0)  # open hand: coefficients ~ N(0, 1)
    official = PosePrior.from_components(np.linalg.qr(np.random.default_rng(0)
                                                      .normal(size=(45, 45)))[0])
    assert official.scales[0] > 1.0 > official.scales[10]  # unit rows: decaying spectrum
    rng = np.random.default_rng(0)
    natural = np.stack([sample_pca_pose(rng, prior, False) for _ in range(200)])
    extreme = np.stack([sample_pca_pose(rng, prior, True) for _ in range(200)])
    assert np.abs(natural).max() <= 2.0
    assert (np.abs(extreme[:, :6]).max(1) >= 2.5).all()


def test_occlusion_rule() -> None:
    from hand_lib.data.synthetic import _visibility

    S = 8
    own = np.zeros((21, 16), dtype=bool)
    own[:, 0] = True  # every keypoint owns part 0; part 1 is foreign
    face_part = np.array([0, 1])
    uv = np.full((21, 2), 3.0)
    uv[5] = [20.0, 3.0]  # outside the image
    uv[6] = [6.0, 6.0]  # on the background
    depth = np.full(21, 0.5)
    depth_map = np.zeros((S, S))
    face_map = -np.ones((S, S), dtype=np.int64)
    tolerance = np.full(21, 0.01)
    cases = {  # keypoint: (face at its pixel, surface in front by metres, occluded?)
        0: (0, 0.02, False),  # its own flesh, thicker than the tolerance
        1: (1, 0.02, True),  # another part, beyond the tolerance
        2: (1, 0.005, False),  # another part, within the tolerance (beside it, not over it)
        3: (0, 0.05, True),  # anything 5 cm in front
    }
    for k, (face, gap, _) in cases.items():
        u = np.array([1.0 + k, 1.0])
        uv[k] = u
        face_map[1, 1 + k] = face
        depth_map[1, 1 + k] = 0.5 - gap
    rec = _visibility(uv, depth, depth_map, face_map, tolerance, face_part, own, S)
    for k, (_, _, occluded) in cases.items():
        assert rec["occluded"][k] == occluded and rec["visible"][k] == (not occluded), k
    assert not rec["in_image"][5] and not rec["visible"][5] and not rec["occluded"][5]
    assert rec["visible"][6] and rec["surface_depth_m"][6] == 0.0
