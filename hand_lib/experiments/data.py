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


#: file in a run folder recording the data and labels the run was trained on
RUN_PROVENANCE = "data_provenance.json"


def data_provenance(root: str | os.PathLike[str], pseudo_dir: str | None = None) -> dict:
    """What a training run's data are, for :func:`guard_run_data`: the synthetic generator's
    record (None for a real dataset) and the provenance stamp of the pseudo-label folder
    (None when the folder has none, e.g. HaMuCo's shipped labels)."""
    from hand_lib.data.hanco import PSEUDO_LABEL_DIRS
    from hand_lib.pseudo.hanco_labels import dataset_fingerprint
    from hand_lib.pseudo.labels import read_label_stamp

    root = Path(root)
    if pseudo_dir is None:
        pseudo_dir = next((d for d in PSEUDO_LABEL_DIRS if (root / d).is_dir()),
                          PSEUDO_LABEL_DIRS[0])  # fmt: skip
    return {
        "data": dataset_fingerprint(root),
        "pseudo_dir": pseudo_dir,
        "labels": read_label_stamp(root / pseudo_dir),
    }


def guard_run_data(run_dir: str | os.PathLike[str], provenance: dict) -> None:
    """Refuse to resume a run on other data or labels than it was trained on.

    A run folder without checkpoints gets ``provenance`` recorded (``data_provenance.json``);
    one with checkpoints must match its record. A folder trained before records existed is
    resumed with a warning.

    Raises:
        RuntimeError: the run's record differs (names the folder and what to do).
    """
    import json
    import logging

    from hand_lib.pseudo.labels import atomic_write_json
    from hand_lib.train.checkpoint import latest_checkpoint

    run_dir = Path(run_dir)
    record = run_dir / RUN_PROVENANCE
    current = json.loads(json.dumps(provenance))
    trained = latest_checkpoint(run_dir / "checkpoints") is not None
    if not trained:
        atomic_write_json(record, current, dump=lambda obj, f: json.dump(obj, f, indent=1))
        return
    if not record.is_file():
        logging.getLogger(__name__).warning(
            "%s has checkpoints but no %s: resuming without checking its data", run_dir,
            RUN_PROVENANCE)
        return
    if json.loads(record.read_text(encoding="utf-8")) != current:
        raise RuntimeError(
            f"{run_dir} was trained on other data or pseudo labels than these (see {record}): "
            f"delete {run_dir} to train on these, or point data_root back to the data it used")
