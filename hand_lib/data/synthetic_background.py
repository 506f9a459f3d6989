"""Procedural backgrounds for the synthetic generator: green screens and cluttered scenes.

The cluttered backgrounds (``rgb_merged/``) are meant to be hard to separate from the hand:
smooth and high-frequency noise, gradients, stripes, random shapes, and skin-coloured
shapes (including finger-like capsules) in about a third of them. All functions draw from an
explicit ``numpy.random.Generator`` and return float32 (H, W, 3) images in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hand_lib.data.synthetic_scene import sample_skin_tone


def _value_noise(rng: np.random.Generator, size: tuple[int, int], cells: int,
                 channels: int = 3) -> np.ndarray:
    """Smooth noise in [0, 1]: a ``cells x cells`` random grid upsampled bicubically."""
    H, W = size
    grid = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    mode = "RGB" if channels == 3 else "L"
    img = Image.fromarray(grid if channels == 3 else grid[..., 0], mode)
    out = np.asarray(img.resize((W, H), Image.BICUBIC), dtype=np.float32) / 255.0
    return out if channels == 3 else out[..., None]


def _random_colour(rng: np.random.Generator, skin_probability: float) -> np.ndarray:
    if rng.random() < skin_probability:
        return sample_skin_tone(rng) * rng.uniform(0.6, 1.1)
    return rng.random(3) ** rng.uniform(0.5, 2.0)


def green_screen(rng: np.random.Generator, size: tuple[int, int], green: np.ndarray) -> np.ndarray:
    """A green screen: ``green`` with a soft brightness gradient and a little smooth noise."""
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    a = rng.uniform(-1, 1, 2) / max(H, W)
    shade = 1.0 + 0.15 * (a[0] * (xx - W / 2) + a[1] * (yy - H / 2)) * 2
    noise = _value_noise(rng, size, 6, 1)[..., 0] - 0.5
    img = green[None, None, :] * (shade + 0.08 * noise)[..., None]
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def cluttered_background(rng: np.random.Generator, size: tuple[int, int],
                         skin_probability: float = 0.35) -> np.ndarray:
    """A random textured scene: a base layer (gradient, smooth noise or stripes), 3 to 14
    shapes (ellipses, rectangles, polygons, lines, finger-like capsules), optional blur and
    fine noise."""
    H, W = size
    kind = rng.integers(0, 3)
    c0, c1 = _random_colour(rng, skin_probability), _random_colour(rng, skin_probability)
    if kind == 0:  # linear gradient
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        t = (np.cos(ang) * xx + np.sin(ang) * yy) / max(H, W)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        base = c0[None, None] + t[..., None] * (c1 - c0)[None, None]
    elif kind == 1:  # smooth noise mapped between two colours, plus colour noise
        t = _value_noise(rng, size, int(rng.integers(3, 12)), 1)
        base = c0 + t * (c1 - c0) + 0.3 * (_value_noise(rng, size, 8) - 0.5)
    else:  # stripes
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(8, 60)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(ang) * xx + np.sin(ang) * yy) / period)
        base = c0 + t[..., None] * (c1 - c0)
    img = Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 15))):
        colour = tuple(int(c) for c in (_random_colour(rng, skin_probability) * 255).clip(0, 255))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * (W, H)
        w, h = rng.uniform(0.05, 0.6, 2) * (W, H)
        shape = rng.integers(0, 5)
        if shape == 0:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 1:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 2:
            pts = [tuple(p) for p in (rng.uniform(-0.1, 1.1, (int(rng.integers(3, 7)), 2))
                                      * (W, H))]
            draw.polygon(pts, fill=colour)
        elif shape == 3:
            draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(1, 6)))
        else:  # a finger-like capsule, skin coloured
            skin = tuple(int(c) for c in (sample_skin_tone(rng) * 255 * rng.uniform(0.6, 1.0)))
            width = int(rng.integers(8, 22))
            end = (x0 + rng.uniform(-1, 1) * 60, y0 + rng.uniform(-1, 1) * 60)
            draw.line([x0, y0, *end], fill=skin, width=width)
            for cx, cy in ((x0, y0), end):
                r = width / 2
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=skin)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.BoxBlur(float(rng.uniform(0.5, 2.5))))
    out = np.asarray(img, dtype=np.float32) / 255.0
    out = out + rng.uniform(0.0, 0.06) * (_value_noise(rng, size, 56) - 0.5)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
