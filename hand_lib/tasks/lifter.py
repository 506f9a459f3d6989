"""The inputs of the lifter terms: jittered copies of the pseudo labels.

Both tasks train their keypoint lifter (:class:`hand_lib.models.keypoint_head.KeypointLifter`)
on the pseudo labels themselves as well as on the keypoint head's output: ``repeats`` copies
of the labels, each jittered by Gaussian noise of ``noise`` hand boxes, so the lifter learns
the 2D-to-hand map many times per step, from 2D only.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["jittered_labels"]

#: Confidence above which a pseudo label counts as a detection.
LABELLED_CONFIDENCE = 0.1


def jittered_labels(pixels: Tensor, conf: Tensor, predicted: Tensor, repeats: int, noise: float,
                    image_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Lifter inputs from ``repeats`` jittered copies of a batch's pseudo labels.

    Args:
        pixels: (B, 21, 2) pseudo labels, crop pixels.
        conf: (B, 21) their confidences.
        predicted: (B, 21, 2) the keypoint head's output, crop pixels (detached): it stands in
            for joints without a label.
        repeats: copies of the batch.
        noise: standard deviation of the jitter, in hand boxes (the side of the labelled
            joints' bounding box; the crop side when fewer than two joints are labelled).
        image_size: (H, W) of the crop.

    Returns:
        ``(inputs, targets, confs)``: (R B, 21, 2) jittered labels, (R B, 21, 2) the labels
        themselves and (R B, 21) their confidences, copy-major (row ``r B + b``).
    """
    targets, confs = pixels.repeat(repeats, 1, 1), conf.repeat(repeats, 1)
    labelled = (confs > LABELLED_CONFIDENCE)[..., None]
    hi = torch.where(labelled, targets, targets.new_full((), -1e9)).amax(1)
    lo = torch.where(labelled, targets, targets.new_full((), 1e9)).amin(1)
    box = torch.where(labelled.sum((1, 2)) >= 2, (hi - lo).amax(-1),
                      targets.new_full((), float(image_size[0])))
    jitter = torch.randn_like(targets) * (noise * box)[:, None, None]
    inputs = torch.where(labelled, targets + jitter, predicted.repeat(repeats, 1, 1))
    return inputs, targets, confs
