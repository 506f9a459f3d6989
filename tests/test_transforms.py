"""Crops and augmentation keep the camera exact: projections, pixels and determinism."""

from __future__ import annotations

import math

import pytest
import torch

from hand_lib.data.transforms import (
    CropConfig,
    HandCrop,
    adjust_colors,
    crop_affine,
    crop_and_augment,
    crop_intrinsics,
    full_image_box,
    square_box_from_keypoints,
    square_box_from_xyxy,
    transform_points_2d,
    warp_images,
)
from hand_lib.geometry.camera import project_points, world_to_camera

JITTER = CropConfig(out_size=64, margin=1.4, scale_jitter=0.3, translate_jitter=0.2,
                    rotation_deg=180.0, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)


def random_camera(B: int, g: torch.Generator, square_pixels: bool = True) -> torch.Tensor:
    f = 200 + 100 * torch.rand(B, generator=g, dtype=torch.float64)
    fy = f if square_pixels else f * (1.1 + 0.1 * torch.rand(B, generator=g, dtype=torch.float64))
    K = torch.zeros(B, 3, 3, dtype=torch.float64)
    K[:, 0, 0], K[:, 1, 1] = f, fy
    K[:, 0, 2] = 60 + 10 * torch.rand(B, generator=g, dtype=torch.float64)
    K[:, 1, 2] = 50 + 10 * torch.rand(B, generator=g, dtype=torch.float64)
    K[:, 2, 2] = 1
    return K


def random_hand(B: int, g: torch.Generator) -> torch.Tensor:
    """(B, 21, 3) camera-space points about 0.5 m in front of the camera, metres."""
    centre = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    return centre + 0.05 * (2 * torch.rand(B, 21, 3, generator=g, dtype=torch.float64) - 1)


def gaussian_blob(H: int, W: int, u0: float, v0: float, sigma: float) -> torch.Tensor:
    """(3, H, W) image of a blob centred on pixel coordinates (u0, v0) (integer centres)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64),
                          torch.arange(W, dtype=torch.float64), indexing="ij")
    blob = torch.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * sigma**2))
    return blob.expand(3, H, W).float()


def centroid(img: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centroid (u, v) of channel 0 of a (3, H, W) image, pixels."""
    w = img[0].double()
    v, u = torch.meshgrid(torch.arange(w.shape[0], dtype=torch.float64),
                          torch.arange(w.shape[1], dtype=torch.float64), indexing="ij")
    return torch.stack([(w * u).sum() / w.sum(), (w * v).sum() / w.sum()])


def test_identity_crop_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 40, 40, generator=g)
    K = random_camera(2, g).float()
    center, size = full_image_box((40, 40), (2,))
    res = crop_and_augment(image, K, center, size, CropConfig(out_size=40), augment=False)
    torch.testing.assert_close(res.image, image, atol=1e-6, rtol=0)
    torch.testing.assert_close(res.K, K)
    torch.testing.assert_close(res.R_inplane, torch.eye(3).expand(2, 3, 3))


def test_rescale_maps_pixel_centres_consistently() -> None:
    # Halving a 4x4 image: output pixel 0 covers source pixels 0-1, centre at source 0.5.
    A = crop_affine(torch.tensor([[1.5, 1.5]]), torch.tensor([4.0]), 2)
    p = transform_points_2d(torch.tensor([[[0.5, 0.5], [-0.5, -0.5], [3.5, 3.5]]]), A)
    torch.testing.assert_close(p, torch.tensor([[[0.0, 0.0], [-0.5, -0.5], [1.5, 1.5]]]))
    img = torch.arange(16.0).view(1, 1, 4, 4)
    out = warp_images(img, A, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


@pytest.mark.parametrize("square_pixels", [True, False])
def test_projection_invariant_under_full_jitter(square_pixels: bool) -> None:
    g = torch.Generator().manual_seed(1)
    B = 32
    K = random_camera(B, g, square_pixels)
    X = random_hand(B, g)
    kps = project_points(X, K)
    center, size = square_box_from_keypoints(kps, (120, 128), margin=1.5)
    image = torch.rand(B, 3, 120, 128, generator=g)
    res = crop_and_augment(image, K.float(), center, size, JITTER,
                           generator=torch.Generator().manual_seed(2))
    assert res.image.shape == (B, 3, 64, 64)
    expected = res.points_2d(kps)
    got = project_points(res.points_cam(X), res.K.double())
    assert (got - expected).abs().max() < 1e-3
    # K is a proper intrinsics matrix, R a rotation about the optical axis.
    assert torch.all(res.K[:, 1, 0] == 0) and torch.all(res.K[:, 2, :2] == 0)
    assert torch.all(res.K[:, 0, 0] > 0) and torch.all(res.K[:, 1, 1] > 0)
    R = res.R_inplane.double()
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64)
                               .expand(B, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(R[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
                               .expand(B, 3))
    angles = torch.atan2(R[:, 1, 0], R[:, 0, 0])
    assert angles.abs().max() > 1.0  # the rotation jitter did something
    if square_pixels:
        assert res.K[:, 0, 1].abs().max() < 1e-4  # no skew with fx == fy
        torch.testing.assert_close(res.K[:, 0, 0], res.K[:, 1, 1])


def test_crop_intrinsics_match_rotation_angle_for_square_pixels() -> None:
    K = torch.tensor([[300.0, 0, 60], [0, 300, 50], [0, 0, 1]], dtype=torch.float64)
    angle = torch.tensor(0.7, dtype=torch.float64)
    A = crop_affine(torch.tensor([70.0, 40.0], dtype=torch.float64),
                    torch.tensor(80.0, dtype=torch.float64), 64, angle)
    K_crop, R = crop_intrinsics(K, A)
    assert math.isclose(float(torch.atan2(R[1, 0], R[0, 0])), 0.7, abs_tol=1e-12)
    assert math.isclose(float(K_crop[0, 0]), 300 * 64 / 80, rel_tol=1e-12)


def test_image_content_follows_keypoints() -> None:
    """A blob drawn at a keypoint ends up where the transformed keypoint says."""
    g = torch.Generator().manual_seed(3)
    H = W = 96
    config = CropConfig(out_size=80, scale_jitter=0.2, translate_jitter=0.1, rotation_deg=180)
    for trial in range(6):
        u0, v0 = (30 + 36 * torch.rand(2, generator=g)).tolist()
        img = gaussian_blob(H, W, u0, v0, sigma=3.0)
        res = crop_and_augment(img, torch.eye(3), torch.tensor([47.5, 47.5]),
                               torch.tensor(90.0), config,
                               generator=torch.Generator().manual_seed(trial))
        expected = res.points_2d(torch.tensor([[u0, v0]]))[0].double()
        err = (centroid(res.image) - expected).abs().max()
        assert err < 0.01, (trial, err)  # a half-pixel convention slip would be 0.5


def test_square_boxes() -> None:
    kps = torch.tensor([[[10.0, 20.0], [30.0, 25.0], [1000.0, 1000.0]]])
    conf = torch.tensor([[1.0, 0.9, 0.01]])
    center, size = square_box_from_keypoints(kps, (100, 200), conf, min_confidence=0.1,
                                             margin=2.0)
    torch.testing.assert_close(center, torch.tensor([[20.0, 22.5]]))
    torch.testing.assert_close(size, torch.tensor([40.0]))
    # fewer than 2 confident keypoints (a masked view): the whole image
    center, size = square_box_from_keypoints(kps, (100, 200), torch.zeros(1, 3), 0.1)
    torch.testing.assert_close(center, torch.tensor([[99.5, 49.5]]))
    torch.testing.assert_close(size, torch.tensor([200.0]))
    center, size = square_box_from_xyxy(torch.tensor([10.0, 20.0, 50.0, 30.0]), margin=1.5)
    torch.testing.assert_close(center, torch.tensor([30.0, 25.0]))
    torch.testing.assert_close(size, torch.tensor(60.0))


def test_deterministic_given_generator_and_batch_matches_single() -> None:
    g = torch.Generator().manual_seed(4)
    image = torch.rand(3, 3, 50, 60, generator=g)
    K = random_camera(3, g).float()
    center, size = torch.tensor([[30.0, 25.0]] * 3), torch.tensor([40.0] * 3)
    a = crop_and_augment(image, K, center, size, JITTER, torch.Generator().manual_seed(5))
    b = crop_and_augment(image, K, center, size, JITTER, torch.Generator().manual_seed(5))
    c = crop_and_augment(image, K, center, size, JITTER, torch.Generator().manual_seed(6))
    assert torch.equal(a.image, b.image) and torch.equal(a.K, b.K)
    assert not torch.equal(a.affine, c.affine)
    plain = crop_and_augment(image, K, center, size, JITTER, augment=False)
    for i in range(3):
        one = crop_and_augment(image[i], K[i], center[i], size[i], JITTER, augment=False)
        assert one.image.shape == (3, 64, 64) and one.K.shape == (3, 3)
        torch.testing.assert_close(one.image, plain.image[i])
        torch.testing.assert_close(one.K, plain.K[i])


def test_color_jitter_identity_and_range() -> None:
    img = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    ones, zeros = torch.ones(2), torch.zeros(2)
    torch.testing.assert_close(adjust_colors(img, ones, ones, ones, zeros), img)
    out = adjust_colors(img, torch.tensor([1.3, 0.7]), torch.tensor([1.2, 0.8]),
                        torch.tensor([0.5, 1.4]), torch.tensor([0.1, -0.1]))
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1
    grey = adjust_colors(img, ones, ones, zeros, zeros)
    torch.testing.assert_close(grey[:, 0], grey[:, 1])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="hue"):
        CropConfig(hue=0.7)
    with pytest.raises(ValueError, match="scale_jitter"):
        CropConfig(scale_jitter=1.5)


def multiview_sample(V: int = 4) -> dict[str, torch.Tensor]:
    """A HanCo-like multi-view sample with consistent K, M, world and camera points."""
    g = torch.Generator().manual_seed(8)
    K = random_camera(V, g)
    angles = torch.linspace(0, 2 * math.pi, V + 1, dtype=torch.float64)[:V]
    M = torch.eye(4, dtype=torch.float64).repeat(V, 1, 1)
    for v, a in enumerate(angles.tolist()):
        c, s = math.cos(a), math.sin(a)
        M[v, :3, :3] = torch.tensor([[c, 0, -s], [0, 1, 0], [s, 0, c]], dtype=torch.float64)
        M[v, :3, 3] = torch.tensor([0, 0, 0.5])
    world = 0.05 * (2 * torch.rand(21, 3, generator=g, dtype=torch.float64) - 1)
    cam = world_to_camera(world.expand(V, 21, 3), M)
    kps = project_points(cam, K)
    view_mask = torch.ones(V, dtype=torch.bool)
    view_mask[1] = False
    m = view_mask.double()[:, None, None]
    return {
        "image": torch.rand(V, 3, 120, 128, generator=g),
        "K": K.float(), "M": M.float(),
        "joints_world": world.float(),
        "joints_cam": (cam * m).float(), "joints_2d": (kps * m).float(),
        "pseudo_2d": (kps * m).float() + 0.5,
        "pseudo_conf": view_mask.float()[:, None].expand(V, 21).clone(),
        "view_mask": view_mask,
        "index": torch.tensor(3),
    }


def test_handcrop_multiview_keeps_all_geometry_consistent() -> None:
    sample = multiview_sample()
    crop = HandCrop(JITTER, box_from="pseudo_2d", seed=11)
    out = crop(sample)
    assert out["image"].shape == (4, 3, 64, 64)
    ok = out["view_mask"]
    proj = project_points(out["joints_cam"].double(), out["K"].double())
    assert (proj - out["joints_2d"].double())[ok].abs().max() < 1e-3
    cam = world_to_camera(out["joints_world"].double().expand(4, 21, 3), out["M"].double())
    assert (cam - out["joints_cam"].double())[ok].abs().max() < 1e-6
    # a masked view keeps zero labels
    assert out["joints_2d"][1].abs().max() == 0 and out["joints_cam"][1].abs().max() == 0
    # pseudo labels moved by the same map as the ground truth
    torch.testing.assert_close(out["pseudo_2d"][ok] - out["joints_2d"][ok],
                               transform_points_2d(torch.full((21, 2), 0.5), out["crop_affine"]
                                                   .clone().index_fill_(2, torch.tensor([2]), 0))
                               [ok], atol=1e-3, rtol=0)
    # the input is untouched and the seeded crop is reproducible, per epoch
    assert sample["image"].shape == (4, 3, 120, 128)
    again = crop(sample)
    assert torch.equal(again["image"], out["image"])
    crop.set_epoch(1)
    assert not torch.equal(crop(sample)["crop_affine"], out["crop_affine"])


def test_handcrop_single_view_ho3d_like_sample() -> None:
    g = torch.Generator().manual_seed(12)
    K = random_camera(1, g)[0]
    X = random_hand(1, g)[0]
    kps = project_points(X, K)
    box = torch.cat([kps.amin(0), kps.amax(0)])
    sample = {"image": torch.rand(3, 120, 128, generator=g), "K": K.float(),
              "joints_cam": X.float(), "joints_2d": kps.float(), "has_joints": torch.tensor(True),
              "root_cam": X[0].float(), "hand_box": box.float(), "index": torch.tensor(0)}
    for box_from in ("joints_2d", "hand_box", "image"):
        out = HandCrop(JITTER, box_from=box_from, seed=0)(sample)
        assert out["image"].shape == (3, 64, 64) and out["K"].shape == (3, 3)
        proj = project_points(out["joints_cam"].double(), out["K"].double())
        assert (proj - out["joints_2d"].double()).abs().max() < 1e-3
        torch.testing.assert_close(out["root_cam"], out["joints_cam"][0])
        corners = out["joints_2d"]
        assert torch.all(corners.amin(0) >= out["hand_box"][:2] - 1e-3)
        assert torch.all(corners.amax(0) <= out["hand_box"][2:] + 1e-3)
