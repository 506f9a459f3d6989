"""The suite's datasets: HanCo-layout folders (real or synthetic) cropped around the hand.

Training crops are built from the 2D *pseudo labels* (the methods never see ground truth),
with scale, translation, rotation and colour jitter; test crops come from the pseudo labels
too, without jitter, as a deployed system would crop. HaMuCo's protocol is followed for the
image folders: training on ``rgb`` (green screen), testing on ``rgb_merged`` (composited
backgrounds).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from hand_lib.data import CropConfig, HanCo, HandCrop

TRAIN_JITTER = {"scale_jitter": 0.1, "translate_jitter": 0.05, "rotation_deg": 20.0,
                "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.02}  # fmt: skip


def hanco_dataset(
    root: str | os.PathLike[str],
    split: Literal["train", "test"],
    image_size: int,
    *,
    mode: Literal["single", "multi"] = "single",
    augment: bool | None = None,
    image_dir: Literal["rgb", "rgb_merged"] | None = None,
    seed: int = 0,
    rotation_deg: float | None = None,
    pseudo_dir: str | None = None,
) -> HanCo:
    """A HanCo-layout split with hand crops of ``image_size`` pixels.

    Args:
        root: dataset root (HanCo's layout, with pseudo labels in ``rgb_2D_keypoints``).
        split: "train" or "test" (HanCo's split: sequences < 1200 train).
        image_size: crop side, pixels.
        mode: one view per sample, or all views of a frame.
        augment: jitter the crops (default: only for training).
        image_dir: default ``rgb`` for training and ``rgb_merged`` for testing.
        seed: seeds the augmentation per (epoch, sample).
        rotation_deg: override the in-plane rotation range (HaMuCo uses 180 degrees).
        pseudo_dir: pseudo-label folder (None: ``rgb_2D_keypoints``; e.g.
            ``rgb_2D_keypoints_agreement`` for labels reweighted by multi-view agreement).
    """
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise FileNotFoundError(
            f"{root} is not a HanCo-layout dataset (no meta.json): run notebook 00_data or "
            "`python -m hand_lib.data.synthetic` first, or pass the real HanCo root"
        )
    augment = (split == "train") if augment is None else augment
    if image_dir is None:
        image_dir = "rgb" if split == "train" else "rgb_merged"
    jitter = dict(TRAIN_JITTER) if augment else {}
    if augment and rotation_deg is not None:
        jitter["rotation_deg"] = rotation_deg
    crop = HandCrop(CropConfig(out_size=image_size, **jitter), box_from="pseudo_2d",
                    augment=augment, seed=seed)  # fmt: skip
    return HanCo(root, split=split, mode=mode, image_dir=image_dir, transform=crop,
                 missing_views="skip", pseudo_dir=pseudo_dir)  # fmt: skip
