"""The suite's datasets: HanCo-layout folders (real or synthetic) cropped around the hand.

Training crops are built from the 2D *pseudo labels* (the methods never see ground truth),
turned upright (the hand pointing up, from the same labels: a rotation-normalised crop as
in MediaPipe Hands), with scale, translation, rotation and colour jitter, and composited on
random backgrounds through the hand mask (where the data has masks). Test crops come from
the pseudo labels too, upright, without jitter, as a deployed system would crop.

HaMuCo's protocol is followed for the image folders: training on ``rgb`` (green screen),
testing on ``rgb_merged`` (composited backgrounds). A *validation* split of training
sequences (whole subjects, :func:`validation_sequences`) is held out of training and
evaluated like the test split (``rgb_merged``): learning curves and every setting are
chosen on it, never on the test split.

Every split is decoded once into a :class:`hand_lib.data.CropCache` (in
:func:`default_cache_dir`) and cropped and augmented from there: no loader workers, no
JPEG decoding per step.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from hand_lib.data import CropConfig, HanCo, HandCrop
from hand_lib.data.backgrounds import BackgroundBank, BackgroundComposite
from hand_lib.data.cache import CacheSpec, CropCache
from hand_lib.data.hanco import HANCO_TEST_FIRST_SEQUENCE, MASK_DIR
from hand_lib.data.transforms import Compose

#: training jitter of every crop (after the upright rotation)
TRAIN_JITTER = {"scale_jitter": 0.1, "translate_jitter": 0.05, "rotation_deg": 20.0,
                "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.02}  # fmt: skip
#: share of training views composited on a random background (FreiHAND's 3 of 4 versions)
BACKGROUND_PROBABILITY = 0.75
#: share of training subjects held out as the validation split
VALIDATION_FRACTION = 0.08
#: context stored around the final box in the crop cache (room for the jitter)
CACHE_CONTEXT = 1.3
#: the crop side in extents of the pseudo labels' bounding box
CROP_MARGIN = 1.5

Split = Literal["train", "val", "test"]


def default_cache_dir() -> Path:
    """Where crop caches go: ``$HAND_LIB_CACHE_DIR``, else ``data/cache`` in the checkout."""
    env = os.environ.get("HAND_LIB_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "cache"


def validation_sequences(root: str | os.PathLike[str],
                         fraction: float = VALIDATION_FRACTION) -> list[int]:
    """The training sequences held out for validation: those of the last ``fraction`` of
    training subjects (``subject_id`` of ``meta.json``; sorted ids), at least one subject
    when there are two or more. Whole subjects, so validation measures generalisation to
    new hands as the test split does."""
    import json

    meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
    subjects: dict[int, list[int]] = {}
    for seq, (flags, ids) in enumerate(zip(meta["is_train"], meta["subject_id"], strict=True)):
        if seq >= HANCO_TEST_FIRST_SEQUENCE or not flags:
            continue
        subject = ids[0] if ids and ids[0] is not None else seq
        subjects.setdefault(int(subject), []).append(seq)
    ordered = sorted(subjects)
    if len(ordered) < 2 or fraction <= 0:
        return []
    held = ordered[len(ordered) - max(1, round(fraction * len(ordered))):]
    return sorted(seq for subject in held for seq in subjects[subject])


@functools.lru_cache(maxsize=4)
def background_bank(seed: int = 0, count: int = 256) -> BackgroundBank:
    """The procedural background bank of training (cached per process)."""
    return BackgroundBank.procedural(count=count, seed=seed)


def hanco_dataset(
    root: str | os.PathLike[str],
    split: Split,
    image_size: int,
    *,
    mode: Literal["single", "multi"] = "single",
    augment: bool | None = None,
    image_dir: Literal["rgb", "rgb_merged"] | None = None,
    seed: int = 0,
    rotation_deg: float | None = None,
    pseudo_dir: str | None = None,
    backgrounds: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> CropCache:
    """A HanCo-layout split as the suite trains and evaluates on it.

    Args:
        root: dataset root (HanCo's layout, with pseudo labels in ``rgb_2D_keypoints``).
        split: "train" (training sequences minus validation), "val" (the held-out training
            subjects, :func:`validation_sequences`) or "test" (HanCo's: sequences >= 1200).
        image_size: crop side, pixels.
        mode: one view per sample, or all views of a frame.
        augment: jitter the crops and composite backgrounds (default: only for "train").
        image_dir: default ``rgb`` for training and ``rgb_merged`` for "val" and "test".
        seed: seeds the augmentation per (epoch, sample).
        rotation_deg: override the in-plane rotation jitter, degrees.
        pseudo_dir: pseudo-label folder (None: ``rgb_2D_keypoints``; e.g.
            ``rgb_2D_keypoints_agreement`` for labels reweighted by multi-view agreement).
        backgrounds: composite augmented views on random backgrounds (default: when
            augmenting and the data has ``mask_hand/``).
        cache_dir: parent of the crop caches (default :func:`default_cache_dir`).
        progress: show a bar while a cache is built.
    """
    root = Path(root)
    if not (root / "meta.json").is_file():
        raise FileNotFoundError(
            f"{root} is not a HanCo-layout dataset (no meta.json): run notebook 00_data or "
            "`python -m hand_lib.data.synthetic` first, or pass the real HanCo root"
        )
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    augment = (split == "train") if augment is None else augment
    if image_dir is None:
        image_dir = "rgb" if split == "train" else "rgb_merged"
    held_out = set(validation_sequences(root))
    if split == "test":
        split_fn = None
        hanco_split = "test"
    else:
        keep = held_out if split == "val" else None

        def split_fn(seq: int) -> str | None:
            if seq >= HANCO_TEST_FIRST_SEQUENCE:
                return None
            in_val = seq in held_out
            return "train" if (in_val if keep is not None else not in_val) else None

        hanco_split = "train"
    has_masks = (root / MASK_DIR).is_dir()
    source = HanCo(root, split=hanco_split, mode="multi", image_dir=image_dir,
                   split_fn=split_fn, missing_views="mask", pseudo_dir=pseudo_dir,
                   load_masks=has_masks)
    spec = CacheSpec(out_size=image_size, context=CACHE_CONTEXT, margin=CROP_MARGIN, upright=True)
    jitter = dict(TRAIN_JITTER) if augment else {}
    if augment and rotation_deg is not None:
        jitter["rotation_deg"] = rotation_deg
    crop = HandCrop(CropConfig(out_size=image_size, **jitter), box_from="crop_box",
                    augment=augment, seed=seed)
    use_backgrounds = (augment and has_masks) if backgrounds is None else backgrounds
    transform = crop
    if use_backgrounds:
        if not has_masks:
            raise FileNotFoundError(f"{root}: background augmentation needs hand masks in "
                                    f"{MASK_DIR}/")
        transform = Compose(crop, BackgroundComposite(background_bank(), BACKGROUND_PROBABILITY,
                                                      seed=seed))
    elif has_masks:
        transform = Compose(crop, _DropMask())
    return CropCache(source, spec, cache_dir or default_cache_dir(), mode=mode,
                     transform=transform, progress=progress, name=split,
                     provenance=data_provenance(root, source.pseudo_dir))


def validation_subset(dataset, max_samples: int | None):  # noqa: ANN001, ANN201
    """At most ``max_samples`` samples spread evenly over ``dataset`` (all when None or
    when it is smaller): a fixed, cheap validation set for learning curves. None when the
    dataset is empty (a split without validation subjects)."""
    from torch.utils.data import Subset

    n = len(dataset)
    if n == 0:
        return None
    if max_samples is None or n <= max_samples:
        return dataset
    step = n / max_samples
    return Subset(dataset, [int(i * step) for i in range(max_samples)])


class _DropMask:
    """Remove ``mask`` from a sample (evaluation does not use it)."""

    def __call__(self, sample: dict) -> dict:
        sample.pop("mask", None)
        return sample

    def batch(self, samples: list[dict]) -> list[dict]:
        return [self(s) for s in samples]


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
