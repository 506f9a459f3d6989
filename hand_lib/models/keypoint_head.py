"""2D keypoints from an image encoder's feature pyramid, and a lifter from 2D to hand
parameters.

Regressing a hand from the pooled last feature map (S2HAND's and HaMuCo's single-view
heads) learns the hand's orientation long before its articulation: a small crop's last map
is 2 x 2 to 4 x 4 cells, and the fingers are a few pixels wide. What does learn quickly on a
CPU budget is 2D keypoint heatmaps, and lifting 2D keypoints to a MANO hand is a small
regression problem (measured in ``benchmarks/RESULTS.md``, section "learning on a CPU"). The
single-view networks therefore carry (``keypoint_features=True``):

- :class:`KeypointHead`: 21 heatmaps at stride 4, from the first three encoder levels merged
  top-down (a light feature pyramid), read out by soft-argmax into crop pixels. It is
  trained on the 2D pseudo labels (:func:`hand_lib.losses.heatmap_cross_entropy_loss` and
  the integral loss), like S2HAND's hourglass.
- :class:`KeypointLifter`: an MLP from the (detached) keypoints, centred on the crop and
  divided by its side, and the crop's focal length in crop widths, to the hand parameters;
  the pooled-feature head only adds a correction, starting from zero. Because it sees
  nothing but keypoints, the lifter can also be trained on the pseudo labels themselves
  (the tasks' ``lifter`` terms), many times per image step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from hand_lib.models.hourglass import soft_argmax

__all__ = ["KeypointHead", "KeypointHeatmaps", "KeypointLifter", "normalized_keypoints"]


@dataclass
class KeypointHeatmaps:
    """What :class:`KeypointHead` predicts.

    Attributes:
        keypoints_2d: (B, K, 2) soft-argmax keypoints, input-image pixels (OpenCV centres).
        logits: (B, K, h, w) heatmap logits; cell ``(i, j)`` is centred on pixel
            ``((j + 0.5) * W / w - 0.5, (i + 0.5) * H / h - 0.5)``.
    """

    keypoints_2d: Tensor
    logits: Tensor


class KeypointHead(nn.Module):
    """Keypoint heatmaps at stride 4 from encoder levels 1-3.

    Args:
        channels: channels of the encoder's first three levels (strides 4, 8, 16).
        width: channels of the merged maps.
        num_keypoints: heatmaps (21).
    """

    def __init__(self, channels: tuple[int, ...], width: int = 64, num_keypoints: int = 21):
        super().__init__()
        if len(channels) < 3:
            raise ValueError(f"need the channels of 3 encoder levels, got {channels}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels[:3])
        self.out = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, num_keypoints, 1),
        )

    def forward(self, levels: list[Tensor], image_size: tuple[int, int]) -> KeypointHeatmaps:
        """Args: levels: the encoder's maps, finest first; image_size: (H, W) of its input."""
        x = self.lateral[2](levels[2])
        for k in (1, 0):
            x = F.interpolate(x, size=levels[k].shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.lateral[k](levels[k])
        logits = self.out(x)
        xy, _ = soft_argmax(logits)
        H, W = image_size
        scale = xy.new_tensor([W / logits.shape[-1], H / logits.shape[-2]])
        return KeypointHeatmaps(keypoints_2d=(xy + 0.5) * scale - 0.5, logits=logits)


def normalized_keypoints(keypoints_px: Tensor, image_size: tuple[int, int]) -> Tensor:
    """(B, K, 2) pixels -> (B, 2K) centred on the crop and divided by its side."""
    H, W = image_size
    centre = keypoints_px.new_tensor([(W - 1) / 2, (H - 1) / 2])
    return ((keypoints_px - centre) / max(H, W)).flatten(1)


class KeypointLifter(nn.Module):
    """MLP: normalised 2D keypoints (+ extra inputs) -> a parameter vector.

    Args:
        num_outputs: length of the output (the hand parameters it corrects).
        hidden: MLP width.
        num_keypoints: keypoints in the input (21).
        extra: length of the extra input (e.g. 1 for the focal length).
    """

    def __init__(self, num_outputs: int, hidden: int = 512, num_keypoints: int = 21,
                 extra: int = 0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2 * num_keypoints + extra, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_outputs),
        )

    def forward(self, keypoints: Tensor) -> Tensor:
        """Args: keypoints (B, 2K + extra). Returns (B, num_outputs)."""
        return self.mlp(keypoints)
