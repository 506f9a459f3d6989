"""Background augmentation: hands composited onto random backgrounds through their mask.

A network trained on green-screen images learns the green screen. FreiHAND ships its
training images in four background versions for this reason, and HanCo ships hand masks
(``mask_hand/``) so that users can composite their own. :class:`BackgroundComposite` does
this on the fly, after cropping: ``image = mask * image + (1 - mask) * background``, with the
mask warped like the image (soft at the edges).

Backgrounds come from a :class:`BackgroundBank`: either images of a folder (any photos you
have the right to use) or procedural clutter (:func:`BackgroundBank.procedural`, the
synthetic generator's own ``cluttered_background`` family drawn from a separate seed stream,
so never the pixels of a test image). Each draw takes a random square window of a random
bank image (side ``window`` times the image side: a crop shows a background at about the
scale a hand crop of the full image shows it), flips it at random and resizes it to the
crop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["BackgroundBank", "BackgroundComposite", "despill_green"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def despill_green(images: Tensor) -> Tensor:
    """(..., 3, H, W) RGB with the green channel limited to ``max(R, B)`` (chroma-key
    despill: removes a green screen's fringe, keeps colours whose green is not dominant)."""
    r, g, b = images.unbind(-3)
    return torch.stack([r, torch.minimum(g, torch.maximum(r, b)), b], dim=-3)


class BackgroundBank:
    """Square background images held in memory.

    Args:
        images: (N, 3, H, W) uint8 (or float in [0, 1]), N >= 1, H == W.
        window: (low, high) side of the drawn window as a fraction of the image side.
    """

    def __init__(self, images: Tensor, window: tuple[float, float] = (0.4, 1.0)) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise ValueError(f"images must be (N >= 1, 3, H, W), got {tuple(images.shape)}")
        if images.shape[2] != images.shape[3]:
            raise ValueError(f"background images must be square, got {tuple(images.shape[2:])}")
        if not 0.0 < window[0] <= window[1] <= 1.0:
            raise ValueError(f"window must satisfy 0 < low <= high <= 1, got {window}")
        if images.dtype != torch.uint8:
            images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
        self.images = images
        self.window = window
        self._resized: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def procedural(cls, count: int = 256, size: int = 224, seed: int = 0,
                   **kwargs: Any) -> BackgroundBank:
        """``count`` cluttered scenes of the synthetic generator's kind
        (:func:`hand_lib.data.synthetic_background.cluttered_background`), each from its own
        generator ``default_rng([seed, 0xBA5E, i])``: a stream the dataset never uses."""
        from hand_lib.data.synthetic_background import cluttered_background

        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        images = np.stack([cluttered_background(np.random.default_rng([seed, 0xBA5E, i]),
                                                (size, size)) for i in range(count)])
        pixels = torch.from_numpy((images * 255).round().astype(np.uint8)).permute(0, 3, 1, 2)
        return cls(pixels.contiguous(), **kwargs)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], size: int = 224,
                    limit: int | None = None, **kwargs: Any) -> BackgroundBank:
        """The images of a folder (sorted; .jpg, .png, .bmp, .webp), centre-cropped to a
        square and resized to ``size``.

        Raises:
            FileNotFoundError: the folder does not exist or holds no image.
            ValueError: an image cannot be decoded (names the file).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"background folder {folder} does not exist")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if limit is not None:
            files = files[:limit]
        if not files:
            raise FileNotFoundError(f"{folder} holds no image ({', '.join(_IMAGE_SUFFIXES)})")
        images = []
        for path in files:
            try:
                with Image.open(path) as im:
                    rgb = im.convert("RGB")
                    side = min(rgb.size)
                    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
                    rgb = rgb.crop((left, top, left + side, top + side)).resize(
                        (size, size), Image.BILINEAR)
                    images.append(np.asarray(rgb))
            except (OSError, ValueError, SyntaxError) as exc:
                raise ValueError(f"{path}: cannot decode background image ({exc})") from exc
        return cls(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), **kwargs)

    def draw(self, count: int, out_size: int, generator: torch.Generator | None = None
             ) -> Tensor:
        """``count`` random background crops, (count, 3, out_size, out_size) float in [0, 1]."""
        return self.render(*self.draw_params(count, generator), out_size)

    def draw_params(self, count: int, generator: torch.Generator | None = None
                    ) -> tuple[Tensor, Tensor]:
        """The random draws of ``count`` backgrounds: bank indices (count,) and uniforms
        (count, 5) (window side, x, y, flip, brightness); :meth:`render` turns them into
        images (so that draws made per sample can be rendered in one batch)."""
        u = torch.rand(count, 5, generator=generator, dtype=torch.float64)
        which = torch.randint(len(self.images), (count,), generator=generator)
        return which, u

    def _source(self, out_size: int) -> Tensor:
        """The bank as float, resized to twice ``out_size`` (cached): a window of it is then
        never shrunk by more than 2x, so bilinear sampling does not alias badly."""
        side = min(self.images.shape[-1], 2 * out_size)
        cached = self._resized.get(side)
        if cached is None:
            cached = F.interpolate(self.images.float() / 255.0, size=(side, side),
                                   mode="bilinear", align_corners=False,
                                   antialias=side < self.images.shape[-1])
            self._resized[side] = cached
        return cached

    def render(self, which: Tensor, u: Tensor, out_size: int) -> Tensor:
        """Backgrounds from :meth:`draw_params`, (count, 3, out_size, out_size) in [0, 1]:
        a square window (side ``window`` of the image, at position ``u[:, 1:3]``) of bank
        image ``which``, mirrored where ``u[:, 3] < 0.5``, brightness ``0.7 + 0.6 u[:, 4]``."""
        source = self._source(out_size)
        size = source.shape[-1]
        lo, hi = self.window
        side = (lo + (hi - lo) * u[:, 0]) * size  # window side, source pixels
        x0 = u[:, 1] * (size - side)
        y0 = u[:, 2] * (size - side)
        q = (torch.arange(out_size, dtype=torch.float64) + 0.5) / out_size  # (S,)
        fx = torch.where(u[:, 3:4] < 0.5, 1.0 - q, q)  # (N, S) fraction across the window
        xs = x0[:, None] + fx * side[:, None]  # source pixel edges coordinate
        ys = y0[:, None] + q * side[:, None]
        gx = (2 * xs / size - 1).to(source.dtype)
        gy = (2 * ys / size - 1).to(source.dtype)
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        out = F.grid_sample(source[which], grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
        brightness = (0.7 + 0.6 * u[:, 4]).to(out.dtype).view(-1, 1, 1, 1)
        return (out * brightness).clamp_(0.0, 1.0)


class BackgroundComposite:
    """A sample transform: composite the hand over a bank background through ``mask``.

    Runs after the crop (:class:`hand_lib.data.HandCrop` warps ``mask`` with the image).
    Each view is composited with probability ``probability`` (FreiHAND's four versions
    amount to 3/4); samples without a ``mask`` pass unchanged. The ``mask`` key is dropped
    from the output unless ``keep_mask``.

    Green spill: the mask's soft edge mixes the green screen into the hand's outline. The
    composite therefore *despills* the foreground first, the chroma-keyer's trick: the green
    channel is limited to the larger of red and blue (``G' = min(G, max(R, B))``), which
    leaves skin (red above green) as it is and turns the green fringe grey.

    Args:
        bank: where backgrounds come from.
        probability: share of views that get a new background.
        seed: None uses torch's global generator; an int derives one from
            ``(seed, epoch, sample["index"])``, so runs are reproducible and resumable.
        keep_mask: keep ``mask`` in the sample (e.g. for a silhouette loss).
        despill: remove the green screen's spill from the foreground (see above).
    """

    def __init__(self, bank: BackgroundBank, probability: float = 0.75, seed: int | None = None,
                 keep_mask: bool = False, despill: bool = True) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.bank = bank
        self.probability = probability
        self.seed = seed
        self.keep_mask = keep_mask
        self.despill = despill
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the draws of a seeded composite from one epoch to the next."""
        self.epoch = int(epoch)

    def _generator(self, sample: Mapping[str, Any]) -> torch.Generator | None:
        if self.seed is None:
            return None
        from hand_lib.data.transforms import mix_seed

        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, 0xBA5E, self.epoch, int(sample["index"])))
        return g

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return self.batch([sample])[0]

    def batch(self, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Composite several samples, rendering their backgrounds in one call (the same
        result as calling on each)."""
        plans = []
        for sample in samples:
            if "mask" not in sample:
                plans.append(None)
                continue
            image, mask = sample["image"], sample["mask"]
            single = image.ndim == 3
            V = 1 if single else image.shape[0]
            if mask.shape[-2:] != image.shape[-2:] or (not single and mask.shape[0] != V):
                raise ValueError(f"mask {tuple(mask.shape)} does not match image "
                                 f"{tuple(image.shape)}")
            if image.shape[-1] != image.shape[-2]:
                raise ValueError("background composite needs square crops, got "
                                 f"{image.shape[-2]}x{image.shape[-1]}")
            g = self._generator(sample)
            chosen = torch.rand(V, generator=g) < self.probability
            plans.append((chosen, *self.bank.draw_params(V, g)))
        drawn = [p for p in plans if p is not None]
        if not drawn:
            return list(samples)
        size = next(s["image"].shape[-1] for s, p in zip(samples, plans, strict=True) if p)
        which = torch.cat([p[1] for p in drawn])
        u = torch.cat([p[2] for p in drawn])
        backgrounds = self.bank.render(which, u, size)
        outputs, start = [], 0
        for sample, plan in zip(samples, plans, strict=True):
            if plan is None:
                outputs.append(sample)
                continue
            out = dict(sample)
            mask = out["mask"] if self.keep_mask else out.pop("mask")
            chosen = plan[0]
            V = len(chosen)
            image = out["image"]
            single = image.ndim == 3
            images = image[None] if single else image
            masks = (mask[None] if single else mask).to(images.dtype)
            bg = backgrounds[start:start + V].to(images.dtype)
            start += V
            view_mask = out.get("view_mask")
            if view_mask is not None and not single:  # absent views stay zero
                chosen = chosen & view_mask.bool()
            fg = despill_green(images) if self.despill else images
            composite = masks * fg + (1.0 - masks) * bg
            images = torch.where(chosen.view(V, 1, 1, 1), composite, images)
            out["image"] = images[0] if single else images
            outputs.append(out)
        return outputs
