"""S2HAND's 2D keypoint network: a stacked hourglass with integral (soft-argmax) readout.

The input image is resized to ``4 * heatmap_size`` (256 for the original 64x64 heatmaps);
a stride-4 stem feeds ``num_stacks`` hourglasses, each emitting 21 heatmaps with
intermediate supervision. Keypoints are the soft-argmax of the softmax-normalised heatmaps,
returned in the *input image's* pixel coordinates, so they compare directly with pseudo
labels and with MANO joints projected through the crop's K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hand_lib.models.encoders import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class HourglassOutput:
    """Attributes:
    heatmaps: list (one per stack) of (B, 21, h, h) raw heatmap logits.
    probabilities: (B, 21, h, h) softmax of the last stack's heatmaps (sums to 1).
    keypoints_2d: (B, 21, 2) soft-argmax of the last stack, input-image pixels (x, y).
    keypoints_2d_stacks: list of (B, 21, 2) soft-argmax of every stack, pixels.
    """

    heatmaps: list[Tensor]
    probabilities: Tensor
    keypoints_2d: Tensor
    keypoints_2d_stacks: list[Tensor]


class _Residual(nn.Module):
    """Pre-activation bottleneck residual block."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1),
        )  # fmt: skip
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class _Hourglass(nn.Module):
    """One recursive hourglass of ``depth`` down/up levels at constant width."""

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.up1 = _Residual(width, width)
        self.low1 = _Residual(width, width)
        self.low2 = _Hourglass(depth - 1, width) if depth > 1 else _Residual(width, width)
        self.low3 = _Residual(width, width)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest")


def soft_argmax(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integral readout of heatmaps.

    Args:
        heatmaps: (B, K, h, w) logits.

    Returns:
        ``(coords (B, K, 2), probs (B, K, h, w))``: the expectation of the pixel centre
        ``(x, y)`` under ``softmax(heatmaps)`` in heatmap pixels (centre of pixel i is i),
        and the probabilities.
    """
    B, K, h, w = heatmaps.shape
    probs = heatmaps.flatten(2).softmax(dim=-1).view(B, K, h, w)
    xs = torch.arange(w, dtype=probs.dtype, device=probs.device)
    ys = torch.arange(h, dtype=probs.dtype, device=probs.device)
    x = (probs.sum(dim=2) * xs).sum(dim=-1)
    y = (probs.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1), probs


class StackedHourglass(nn.Module):
    """2D keypoint estimator (S2HAND: 2 stacks, 21 heatmaps at 64x64).

    Args:
        num_keypoints: heatmap channels (21).
        num_stacks: hourglasses in sequence (2).
        width: feature channels (256 in the original; smaller is fine for CPU profiles).
        depth: down-sampling levels per hourglass (4).
        heatmap_size: side of the heatmaps; the input is resized to 4x this.
    """

    def __init__(
        self,
        num_keypoints: int = 21,
        num_stacks: int = 2,
        width: int = 256,
        depth: int = 4,
        heatmap_size: int = 64,
    ) -> None:
        super().__init__()
        self.heatmap_size = heatmap_size
        self.stem = nn.Sequential(
            nn.Conv2d(3, width // 4, 7, stride=2, padding=3),
            nn.BatchNorm2d(width // 4), nn.ReLU(inplace=True),
            _Residual(width // 4, width // 2), nn.MaxPool2d(2),
            _Residual(width // 2, width // 2), _Residual(width // 2, width),
        )  # fmt: skip
        self.hourglasses = nn.ModuleList(_Hourglass(depth, width) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(_Residual(width, width), nn.Conv2d(width, width, 1),
                          nn.BatchNorm2d(width), nn.ReLU(inplace=True))  # fmt: skip
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(width, num_keypoints, 1) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(
            nn.Conv2d(width, width, 1) for _ in range(num_stacks - 1)
        )
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(num_keypoints, width, 1) for _ in range(num_stacks - 1)
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: Tensor) -> HourglassOutput:
        """Args: images (B, 3, H, W) RGB in [0, 1]. Returns :class:`HourglassOutput`."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        H, W = images.shape[-2:]
        side = 4 * self.heatmap_size
        x = (images - self.mean) / self.std
        if (H, W) != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        x = self.stem(x)
        heatmaps, coords = [], []
        # heatmap pixel i covers input pixels [i*W/h - 0.5, (i+1)*W/h - 0.5): centre mapping
        scale = x.new_tensor([W / self.heatmap_size, H / self.heatmap_size])
        for k, (hg, feat, head) in enumerate(
            zip(self.hourglasses, self.features, self.heads, strict=True)
        ):
            y = feat(hg(x))
            logits = head(y)
            heatmaps.append(logits)
            xy, probs = soft_argmax(logits)
            coords.append((xy + 0.5) * scale - 0.5)
            if k < len(self.merge_features):
                x = x + self.merge_features[k](y) + self.merge_heatmaps[k](logits)
        return HourglassOutput(
            heatmaps=heatmaps, probabilities=probs, keypoints_2d=coords[-1],
            keypoints_2d_stacks=coords,
        )  # fmt: skip
