"""Tests of hand_lib.render: coverage, depth, visibility, shading, gradients, fitting, inputs.

Scenes are built so the expected numbers are known in closed form: with ``K = I`` and z = 1
a vertex's (x, y) *are* its pixel coordinates; pixel (column x, row y) has its centre at
(u, v) = (x, y).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hand_lib.render import BackendUnavailableError, MeshRenderer, RenderSettings
from hand_lib.render.fit import fit_translation_scale, silhouette_iou, soft_iou_loss
from hand_lib.render.primitives import quad, uv_sphere

EYE = torch.eye(3)


def pixel_plane(points_px, z: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """(1, N, 3) vertices at depth z that project (with K = I scaled by z) to ``points_px``."""
    p = torch.tensor(points_px, dtype=torch.float64)
    return torch.cat([p * z, torch.full((len(p), 1), z, dtype=torch.float64)], 1)[None].to(dtype)


def centres_inside_polygon(polygon: np.ndarray, H: int, W: int) -> np.ndarray:
    """(H, W) bool: pixel centres strictly inside a convex CCW-or-CW polygon (reference)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    n = len(polygon)
    signs = []
    for k in range(n):
        a, b = polygon[k], polygon[(k + 1) % n]
        signs.append((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]))
    signs = np.stack(signs)
    return (signs > 0).all(0) | (signs < 0).all(0)


def shoelace(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def sphere_scene(size: int = 64, rings: int = 10, segments: int = 16):
    vertices, faces = uv_sphere(rings, segments)
    K = torch.tensor([[2.0 * size, 0.0, (size - 1) / 2], [0.0, 2.0 * size, (size - 1) / 2],
                      [0.0, 0.0, 1.0]])
    return vertices, faces, K


# --------------------------------------------------------------------------------------------
# Coverage, depth, visibility


def test_triangle_coverage_matches_area():
    H, W = 48, 64
    tri = np.array([[10.3, 8.7], [50.2, 12.1], [20.6, 41.4]])
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    out = renderer.render(pixel_plane(tri), torch.tensor([[0, 1, 2]]), EYE)
    area = shoelace(tri)  # 692.2 px^2
    perimeter = sum(np.linalg.norm(tri[k] - tri[(k + 1) % 3]) for k in range(3))
    # Hard mask: exactly the pixel centres inside (none lies within 1e-3 px of an edge here).
    expected = centres_inside_polygon(tri, H, W)
    assert np.array_equal(out.mask[0].numpy(), expected)
    assert abs(int(expected.sum()) - area) < 0.5 * perimeter
    # Soft coverage integrates to the area along straight edges (the sigmoid is odd about the
    # edge); rounded outer corners add O(sigma) px^2 (pi sigma ln 2 for the exterior sectors).
    assert out.alpha[0].sum().item() == pytest.approx(area, abs=8 * renderer.settings.sigma)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1


def test_square_coverage_axis_aligned_and_rotated():
    H = W = 64
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    # Axis-aligned 20 x 20 px square with edges on pixel boundaries: exactly 400 pixels.
    vertices, faces = quad((31.5, 31.5, 1.0), 10.0)
    out = renderer.render(vertices[None], faces, EYE)
    assert int(out.mask.sum()) == 400
    assert out.mask[0, 22:42, 22:42].all()
    # Soft: 400 up to the internal diagonal's SoftRas deficit (3/4 on the shared edge).
    assert 390.0 < out.alpha.sum().item() < 400.5
    # Rotated by 30 degrees about its centre, side 24 px: area 576.
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    corners = np.array([[-12, -12], [12, -12], [12, 12], [-12, 12]], dtype=np.float64)
    corners = corners @ np.array([[c, -s], [s, c]]).T + np.array([31.7, 30.9])
    out = renderer.render(pixel_plane(corners), faces, EYE)
    expected = centres_inside_polygon(corners, H, W)
    assert np.array_equal(out.mask[0].numpy(), expected)
    assert abs(int(out.mask.sum()) - 576) <= 0.5 * 96  # within half the perimeter
    assert out.alpha.sum().item() == pytest.approx(576, abs=12)


def test_depth_of_fronto_parallel_and_tilted_planes():
    H = W = 40
    K = torch.tensor([[50.0, 0.0, 19.5], [0.0, 50.0, 19.5], [0.0, 0.0, 1.0]])
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    vertices, faces = quad((0.0, 0.0, 0.73), 0.25)
    out = renderer.render(vertices[None], faces, K)
    mask = out.mask[0]
    assert mask.sum() > 0.5 * H * W
    assert torch.allclose(out.depth_m[0][mask], torch.tensor(0.73), atol=1e-6)
    assert (out.depth_m[0][~mask] == 0).all()
    # Tilted plane z = 0.8 + 0.5 x: depth at a pixel is where its ray meets the plane.
    vertices = torch.tensor([[-0.3, -0.3, 0.65], [0.3, -0.3, 0.95], [0.3, 0.3, 0.95],
                             [-0.3, 0.3, 0.65]])
    out = renderer.render(vertices[None], faces, K)
    _, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    ray_x = (xs - 19.5) / 50.0  # ray (ray_x, ray_y, 1)
    expected = 0.8 / (1.0 - 0.5 * ray_x)  # z = 0.8 + 0.5 * z * ray_x
    mask = out.mask[0]
    assert mask.sum() > 0.5 * H * W
    assert torch.allclose(out.depth_m[0][mask], expected[mask], rtol=1e-5)


def test_nearest_face_wins_on_overlap_in_any_order():
    H = W = 32
    near = pixel_plane([[4.0, 4.0], [24.0, 4.0], [4.0, 24.0]], z=0.8)
    far = pixel_plane([[8.0, 8.0], [28.0, 8.0], [28.0, 28.0]], z=1.0)
    vertices = torch.cat([near, far], 1)
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    K = torch.eye(3)
    for faces, near_id in [([[0, 1, 2], [3, 4, 5]], 0), ([[3, 4, 5], [0, 1, 2]], 1)]:
        out = renderer.render(vertices, torch.tensor(faces), K)
        index = out.face_index[0]
        assert index[12, 12] == near_id and out.depth_m[0, 12, 12] == pytest.approx(0.8)  # both
        assert index[6, 6] == near_id  # near only
        assert index[20, 26] == 1 - near_id  # far only
        assert out.depth_m[0, 20, 26] == pytest.approx(1.0)
        assert index[28, 4] == -1 and out.depth_m[0, 28, 4] == 0  # neither
        hard = renderer.render(vertices, torch.tensor(faces), K, mode="hard")
        assert torch.equal(hard.face_index, out.face_index)


def test_batch_items_and_per_sample_faces_are_independent():
    vertices, faces, K = sphere_scene(32, 6, 8)
    renderer = MeshRenderer(RenderSettings(image_size=(32, 32)))
    a = vertices * 0.05 + torch.tensor([0.01, 0.0, 0.5])
    b = vertices * 0.07 + torch.tensor([-0.02, 0.01, 0.6])
    both = renderer.render(torch.stack([a, b]), faces, K)
    per_sample = renderer.render(torch.stack([a, b]), torch.stack([faces, faces.flip(0)]),
                                 torch.stack([K, K]))
    for i, v in enumerate([a, b]):
        single = renderer.render(v[None], faces, K)
        assert torch.allclose(both.alpha[i], single.alpha[0], atol=1e-6)
        assert torch.equal(both.face_index[i], single.face_index[0])
        assert torch.allclose(per_sample.alpha[i], single.alpha[0], atol=1e-6)
    assert torch.equal(per_sample.mask, both.mask)


def test_culled_and_offscreen_geometry():
    renderer = MeshRenderer(RenderSettings(image_size=(16, 16)))
    vertices, faces = quad((0.0, 0.0, -1.0), 0.5)  # behind the camera
    out = renderer.render(vertices[None], faces, torch.tensor([[10.0, 0, 8], [0, 10.0, 8],
                                                               [0, 0, 1]]))
    assert out.alpha.abs().sum() == 0 and (out.face_index == -1).all()
    # Partly off-screen: the visible part is drawn, nothing breaks.
    vertices, faces = quad((0.0, 0.0, 1.0), 100.0)
    out = renderer.render(vertices[None], faces, EYE)
    assert out.mask.all()
    off_diagonal = ~torch.eye(16, dtype=torch.bool)[None]
    assert torch.allclose(out.alpha[off_diagonal], torch.tensor(1.0), atol=0.2)
    assert out.alpha.min() >= 0.75 - 1e-6  # the shared diagonal: 1 - (1/2)^2


# --------------------------------------------------------------------------------------------
# Shading


def test_lighting_and_background_follow_s2hand_model():
    H = W = 16
    renderer = MeshRenderer(RenderSettings(image_size=(H, W), background=(0.1, 0.2, 0.3)))
    vertices, faces = quad((7.5, 7.5, 1.0), 5.0)  # normal (0, 0, -1): towards the camera
    albedo = torch.tensor([0.8, 0.6, 0.4]).expand(1, 2, 3)
    # a, d, ambient rgb, directional rgb, direction (towards the light, at 60 deg from n)
    direction = [0.0, math.sin(math.pi / 3), -math.cos(math.pi / 3)]
    lighting = torch.tensor([[0.5, 0.8, 1.0, 0.9, 0.8, 1.0, 1.0, 0.5, *direction]])
    out = renderer.render(vertices[None], faces, EYE, face_colors=albedo, lighting=lighting)
    light = 0.5 * torch.tensor([1.0, 0.9, 0.8]) + 0.8 * torch.tensor([1.0, 1.0, 0.5]) * 0.5
    assert torch.allclose(out.rgb[0, 5, 9], albedo[0, 0] * light, atol=1e-5)
    assert torch.allclose(out.rgb[0, 0, 0], torch.tensor([0.1, 0.2, 0.3]))
    # Light from behind the surface: ambient only (one-sided Lambert).
    lighting[0, 8:] = torch.tensor([0.0, 0.0, 1.0])
    out = renderer.render(vertices[None], faces, EYE, face_colors=albedo, lighting=lighting)
    assert torch.allclose(out.rgb[0, 5, 9], albedo[0, 0] * 0.5 * torch.tensor([1.0, 0.9, 0.8]),
                          atol=1e-5)
    # No lighting given: the albedo itself.
    out = renderer.render(vertices[None], faces, EYE, face_colors=albedo)
    assert torch.allclose(out.rgb[0, 5, 9], albedo[0, 0], atol=1e-6)
    # On the shared diagonal, SoftRas coverage of a single layer is 1 - (1/2)^2.
    assert out.alpha[0, 7, 7].item() == pytest.approx(0.75, abs=1e-6)


def test_vertex_colours_are_interpolated_perspective_correctly():
    H = W = 40
    K = torch.tensor([[50.0, 0.0, 19.5], [0.0, 50.0, 19.5], [0.0, 0.0, 1.0]])
    vertices = torch.tensor([[-0.3, -0.3, 0.5], [0.3, -0.3, 1.5], [0.3, 0.3, 1.5],
                             [-0.3, 0.3, 0.5]])
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    # Colour = an affine function of the 3D point: exact under perspective-correct interpolation.
    colour_of = lambda p: torch.stack([p[..., 0] + 0.5, p[..., 1] + 0.5, p[..., 2] - 0.5], -1)  # noqa: E731
    renderer = MeshRenderer(RenderSettings(image_size=(H, W)))
    # Hard mode: alpha is the exact mask, so rgb is the interpolated colour itself.
    out = renderer.render(vertices[None], faces, K, vertex_colors=colour_of(vertices)[None],
                          mode="hard")
    mask = out.mask[0]
    ys, xs = torch.meshgrid(torch.arange(float(H)), torch.arange(float(W)), indexing="ij")
    z = out.depth_m[0]
    points = torch.stack([(xs - 19.5) / 50.0 * z, (ys - 19.5) / 50.0 * z, z], -1)
    assert mask.sum() > 300
    assert torch.allclose(out.rgb[0][mask], colour_of(points)[mask], atol=1e-5)


# --------------------------------------------------------------------------------------------
# Gradients


def _small_sphere_scene(dtype=torch.float64):
    vertices, faces = uv_sphere(4, 6, dtype=dtype)
    vertices = vertices * torch.tensor([0.06, 0.05, 0.05], dtype=dtype)
    vertices = vertices + torch.tensor([0.003, -0.002, 0.5], dtype=dtype)
    K = torch.tensor([[80.0, 0.0, 9.7], [0.0, 80.0, 10.2], [0.0, 0.0, 1.0]], dtype=dtype)
    return vertices[None], faces, K


def test_soft_silhouette_gradient_matches_finite_differences():
    vertices, faces, K = _small_sphere_scene()
    # A negligible cutoff so that no (face, pixel) pair appears or vanishes within the FD step.
    renderer = MeshRenderer(RenderSettings(image_size=(20, 20), soft_cutoff=1e-12))
    weights = torch.rand(1, 20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(v):
        return (renderer.silhouette(v, faces, K) * weights).sum()

    vertices = vertices.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(vertices), vertices)
    assert grad.abs().max() > 1.0  # the silhouette really depends on the vertices
    eps = 1e-7
    numeric = torch.zeros_like(grad)
    with torch.no_grad():
        flat = vertices.detach().clone().view(-1)
        for i in range(flat.numel()):
            plus, minus = flat.clone(), flat.clone()
            plus[i] += eps
            minus[i] -= eps
            numeric.view(-1)[i] = (loss(plus.view_as(vertices)) - loss(minus.view_as(vertices))
                                   ) / (2 * eps)
    assert torch.allclose(grad, numeric, rtol=1e-4, atol=1e-4 * grad.abs().max())
    # The soft render's alpha is the same function with the same gradient.
    out = renderer.render(vertices, faces, K)
    (grad_render,) = torch.autograd.grad((out.alpha * weights).sum(), vertices)
    assert torch.allclose(grad_render, grad, rtol=1e-10, atol=1e-10)


def test_rgb_gradients_wrt_colours_lighting_and_vertices_match_finite_differences():
    dtype = torch.float64
    renderer = MeshRenderer(RenderSettings(image_size=(12, 12), soft_cutoff=1e-12,
                                           background=(0.2, 0.3, 0.1)))
    vertices = torch.tensor([[[-0.31, -0.27, 1.02], [0.33, -0.3, 1.1], [0.29, 0.32, 0.97],
                              [-0.28, 0.3, 0.9]]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    K = torch.tensor([[12.0, 0.0, 5.6], [0.0, 12.0, 5.4], [0.0, 0.0, 1.0]], dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    colors = torch.rand(1, 4, 3, dtype=dtype, generator=gen, requires_grad=True)
    lighting = torch.tensor([[0.4, 0.7, 0.9, 1.0, 0.8, 1.0, 0.7, 0.9, 0.2, -0.3, -1.0]],
                            dtype=dtype, requires_grad=True)
    vertices.requires_grad_(True)
    weights = torch.rand(1, 12, 12, 3, dtype=dtype, generator=gen)

    def loss(v, c, light):
        out = renderer.render(v, faces, K, vertex_colors=c, lighting=light)
        return (out.rgb * weights).sum()

    assert torch.autograd.gradcheck(loss, (vertices, colors, lighting), eps=1e-7, atol=1e-5,
                                    rtol=1e-4)


def test_hard_mode_passes_gradients_to_colours_but_render_fast_builds_no_graph():
    vertices, faces = quad((0.0, 0.0, 1.0), 0.3)
    K = torch.tensor([[20.0, 0.0, 7.5], [0.0, 20.0, 7.5], [0.0, 0.0, 1.0]])
    renderer = MeshRenderer(RenderSettings(image_size=(16, 16)))
    colors = torch.full((1, 2, 3), 0.5, requires_grad=True)
    hard = renderer.render(vertices[None], faces, K, face_colors=colors, mode="hard")
    hard.rgb.sum().backward()
    assert colors.grad is not None and colors.grad.sum() == pytest.approx(3 * hard.mask.sum())
    fast = renderer.render_fast(vertices[None].requires_grad_(True), faces, K, face_colors=colors)
    assert not fast.rgb.requires_grad and not fast.alpha.requires_grad
    assert torch.equal(fast.rgb, hard.rgb.detach()) and torch.equal(fast.face_index,
                                                                    hard.face_index)


# --------------------------------------------------------------------------------------------
# Optimisation through the renderer


def test_sphere_translation_and_scale_fit_to_silhouette_converges():
    vertices, faces, K = sphere_scene(64)
    renderer = MeshRenderer(RenderSettings(image_size=(64, 64)))
    target_t, target_s = torch.tensor([0.03, -0.02, 0.5]), 0.08
    with torch.no_grad():
        target = renderer.silhouette(vertices[None] * target_s + target_t, faces, K)[0]
    fit = fit_translation_scale(renderer, vertices, faces, K, target,
                                torch.tensor([-0.02, 0.02, 0.6]), init_scale=0.06, steps=60,
                                lr=0.03)
    assert fit.ious[0] < 0.4
    assert fit.ious[-1] > 0.95
    # Image-plane position and apparent size (scale / depth) are what a silhouette fixes.
    t = fit.translation_m
    assert torch.allclose(t[:2] / t[2], target_t[:2] / target_t[2], atol=2e-3)
    assert float(fit.scale / t[2]) == pytest.approx(target_s / 0.5, rel=0.03)


def test_sphere_pose_and_albedo_fit_through_photometric_loss_converges():
    vertices, faces, K = sphere_scene(64)
    background = (0.1, 0.1, 0.1)
    renderer = MeshRenderer(RenderSettings(image_size=(64, 64), background=background))
    target_t, target_s = torch.tensor([0.03, -0.02, 0.5]), 0.08
    albedo = torch.tensor([0.8, 0.5, 0.3])
    lighting = torch.tensor([[0.6, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3, -0.5, -1.0]])
    with torch.no_grad():
        target = renderer.render(vertices[None] * target_s + target_t, faces, K,
                                 face_colors=albedo.expand(1, len(faces), 3), lighting=lighting)
    fit = fit_translation_scale(renderer, vertices, faces, K, target.alpha[0],
                                torch.tensor([-0.02, 0.02, 0.6]), init_scale=0.06,
                                target_rgb=target.rgb[0], lighting=lighting, steps=80, lr=0.03)
    assert fit.ious[0] < 0.4
    assert fit.ious[-1] > 0.95
    assert fit.albedo is not None and torch.allclose(fit.albedo, albedo, atol=0.03)
    assert fit.losses[-1] < 0.2 * fit.losses[0]


def test_fit_rejects_bad_inputs():
    vertices, faces, K = sphere_scene(16, 4, 6)
    renderer = MeshRenderer(RenderSettings(image_size=(16, 16)))
    target = torch.zeros(16, 16)
    start = torch.tensor([0.0, 0.0, 0.5])
    with pytest.raises(ValueError, match=r"target_alpha must be \(16, 16\)"):
        fit_translation_scale(renderer, vertices, faces, K, target[:8], start, 0.05)
    with pytest.raises(ValueError, match=r"template_m must be \(V, 3\)"):
        fit_translation_scale(renderer, vertices[None], faces, K, target, start, 0.05)
    with pytest.raises(ValueError, match="z > 0"):
        fit_translation_scale(renderer, vertices, faces, K, target, -start, 0.05)
    with pytest.raises(ValueError, match=r"target_rgb must be \(16, 16, 3\)"):
        fit_translation_scale(renderer, vertices, faces, K, target, start, 0.05,
                              target_rgb=torch.zeros(16, 16))


def test_int32_faces_and_shared_K_forms_give_the_same_render():
    vertices, faces, K = sphere_scene(24, 5, 8)
    vertices = (vertices * 0.05 + torch.tensor([0.0, 0.0, 0.5]))[None]
    renderer = MeshRenderer(RenderSettings(image_size=(24, 24)))
    reference = renderer.render(vertices, faces, K[None])
    for f, k in [(faces.int(), K), (faces[None], K[None]), (faces, K)]:
        out = renderer.render(vertices, f, k)
        assert torch.equal(out.face_index, reference.face_index)
        assert torch.equal(out.alpha, reference.alpha)


def test_iou_helpers():
    a = torch.zeros(2, 4, 4)
    b = torch.zeros(2, 4, 4)
    a[0, :2], b[0, 1:3] = 1, 1
    assert silhouette_iou(a, b).tolist() == [pytest.approx(1 / 3), 1.0]
    assert soft_iou_loss(a[:1], a[:1]).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same"):
        silhouette_iou(a, b[0])


# --------------------------------------------------------------------------------------------
# Hand mesh: hard vs soft, chunking (bounded memory)


@pytest.fixture(scope="module")
def hand_scene():
    from hand_lib.mano import ManoLayer

    layer = ManoLayer()
    gen = torch.Generator().manual_seed(3)
    pose = torch.randn(2, 16, 3, generator=gen) * 0.2
    transl = torch.tensor([[0.08, 0.03, 0.6], [0.06, 0.02, 0.55]])
    with torch.no_grad():
        vertices = layer(pose, torch.zeros(2, 10), transl).vertices
    K = torch.tensor([[250.0, 0.0, 55.5], [0.0, 250.0, 55.5], [0.0, 0.0, 1.0]])
    return vertices, layer.faces, K


def test_hand_hard_and_soft_masks_agree(hand_scene):
    vertices, faces, K = hand_scene
    renderer = MeshRenderer(RenderSettings(image_size=(112, 112)))
    soft = renderer.render(vertices, faces, K)
    hard = renderer.render(vertices, faces, K, mode="hard")
    assert hard.mask.sum() > 1000
    assert torch.equal(soft.face_index, hard.face_index)
    assert torch.allclose(soft.depth_m, hard.depth_m)
    assert torch.equal(hard.alpha.bool(), hard.mask)
    # Every covered pixel has soft coverage >= 1/2 (its own face gives D >= 1/2) ...
    assert (soft.alpha[hard.mask] >= 0.5).all()
    # ... and the soft silhouette (> 1/2) is the hard one grown by at most ~1 px: SoftRas'
    # OR over several faces meeting at the outline pushes the 1/2 level outwards.
    grown = torch.nn.functional.max_pool2d(hard.alpha[:, None], 3, 1, 1)[:, 0] > 0
    assert ((soft.alpha > 0.5) & ~grown).sum() < 0.01 * hard.mask.sum()
    assert (silhouette_iou(soft.alpha, hard.alpha) > 0.8).all()
    # Interior: the soft silhouette of the closed hand is (almost) 1 wherever a face is hit.
    assert soft.alpha[hard.mask].mean() > 0.99


def test_chunk_size_does_not_change_results(hand_scene):
    vertices, faces, K = hand_scene
    colors = torch.rand(2, vertices.shape[1], 3, generator=torch.Generator().manual_seed(0))
    outputs, grads = [], []
    for chunk in (None, 5000):
        renderer = MeshRenderer(RenderSettings(image_size=(112, 112), max_pairs_per_chunk=chunk))
        v = vertices.clone().requires_grad_(True)
        out = renderer.render(v, faces, K, vertex_colors=colors)
        (out.rgb.sum() + out.alpha.sum()).backward()
        outputs.append(out)
        grads.append(v.grad)
    a, b = outputs
    assert torch.equal(a.face_index, b.face_index) and torch.equal(a.depth_m, b.depth_m)
    assert torch.allclose(a.alpha, b.alpha, atol=1e-5)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4 * grads[0].abs().max())


# --------------------------------------------------------------------------------------------
# Inputs and settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vertices": torch.zeros(4, 3)}, r"vertices must be \(B, V, 3\)"),
        ({"vertices": torch.zeros(1, 4, 2)}, r"vertices must be \(B, V, 3\)"),
        ({"vertices": torch.zeros(1, 4, 3, dtype=torch.int64)}, "floating point"),
        ({"faces": torch.zeros(2, 4, dtype=torch.int64)}, r"faces must be \(F, 3\) or \(B, F"),
        ({"faces": torch.zeros(3, 2, 3, dtype=torch.int64)}, r"faces must be \(F, 3\) or \(1, F"),
        ({"faces": torch.tensor([[0, 1, 4]])}, r"index vertices 0\.\.3"),
        ({"faces": torch.tensor([[0.0, 1.0, 2.0]])}, "int32 or int64"),
        ({"K": torch.eye(4)}, r"K must be \(1, 3, 3\)"),
        ({"K": torch.eye(3, dtype=torch.float64)}, "K must be torch.float32"),
        ({"face_colors": torch.zeros(1, 3, 3)}, r"face_colors must be \(1, 2, 3\)"),
        ({"vertex_colors": torch.zeros(1, 3, 3)}, r"vertex_colors must be \(1, 4, 3\)"),
        ({"face_colors": torch.zeros(1, 2, 3), "vertex_colors": torch.zeros(1, 4, 3)}, "not both"),
        ({"lighting": torch.zeros(1, 10)}, r"lighting must be \(1, 11\)"),
        ({"mode": "wire"}, "mode must be 'soft' or 'hard'"),
    ],
)
def test_render_rejects_bad_inputs(kwargs, message):
    vertices, faces = quad((0.0, 0.0, 1.0), 0.3)
    args = {"vertices": vertices[None], "faces": faces, "K": EYE, **kwargs}
    with pytest.raises(ValueError, match=message):
        MeshRenderer(RenderSettings(image_size=(8, 8))).render(**args)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="unknown RenderSettings keys"):
        RenderSettings.from_dict({"image_size": (8, 8), "sigmaa": 1.0})
    with pytest.raises(ValueError, match="sigma"):
        RenderSettings(sigma=0.0)
    with pytest.raises(ValueError, match="image_size"):
        RenderSettings(image_size=(0, 8))
    with pytest.raises(ValueError, match="backend"):
        RenderSettings(backend="opengl")
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        RenderSettings(max_pairs_per_chunk=0)
    assert RenderSettings().chunk_pairs(torch.device("cpu")) == 1 << 19
    assert RenderSettings().chunk_pairs(torch.device("cuda")) == 1 << 21
    assert RenderSettings(max_pairs_per_chunk=77).chunk_pairs(torch.device("cpu")) == 77
    s = RenderSettings.from_dict({"image_size": [32, 48], "background": [1, 1, 1]})
    assert s.image_size == (32, 48) and s.background == (1.0, 1.0, 1.0)
    # Coverage at the margin is the cutoff: sigmoid(-margin^2 / sigma) == soft_cutoff.
    assert 1 / (1 + math.exp(s.margin_px**2 / s.sigma)) == pytest.approx(s.soft_cutoff)


# --------------------------------------------------------------------------------------------
# Optional neural_renderer backend


def _neural_renderer_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import neural_renderer  # noqa: F401
    except ImportError:
        return False
    return True


def test_neural_renderer_backend_refuses_clearly_when_unavailable():
    if _neural_renderer_available():
        pytest.skip("neural_renderer is installed and CUDA is available here")
    settings = RenderSettings(image_size=(32, 32), backend="neural_renderer")
    expected = "needs CUDA" if not torch.cuda.is_available() else "install_neural_renderer"
    with pytest.raises(BackendUnavailableError, match=expected):
        MeshRenderer(settings)


@pytest.mark.skipif(not _neural_renderer_available(),
                    reason="needs CUDA and neural-renderer-pytorch 1.1.3 "
                           "(tools/install_neural_renderer.py); not installed here")
def test_silhouettes_agree_with_neural_renderer(hand_scene):
    vertices, faces, K = hand_scene
    K = K.clone()
    K[:2] *= 2.0  # the 112 px scene at 224 px
    K[:2, 2] += 0.5
    vertices, faces, K = vertices.cuda(), faces.cuda(), torch.stack([K, K]).cuda()
    ours = MeshRenderer(RenderSettings(image_size=(224, 224)))
    nr = MeshRenderer(RenderSettings(image_size=(224, 224), backend="neural_renderer"))
    theirs = nr.silhouette(vertices, faces, K)
    assert theirs.shape == (2, 224, 224)
    # Same pixel-centre rule, both sides drawn: the hard masks agree to the edge pixels.
    hard = ours.render_fast(vertices, faces, K).alpha
    assert (silhouette_iou(hard, theirs) > 0.98).all()
    # Our soft silhouette's 1/2 level lies ~1 px outside the outline (see rasterize.py).
    assert (silhouette_iou(ours.silhouette(vertices, faces, K), theirs) > 0.88).all()
    out = nr.render(vertices, faces, K)
    assert (silhouette_iou(out.alpha, hard) > 0.98).all()
    assert torch.equal(out.face_index, ours.render_fast(vertices, faces, K).face_index)


def _load_installer():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "install_neural_renderer.py"
    spec = importlib.util.spec_from_file_location("install_neural_renderer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installer_applies_the_pytorch2_source_edits(tmp_path):
    installer = _load_installer()
    cuda_dir = tmp_path / "neural_renderer" / "cuda"
    cuda_dir.mkdir(parents=True)
    (cuda_dir / "rasterize_cuda.cpp").write_text(
        '#define CHECK_CUDA(x) AT_CHECK(x.type().is_cuda(), #x " must be a CUDA tensor")\n'
        "CHECK_CUDA(faces);\n"
    )
    (cuda_dir / "rasterize_cuda_kernel.cu").write_text(
        'AT_DISPATCH_FLOATING_TYPES(faces.type(), "rasterize_cuda", ([&] {\n'
        "    kernel<scalar_t><<<blocks, threads>>>(faces.data<scalar_t>(), "
        "index.data<int32_t>());\n}));\n"
    )
    (tmp_path / "setup.py").write_text("AT_CHECK = 'python files are left alone'\n")
    changed = installer.patch_sources(tmp_path)
    assert changed == {"neural_renderer/cuda/rasterize_cuda.cpp": 2,
                       "neural_renderer/cuda/rasterize_cuda_kernel.cu": 3}
    cpp = (cuda_dir / "rasterize_cuda.cpp").read_text()
    assert "TORCH_CHECK(x.is_cuda()," in cpp and "AT_CHECK" not in cpp
    cu = (cuda_dir / "rasterize_cuda_kernel.cu").read_text()
    assert 'AT_DISPATCH_FLOATING_TYPES(faces.scalar_type(), "rasterize_cuda"' in cu
    assert "faces.data_ptr<scalar_t>()" in cu and "index.data_ptr<int32_t>()" in cu
    assert installer.patch_sources(tmp_path) == {}  # idempotent
    assert "AT_CHECK" in (tmp_path / "setup.py").read_text()


def test_installer_refuses_without_cuda():
    installer = _load_installer()
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(installer.InstallError, match="CUDA|GPU"):
        installer.check_cuda_build_environment()
    assert installer.main([]) == 1


def test_installer_unpacks_a_carried_sdist(tmp_path):
    import tarfile

    installer = _load_installer()
    src = tmp_path / "src" / "neural_renderer_pytorch-1.1.3"
    (src / "neural_renderer").mkdir(parents=True)
    (src / "setup.py").write_text("# setup\n")
    (src / "neural_renderer" / "x.cu").write_text("AT_CHECK(1);\n")
    archive = tmp_path / "neural_renderer_pytorch-1.1.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    work = tmp_path / "work"
    work.mkdir()
    tree = installer.unpack_sdist(archive, work)
    assert tree == work / src.name and (tree / "neural_renderer" / "x.cu").exists()
    with pytest.raises(installer.InstallError, match="no such sdist"):
        installer.unpack_sdist(tmp_path / "missing.tar.gz", work)
