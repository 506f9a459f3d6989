"""Hand crops decoded once: a HanCo split cut out around the hand at training size.

Decoding a 224 x 224 JPEG and warping it costs several milliseconds per view, as much as a
training step of a small network spends per image; with loader workers, on a machine with
few cores, the workers compete with the step for the cores (and their OpenMP threads spin).
:class:`CropCache` does that work once per split: every view is cut out around the hand
(the box of :class:`hand_lib.data.HandCrop`, built from the pseudo labels, optionally turned
upright) with some ``context`` around it, at ``ceil(out_size * context)`` pixels, and stored
as uint8 in one memory-mapped array beside its labels. Training then crops and augments the
small stored image (``HandCrop(box_from="crop_box")``): the final crop is the same box as a
direct crop of the original, jittered, and its ``K``, ``R_inplane`` and ``crop_affine``
still refer to the original camera and image (the two crops' maps are composed).

The cache is keyed by everything that changes its content: the split's files (the folder
fingerprint of :func:`hand_lib.data.hanco.index_fingerprint`), the image and pseudo-label
folders, the caller's ``provenance`` record (the suite passes the synthetic generator's
configuration and the labels' provenance stamp) and the :class:`CacheSpec`. A cache is built into a
temporary folder and renamed into place when complete, so an interrupted build leaves
nothing that could be mistaken for a finished one; a stale one is simply not found again.

On disk (``<cache_dir>/<name>/``): ``images.npy`` (F, V, 4, C, C) uint8, RGB plus the hand
mask (255 everywhere when the split has no masks), ``labels.pt`` (the sample tensors of each
frame, leading axis F) and ``record.json`` (what it was built from).

Samples: ``mode="multi"`` yields one frame (all V views, ``view_mask`` marks the present
ones), ``mode="single"`` one present view, with the keys and shapes of
:class:`hand_lib.data.HanCo` in that mode plus ``crop_box`` (V, 3) or (3,): the box to crop
(centre x, centre y, side; pixels of the stored image), and ``mask`` where the split has
masks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from hand_lib.data.hanco import HanCo, index_fingerprint
from hand_lib.data.transforms import CropConfig, HandCrop

__all__ = ["VIEW_KEYS", "CacheSpec", "CropCache"]

logger = logging.getLogger(__name__)

#: keys of a multi-view HanCo sample with a leading view axis (dropped in single mode)
VIEW_KEYS = ("image", "K", "M", "joints_cam", "joints_2d", "pseudo_2d", "pseudo_conf",
             "pseudo_valid", "mano_cam", "has_mano_cam", "mask", "crop_affine", "R_inplane",
             "crop_box")
#: bumped when the same inputs would give a different cache
CACHE_FORMAT = 1


@dataclass(frozen=True)
class CacheSpec:
    """What a :class:`CropCache` stores.

    Attributes:
        out_size: side of the final training crop, pixels.
        context: the stored image covers ``context`` times the final box (room for the
            scale, shift and rotation jitter); it is ``ceil(out_size * context)`` pixels.
        margin: the final box is ``margin`` times the pseudo labels' extent (HandCrop's).
        min_confidence: pseudo labels below this confidence do not shape the box.
        upright: turn each crop so the hand points up (:func:`hand_lib.data.upright_angle`).
    """

    out_size: int
    context: float = 1.25
    margin: float = 1.5
    min_confidence: float = 0.1
    upright: bool = False

    def __post_init__(self) -> None:
        if self.out_size < 8:
            raise ValueError(f"out_size must be >= 8, got {self.out_size}")
        if not self.context >= 1.0:
            raise ValueError(f"context must be >= 1, got {self.context}")
        if self.margin <= 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")

    @property
    def stored_size(self) -> int:
        """Side of the stored images, pixels."""
        return int(math.ceil(self.out_size * self.context - 1e-9))

    def crop_box(self) -> Tensor:
        """(3,) the final box in stored pixels: centre x, centre y, side."""
        C = self.stored_size
        return torch.tensor([(C - 1) / 2.0, (C - 1) / 2.0, C / self.context],
                            dtype=torch.float64)


def _source_key(source: HanCo, spec: CacheSpec, provenance: Any) -> dict[str, Any]:
    items = hashlib.sha256(np.ascontiguousarray(source.items).tobytes()).hexdigest()
    return {
        "format": CACHE_FORMAT,
        "root": str(source.root.resolve()),
        "image_dir": source.image_dir,
        "pseudo_dir": source.pseudo_dir,
        "files": index_fingerprint(source.root, source.image_dir, source.pseudo_dir),
        "items": items,
        "masks": source.load_masks,
        "spec": asdict(spec),
        "provenance": provenance,
    }


class CropCache(Dataset):
    """A HanCo split's hand crops, stored once at training size (see the module docstring).

    Args:
        source: the split to cache, a :class:`HanCo` in ``mode="multi"`` without a
            transform (``missing_views="mask"`` keeps frames with absent views). Load it
            with ``load_masks=True`` to store the hand masks (background augmentation).
        spec: the crop geometry.
        cache_dir: parent folder of the caches (created).
        mode: ``"single"``: one present view per sample; ``"multi"``: one frame.
        transform: applied to each sample, e.g. ``HandCrop(config, box_from="crop_box")``.
        workers: processes decoding the source while the cache is built (0: this one).
        progress: show a progress bar while building.
        provenance: JSON-ready record of what the files are (e.g. the synthetic generator's
            configuration and the pseudo labels' stamp, which folder times do not reveal);
            part of the cache key.
        name: the split's name in the cache folder's name (default: ``source.split``).

    Attributes:
        path: the cache folder. items: (N, 3) ``(seq, frame, cam)`` per sample (``cam``
        -1 in multi mode). has_masks: whether samples carry ``mask``. root, image_dir,
        pseudo_dir: the source's dataset root and folders (what the crops were cut from).
    """

    def __init__(self, source: HanCo, spec: CacheSpec, cache_dir: str | os.PathLike[str], *,
                 mode: Literal["single", "multi"] = "single",
                 transform: Callable[[dict[str, Any]], Any] | None = None, workers: int = 0,
                 progress: bool = False, provenance: Any = None, name: str = "") -> None:
        if source.mode != "multi" or source.transform is not None:
            raise ValueError("CropCache needs the split as a HanCo in mode='multi' without a "
                             "transform")
        if source.pseudo_dir is None:
            raise ValueError(f"{source.root}: CropCache cuts around the pseudo labels; the "
                             "split has none (pseudo_labels=False)")
        if mode not in ("single", "multi"):
            raise ValueError(f"mode must be 'single' or 'multi', got {mode!r}")
        self.spec = spec
        self.mode = mode
        self.transform = transform
        self.root, self.image_dir = source.root, source.image_dir
        self.pseudo_dir = source.pseudo_dir
        key = _source_key(source, spec, json.loads(json.dumps(provenance)))
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        name = f"{name or source.split}-{source.image_dir}-{spec.out_size}px-{digest}"
        self.path = Path(cache_dir) / name
        if not (self.path / "record.json").is_file():
            _build(source, spec, self.path, key, workers, progress)
        self._images = np.load(self.path / "images.npy", mmap_mode="r")
        self._labels: dict[str, Tensor] = torch.load(self.path / "labels.pt", weights_only=True)
        record = json.loads((self.path / "record.json").read_text(encoding="utf-8"))
        self.has_masks = bool(record["masks"])
        view_mask = self._labels["view_mask"]
        if mode == "multi":
            self._rows = torch.arange(len(view_mask))
            self._views = torch.full((len(view_mask),), -1, dtype=torch.int64)
        else:
            self._rows, self._views = torch.nonzero(view_mask, as_tuple=True)
        cams = self._labels["cams"]
        cam = torch.where(self._views >= 0, cams[self._rows, self._views.clamp_min(0)],
                          torch.full_like(self._views, -1))
        self.items = torch.stack([self._labels["seq"][self._rows],
                                  self._labels["frame"][self._rows], cam], 1).numpy()
        self._crop_box = spec.crop_box()

    def labels(self, key: str) -> Tensor:
        """The stored (un-augmented) value of ``key`` for every sample, in sample order:
        (N, ...) without the view axis in single mode; e.g. ``labels("joints_cam")`` gives
        the ground truth in each crop's camera frame without reading any image."""
        if key not in self._labels:
            raise KeyError(f"{key!r} is not stored; stored keys: {sorted(self._labels)}")
        values = self._labels[key][self._rows]
        if self.mode == "single" and key in VIEW_KEYS:
            values = values[torch.arange(len(self._rows)), self._views]
        return values

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch to the transform (seeded augmentation changes per epoch)."""
        if callable(getattr(self.transform, "set_epoch", None)):
            self.transform.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (f"CropCache({self.path.name}, mode={self.mode!r}, {len(self)} samples, "
                f"{self.spec.stored_size} px stored)")

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """Several samples at once (``DataLoader`` calls this for a batch): the transform's
        ``batch`` method, when it has one, crops and augments them in one call."""
        samples = [self._raw(i) for i in indices]
        if self.transform is None:
            return samples
        many = getattr(self.transform, "batch", None)
        return many(samples) if callable(many) else [self.transform(s) for s in samples]

    def __getitem__(self, i: int) -> Any:
        sample = self._raw(i)
        return self.transform(sample) if self.transform is not None else sample

    def _raw(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        row, view = int(self._rows[i]), int(self._views[i])
        pixels = torch.from_numpy(np.array(self._images[row]))  # (V, 4, C, C) uint8
        sample = {k: v[row] for k, v in self._labels.items()}
        sample["image"] = pixels[:, :3].float().div_(255.0)
        if self.has_masks:
            sample["mask"] = pixels[:, 3:].float().div_(255.0)
        sample["crop_box"] = self._crop_box.expand(pixels.shape[0], 3).clone()
        if self.mode == "single":
            for key in VIEW_KEYS:
                if key in sample:
                    sample[key] = sample[key][view]
            sample["cam"] = sample.pop("cams")[view]
            del sample["view_mask"]
        sample["index"] = torch.tensor(i, dtype=torch.int64)
        return sample


def _build(source: HanCo, spec: CacheSpec, path: Path, key: dict[str, Any], workers: int,
           progress: bool) -> None:
    from tqdm.auto import tqdm

    C = spec.stored_size
    crop = HandCrop(CropConfig(out_size=C, margin=spec.margin * spec.context,
                               min_confidence=spec.min_confidence, upright=spec.upright),
                    box_from="pseudo_2d", augment=False)
    has_masks = source.load_masks
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        F, V = len(source), source.num_cameras
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                           shape=(F, V, 4, C, C))
        labels: dict[str, list[Tensor]] = {}
        source.transform = crop
        loader = DataLoader(source, batch_size=None, shuffle=False, num_workers=workers)
        bar = tqdm(total=F, unit="frame", disable=not progress, desc=f"cache {path.name}")
        for row, sample in enumerate(loader):
            pixels = torch.empty(V, 4, C, C)
            pixels[:, :3] = sample.pop("image")
            pixels[:, 3:] = sample.pop("mask") if "mask" in sample else 1.0
            images[row] = pixels.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
            sample.pop("index", None)
            for k, v in sample.items():
                labels.setdefault(k, []).append(v)
            bar.update(1)
        bar.close()
        images.flush()
        del images
        torch.save({k: torch.stack(v) for k, v in labels.items()}, tmp / "labels.pt")
        record = {**key, "frames": F, "views": V, "stored_size": C, "masks": has_masks}
        (tmp / "record.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        if path.exists():  # a concurrent build finished first: keep its copy
            shutil.rmtree(tmp)
            return
        os.replace(tmp, path)
        logger.info("built crop cache %s (%d frames, %d px)", path, F, C)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        source.transform = None
