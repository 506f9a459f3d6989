"""Tests for hand_lib.losses mesh smoothness and appearance terms (photometric, colour,
texture), including the documented background-colour trap of the original S2HAND code."""

from __future__ import annotations

import pytest
import torch

from hand_lib.losses import (
    composite_over_background,
    image_confidence,
    laplacian_smoothness_loss,
    mean_colour_loss,
    mesh_laplacian,
    photometric_loss,
    texture_outlier_loss,
    uniform_laplacian,
)


# ------------------------------------------------------------------------- Laplacian
def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An n x n flat regular grid in the z = 0 plane, every square split along one diagonal."""
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    verts = torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(-1, 3).double() * 0.01
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [(a, b, e), (a, e, d)]
    return verts, torch.tensor(faces)


def _interior(n: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    inner = (xs > 0) & (xs < n - 1) & (ys > 0) & (ys < n - 1)
    return inner.reshape(-1)


def test_uniform_laplacian_rows() -> None:
    verts, faces = _grid(4)
    L = uniform_laplacian(faces, 16 + 1, dtype=torch.float64).to_dense()  # vertex 16 unused
    assert torch.allclose(L[:16].sum(1), torch.zeros(16, dtype=torch.float64))
    assert (L[16] == 0).all()  # an isolated vertex gets a zero row, not NaN
    assert (L.diagonal()[:16] == 1).all()
    assert L[5, 6] == pytest.approx(-1 / 6)  # interior vertices have 6 neighbours here
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        uniform_laplacian(faces[:, :2], 16)
    with pytest.raises(ValueError, match="outside"):
        uniform_laplacian(faces, 10)


def test_laplacian_zero_on_flat_grid_interior_positive_when_bumpy() -> None:
    n = 6
    verts, faces = _grid(n)
    L = uniform_laplacian(faces, n * n, dtype=torch.float64)
    inner = _interior(n)
    # a rotated, translated (still flat) copy as a second batch element
    R = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    batch = torch.stack([verts, verts @ R.T + 0.3])
    lap = mesh_laplacian(batch, L)
    assert lap.shape == (2, n * n, 3)
    assert lap[:, inner].abs().max() < 1e-12
    assert lap[:, ~inner].norm(dim=-1).max() > 1e-4  # open boundary: non-zero even when flat

    bumpy = verts.clone()
    bumpy[:, 2] = 0.004 * torch.randn(n * n, generator=torch.Generator().manual_seed(0))
    bumpy = bumpy[None].requires_grad_(True)
    lap_bumpy = mesh_laplacian(bumpy, L)
    assert (lap_bumpy[0, inner].norm(dim=-1) > 0).all()
    loss = laplacian_smoothness_loss(bumpy, L)
    flat_loss = laplacian_smoothness_loss(verts[None], L)
    assert loss > flat_loss
    loss.backward()
    assert torch.isfinite(bumpy.grad).all()


def test_laplacian_loss_on_hand_mesh_scales_linearly_and_has_finite_grad() -> None:
    from hand_lib.mano.layer import ManoLayer

    layer = ManoLayer(None, dtype=torch.float64)
    verts = layer(torch.zeros(1, 16, 3, dtype=torch.float64)).vertices
    L = uniform_laplacian(layer.faces, verts.shape[1], dtype=torch.float64)
    v = verts.clone().requires_grad_(True)
    loss = laplacian_smoothness_loss(v, L)
    loss.backward()
    assert loss > 0 and torch.isfinite(v.grad).all()
    assert laplacian_smoothness_loss(2 * verts + 1.0, L) == pytest.approx(2 * loss.item())
    # a float32 Laplacian is cast to the vertices' dtype
    L32 = uniform_laplacian(layer.faces, verts.shape[1])
    assert laplacian_smoothness_loss(verts, L32) == pytest.approx(loss.item(), rel=1e-5)


def test_mesh_laplacian_shape_errors() -> None:
    _, faces = _grid(3)
    L = uniform_laplacian(faces, 9)
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        mesh_laplacian(torch.zeros(9, 3), L)
    with pytest.raises(ValueError, match=r"\(V, V\)"):
        mesh_laplacian(torch.zeros(1, 8, 3), L)


# ------------------------------------------------------------------- image confidence
def test_image_confidence_mean_or_zero() -> None:
    conf = torch.full((3, 21), 0.5)
    conf[1, 4] = 0.05  # one unreliable joint: the image is not trusted
    conf[2, 0] = 0.9
    got = image_confidence(conf)
    assert got[0].item() == pytest.approx(0.5)
    assert got[1].item() == 0.0
    assert got[2].item() == pytest.approx((20 * 0.5 + 0.9) / 21)


# -------------------------------------------------------------------------- photometric
def _scene(seed: int = 0, soft: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64)
    alpha = torch.zeros(2, 16, 16, dtype=torch.float64)
    alpha[:, 4:12, 3:10] = 1.0
    if soft:
        alpha[:, 3, 3:10] = 0.5  # a soft edge row
    return image, alpha


def _render(foreground: torch.Tensor, alpha: torch.Tensor, bg) -> torch.Tensor:
    """What a renderer returns: the foreground composited over its background colour."""
    return composite_over_background(foreground, alpha, bg)


@pytest.mark.parametrize("bg", [1.0, 0.0, (0.2, 0.5, 0.9)])
@pytest.mark.parametrize("soft", [False, True])
def test_photometric_same_background_zero_when_render_matches_input(bg, soft) -> None:
    image, alpha = _scene(soft=soft)
    render = _render(image, alpha, bg)  # render == input inside the mask
    assert photometric_loss(image, render, alpha, background=bg).item() < 1e-12
    assert mean_colour_loss(image, render, alpha, background=bg).item() < 1e-12


def test_photometric_naive_original_comparison_is_the_trap() -> None:
    """The original S2HAND compares a white-background render with ``input * mask`` (black
    background): even a perfect render gets a large loss, proportional to the background
    area. The same-background target removes it."""
    image, alpha = _scene()
    render = _render(image, alpha, 1.0)  # perfect texture, white background
    naive = (render - image * alpha[:, None]).abs().mean()
    background_share = (1 - alpha).mean()
    assert naive.item() == pytest.approx(background_share.item())  # every bg pixel costs 1
    assert naive.item() > 0.5
    assert photometric_loss(image, render, alpha, background=1.0).item() < 1e-12
    # ... and with the wrong background colour the fixed loss shows the trap again
    wrong = photometric_loss(image, render, alpha, background=0.0)
    assert wrong.item() == pytest.approx(naive.item())


def test_photometric_hand_computed_and_image_confidence() -> None:
    image, alpha = _scene()
    foreground = (image + 0.1).clamp(max=2.0)  # texture off by +0.1 everywhere
    render = _render(foreground, alpha, 1.0)
    inside = alpha.mean().item()
    assert photometric_loss(image, render, alpha, background=1.0).item() == pytest.approx(
        0.1 * inside
    )
    # mean colour: each channel's mean is off by 0.1 x the covered fraction
    assert mean_colour_loss(image, render, alpha, background=1.0).item() == pytest.approx(
        0.1 * inside
    )
    # image confidence^2 weighting: only image 0 wrong, image 1 perfect
    render2 = torch.stack([render[0], _render(image, alpha, 1.0)[1]])
    conf = torch.tensor([0.5, 1.0], dtype=torch.float64)
    expected = 0.25 * 0.1 * inside / (0.25 + 1.0)
    got = photometric_loss(image, render2, alpha, background=1.0, image_confidence=conf)
    assert got.item() == pytest.approx(expected)
    zero_conf = torch.zeros(2, dtype=torch.float64)
    assert photometric_loss(
        image, render2, alpha, background=1.0, image_confidence=zero_conf
    ).item() == 0.0


def test_photometric_gradients_finite_and_reach_render() -> None:
    image, alpha = _scene(soft=True)
    fg = torch.rand_like(image).requires_grad_(True)
    a = alpha.clone().requires_grad_(True)
    render = _render(fg, a, (0.1, 0.2, 0.3))
    loss = photometric_loss(image, render, a, background=(0.1, 0.2, 0.3))
    loss = loss + mean_colour_loss(image, render, a, background=(0.1, 0.2, 0.3))
    loss.backward()
    assert torch.isfinite(fg.grad).all() and fg.grad.abs().sum() > 0
    assert torch.isfinite(a.grad).all()


def test_photometric_shape_errors() -> None:
    image, alpha = _scene()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        photometric_loss(image.permute(0, 2, 3, 1), image.permute(0, 2, 3, 1), alpha,
                         background=1.0)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        photometric_loss(image, image, alpha[:, :8], background=1.0)
    with pytest.raises(ValueError, match="background"):
        photometric_loss(image, image, alpha, background=(1.0, 1.0))
    with pytest.raises(ValueError, match="image_confidence"):
        photometric_loss(image, image, alpha, background=1.0, image_confidence=torch.ones(3))


# ---------------------------------------------------------------------- texture outliers
def test_texture_outlier_hand_computed() -> None:
    colours = torch.full((1, 100, 3), 0.5, dtype=torch.float64)
    assert texture_outlier_loss(colours).item() == 0.0  # uniform texture: no outlier
    colours[0, 0, 0] = 1.0
    # channel 0: mu = 0.505, sigma = 0.05 -> only the odd face (|1 - 0.505| > 0.1) counts
    assert colours[0, :, 0].std().item() == pytest.approx(0.05)
    assert texture_outlier_loss(colours).item() == pytest.approx(0.495 / 300)
    batch = torch.cat([colours, torch.full_like(colours, 0.3)])
    conf = torch.tensor([0.5, 1.0], dtype=torch.float64)
    got = texture_outlier_loss(batch, image_confidence=conf)
    assert got.item() == pytest.approx(0.25 * 0.495 / 300 / 1.25)


def test_texture_outlier_gradient_finite() -> None:
    colours = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(1))
    colours[:, 0] = 3.0
    colours.requires_grad_(True)
    loss = texture_outlier_loss(colours)
    loss.backward()
    assert loss > 0 and torch.isfinite(colours.grad).all()
    with pytest.raises(ValueError, match=r"\(B, F, 3\)"):
        texture_outlier_loss(torch.zeros(2, 50, 4))
