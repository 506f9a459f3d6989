"""Upright crops, the crop cache and background augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from hand_lib.data import (
    BackgroundBank,
    BackgroundComposite,
    CacheSpec,
    Compose,
    CropCache,
    CropConfig,
    HanCo,
    HandCrop,
    upright_angle,
)
from hand_lib.data.transforms import adjust_colors, crop_affine, hue_rotation, transform_points_2d
from hand_lib.geometry import project_points


def _hand_pointing(direction_deg: float) -> torch.Tensor:
    """21 keypoints: wrist at (50, 50), the finger bases 20 px away along the direction."""
    kp = torch.zeros(21, 2, dtype=torch.float64)
    d = torch.tensor([math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))],
                     dtype=torch.float64)
    side = torch.tensor([-d[1], d[0]])
    kp[0] = torch.tensor([50.0, 50.0])
    for f, base in enumerate((1, 5, 9, 13, 17)):
        for k in range(4):
            kp[base + k] = kp[0] + (20 + 8 * k) * d + (f - 2) * 6 * side
    return kp


@pytest.mark.parametrize("direction", [0.0, 90.0, 180.0, -135.0, 30.0])
def test_upright_angle_turns_the_hand_up(direction: float) -> None:
    kp = _hand_pointing(direction)
    angle = upright_angle(kp[None])[0]
    A = crop_affine(torch.tensor([[50.0, 50.0]], dtype=torch.float64),
                    torch.tensor([100.0], dtype=torch.float64), 64, angle[None])
    out = transform_points_2d(kp[None], A)[0]
    d = out[[5, 9, 13, 17]].mean(0) - out[0]
    assert torch.allclose(d / d.norm(), torch.tensor([0.0, -1.0], dtype=torch.float64), atol=1e-9)


def test_upright_angle_falls_back_to_no_rotation() -> None:
    kp = _hand_pointing(40.0)[None]
    conf = torch.ones(1, 21, dtype=torch.float64)
    conf[0, 0] = 0.0  # no wrist
    assert upright_angle(kp, conf, 0.1)[0] == 0.0
    conf = torch.ones(1, 21, dtype=torch.float64)
    conf[0, [5, 9, 13, 17]] = 0.05  # no finger base above the threshold
    assert upright_angle(kp, conf, 0.1)[0] == 0.0
    kp[0, 0] = float("nan")
    assert upright_angle(kp)[0] == 0.0
    with pytest.raises(ValueError, match=r"\(\.\.\., 21, 2\)"):
        upright_angle(torch.zeros(3, 2))


def test_hue_rotation_keeps_luma_and_inverts() -> None:
    img = torch.rand(3, 3, 8, 8, dtype=torch.float64) * 0.6 + 0.2
    hue = torch.tensor([0.1, -0.25, 0.0], dtype=torch.float64)
    R = hue_rotation(hue)
    out = torch.einsum("bij,bjhw->bihw", R, img)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close((out * w).sum(1), (img * w).sum(1))
    back = torch.einsum("bij,bjhw->bihw", hue_rotation(-hue), out)
    torch.testing.assert_close(back, img)
    torch.testing.assert_close(R[2], torch.eye(3, dtype=torch.float64))
    ones = torch.ones(3, dtype=torch.float64)
    jittered = adjust_colors(img, ones, ones, ones, hue)
    assert not torch.allclose(jittered[0], img[0]) and torch.allclose(jittered[2], img[2])


@pytest.fixture(scope="module")
def smoke_source(synthetic_smoke_root):
    return HanCo(synthetic_smoke_root, split="train", mode="multi", missing_views="mask",
                 load_masks=True)


def test_cache_crop_equals_a_direct_crop(smoke_source, tmp_path) -> None:
    spec = CacheSpec(out_size=48, context=1.3, margin=1.5, upright=True)
    cache = CropCache(smoke_source, spec, tmp_path, mode="single",
                      transform=HandCrop(CropConfig(out_size=48), box_from="crop_box",
                                         augment=False))
    direct = HanCo(smoke_source.root, split="train", mode="single", load_masks=True,
                   transform=HandCrop(CropConfig(out_size=48, margin=1.5, upright=True),
                                      box_from="pseudo_2d", augment=False))
    assert len(cache) == len(direct)
    for i in (0, 7, len(cache) - 1):
        a, b = cache[i], direct[i]
        assert (int(a["seq"]), int(a["frame"]), int(a["cam"])) == \
            (int(b["seq"]), int(b["frame"]), int(b["cam"]))
        for key in ("K", "joints_2d", "pseudo_2d", "R_inplane", "crop_affine"):
            torch.testing.assert_close(a[key].double(), b[key].double(), atol=2e-3, rtol=1e-4)
        torch.testing.assert_close(a["joints_cam"], b["joints_cam"], atol=1e-6, rtol=1e-5)
        # the camera is exact: the projected joints land on the 2D labels
        proj = project_points(a["joints_cam"][None], a["K"][None])[0]
        torch.testing.assert_close(proj, a["joints_2d"], atol=1e-3, rtol=0)
        # two resamplings instead of one: close, not equal
        assert (a["image"] - b["image"]).abs().mean() < 0.04
        assert (a["mask"] - b["mask"]).abs().mean() < 0.04


def test_cache_is_built_once_and_keyed(smoke_source, tmp_path, monkeypatch) -> None:
    from hand_lib.data import cache as cache_module

    spec = CacheSpec(out_size=32)
    first = CropCache(smoke_source, spec, tmp_path)
    assert (first.path / "record.json").is_file()
    calls = []
    monkeypatch.setattr(cache_module, "_build", lambda *a, **k: calls.append(a))
    again = CropCache(smoke_source, spec, tmp_path)
    assert again.path == first.path and not calls
    other = CropCache.__new__(CropCache)
    with pytest.raises(FileNotFoundError):  # another spec is another folder: not built yet
        CropCache.__init__(other, smoke_source, CacheSpec(out_size=40), tmp_path)
    assert len(calls) == 1 and calls[0][2] != first.path


def test_interrupted_build_leaves_nothing(smoke_source, tmp_path, monkeypatch) -> None:
    import hand_lib.data.cache as cache_module

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        CropCache(smoke_source, CacheSpec(out_size=32), tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-written cache, no temporary folder
    assert smoke_source.transform is None  # the source is handed back unchanged


def test_batched_augmentation_equals_per_sample(smoke_source, tmp_path) -> None:
    bank = BackgroundBank.procedural(count=4, size=64, seed=1)
    transform = Compose(
        HandCrop(CropConfig(out_size=32, scale_jitter=0.2, translate_jitter=0.1,
                            rotation_deg=30, brightness=0.2, contrast=0.2, saturation=0.2,
                            hue=0.05), box_from="crop_box", seed=3),
        BackgroundComposite(bank, probability=0.5, seed=3),
    )
    cache = CropCache(smoke_source, CacheSpec(out_size=32), tmp_path, transform=transform)
    cache.set_epoch(2)
    indices = [0, 5, 9, 20]
    batch = cache.__getitems__(indices)
    for i, b in zip(indices, batch, strict=True):
        a = cache[i]
        assert set(a) == set(b)
        for key, value in a.items():
            assert torch.equal(value, b[key]), key
    cache.set_epoch(3)
    assert not torch.equal(cache[0]["image"], batch[0]["image"])  # the epoch changes draws
    multi = CropCache(smoke_source, CacheSpec(out_size=32), tmp_path, mode="multi",
                      transform=transform)
    frames = multi.__getitems__([0, 1])
    assert frames[0]["image"].shape == (8, 3, 32, 32)
    assert torch.equal(frames[1]["image"], multi[1]["image"])


def test_cache_labels_match_samples(smoke_source, tmp_path) -> None:
    cache = CropCache(smoke_source, CacheSpec(out_size=32), tmp_path)
    joints = cache.labels("joints_cam")
    assert joints.shape == (len(cache), 21, 3)
    torch.testing.assert_close(joints[11], cache[11]["joints_cam"])
    with pytest.raises(KeyError, match="stored keys"):
        cache.labels("nope")


def test_background_composite_uses_the_mask() -> None:
    bank = BackgroundBank(torch.full((1, 3, 16, 16), 200, dtype=torch.uint8), window=(1.0, 1.0))
    image = torch.full((3, 8, 8), 0.1)
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1.0
    sample = {"image": image, "mask": mask, "index": torch.tensor(0)}
    out = BackgroundComposite(bank, probability=1.0, seed=0)(sample)
    assert "mask" not in out
    hand = out["image"][:, 2:6, 2:6]
    torch.testing.assert_close(hand, torch.full_like(hand, 0.1))
    outside = out["image"][:, 0, 0]
    brightness = outside[0] / (200 / 255)
    assert 0.7 <= float(brightness) <= 1.3 and torch.allclose(outside, outside[0].expand(3))
    kept = BackgroundComposite(bank, probability=0.0, seed=0)(sample)
    assert torch.equal(kept["image"], image)
    assert BackgroundComposite(bank)({"image": image})["image"] is image  # no mask: as is


def test_background_bank_from_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BackgroundBank.from_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no image"):
        BackgroundBank.from_folder(tmp_path)
    Image.fromarray(np.full((30, 50, 3), 90, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="b.jpg"):
        BackgroundBank.from_folder(tmp_path)
    (tmp_path / "b.jpg").unlink()
    bank = BackgroundBank.from_folder(tmp_path, size=24)
    assert bank.images.shape == (1, 3, 24, 24) and int(bank.images.float().mean()) == 90
    drawn = bank.draw(3, 16, torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 3, 16, 16) and drawn.min() >= 0 and drawn.max() <= 1
