"""HanCo: the multi-view hand dataset (8 calibrated cameras, 224x224 images).

Layout read (``<seq>`` = 4 digits, ``<frame>`` = 8 digits, ``<k>`` = camera 0..7)::

    meta.json                              per-sequence lists of per-frame values:
                                           is_train, subject_id, is_valid, object_id, has_fit
    rgb/<seq>/cam<k>/<frame>.jpg           green-screen images (or rgb_merged/: composited)
    calib/<seq>/<frame>.json               {"K": 8 x 3x3 pixels, "M": 8 x 4x4 world-to-camera}
    xyz/<seq>/<frame>.json                 21 x 3 joints, world space, metres
    shape/<seq>/<frame>.json               optional MANO fit {"poses", "shapes", "global_t"}
    shape/<seq>/cam<k>/<frame>.json        optional per-camera fit: 61 values
    rgb_2D_keypoints/<seq>/cam<k>/<frame>.json   optional pseudo labels [kps 21x2, cfd 21]
                                           (the spelling rgb_2d_keypoints is read too)

Index: the image folder is scanned once (sorted, so the order is deterministic) and the
result cached in memory for the process (and on disk with ``cache_dir``), keyed by the
folders' modification times so that a changed folder is scanned again.

Missing views: the original multi-view loader assumes complete groups of 8 images and a
missing one shifts every later group. Here each frame knows which cameras have an image;
``missing_views="skip"`` drops incomplete frames (counted in ``num_skipped_frames``, logged),
``"mask"`` keeps them with ``view_mask`` False and zero image and labels for the absent views.

Sample keys (multi-view; V = ``num_cameras``; single-view drops the V axis, has ``cam``
instead of ``cams`` and no ``view_mask``). Float tensors are float32:

- ``image`` (V, 3, H, W) RGB in [0, 1].
- ``K`` (V, 3, 3) intrinsics, pixels; ``M`` (V, 4, 4) world-to-camera, metres.
- ``joints_world`` (21, 3) metres; ``joints_cam`` (V, 21, 3) metres (OpenCV camera frame);
  ``joints_2d`` (V, 21, 2) pixels, the projection of ``joints_cam`` with ``K``.
  Joint order: :data:`hand_lib.data.joints.FREIHAND_JOINT_NAMES`.
- ``pseudo_2d`` (V, 21, 2) pixels, ``pseudo_conf`` (V, 21), ``pseudo_valid`` (V,) bool
  (False: no label file, values zero).
- with ``load_masks``: ``mask`` (V, 1, H, W) in [0, 1], the hand mask of
  ``mask_hand/<seq>/cam<k>/<frame>.jpg`` (HanCo's, and the synthetic generator's).
- ``view_mask`` (V,) bool; ``cams`` (V,) int64 camera ids.
- ``mano_pose`` (48,) axis-angle radians (global rotation first, MANO joint order,
  ``flat_hand_mean=False``), ``mano_shape`` (10,), ``mano_trans`` (3,) metres, all in world
  space; ``has_mano`` bool. ``mano_cam`` (V, 61) per-camera fit (48 pose + 10 shape +
  3 camera values, as stored), ``has_mano_cam`` (V,) bool. Zeros where absent.
- ``seq``, ``frame``, ``index``, ``subject_id``, ``object_id`` (-1 if none) int64;
  ``is_train``, ``is_valid``, ``has_fit`` bool (from meta.json).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hand_lib.data.errors import HanCoFormatError
from hand_lib.data.files import FileReader
from hand_lib.geometry.camera import project_points, world_to_camera

logger = logging.getLogger(__name__)

HANCO_NUM_CAMERAS = 8
HANCO_TEST_FIRST_SEQUENCE = 1200
PSEUDO_LABEL_DIRS = ("rgb_2D_keypoints", "rgb_2d_keypoints")
#: HanCo's hand masks (JPEG, 255 = hand)
MASK_DIR = "mask_hand"
META_KEYS = ("is_train", "subject_id", "is_valid", "object_id", "has_fit")

_SEQ_RE = re.compile(r"\d{4}")
_CAM_RE = re.compile(r"cam(\d+)")
_JPG_RE = re.compile(r"(\d{8})\.jpg")
_JSON_RE = re.compile(r"(\d{8})\.json")

SplitFn = Callable[[int], "str | None"] | Mapping[str, Sequence[int]]


def standard_split(seq: int) -> str:
    """HaMuCo's split: sequences below 1200 train, the rest test."""
    return "train" if seq < HANCO_TEST_FIRST_SEQUENCE else "test"


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class HanCoIndex:
    """What is on disk under one image folder: every frame with at least one image.

    Attributes:
        seqs: (N,) int64 sequence ids, sorted with ``frames``.
        frames: (N,) int64 frame ids.
        views: (N, V) bool, image of camera k present.
        pseudo: (N, V) bool, pseudo-label file of camera k present.
    """

    seqs: np.ndarray
    frames: np.ndarray
    views: np.ndarray
    pseudo: np.ndarray


_INDEX_CACHE: dict[tuple[Any, ...], tuple[str, HanCoIndex]] = {}


def _subdirs(path: Path, pattern: re.Pattern[str]) -> list[tuple[str, int]]:
    """(name, mtime_ns) of the subfolders whose name matches, sorted by name."""
    if not path.is_dir():
        return []
    out = []
    with os.scandir(path) as it:
        for e in it:
            if pattern.fullmatch(e.name) and e.is_dir():
                out.append((e.name, e.stat().st_mtime_ns))
    return sorted(out)


def _frame_ids(path: Path, pattern: re.Pattern[str]) -> list[int]:
    with os.scandir(path) as it:
        return [int(m.group(1)) for e in it if (m := pattern.fullmatch(e.name))]


def _fingerprint(root: Path, image_dir: str, pseudo_dir: str | None) -> str:
    """Modification times of the sequence and camera folders (cheap: no file listing)."""
    h = hashlib.sha1()
    for top in (image_dir, pseudo_dir):
        if top is None:
            continue
        top_path = root / top
        for seq, mtime in _subdirs(top_path, _SEQ_RE):
            h.update(f"{top}/{seq}:{mtime};".encode())
            for cam, cmtime in _subdirs(top_path / seq, _CAM_RE):
                h.update(f"{cam}:{cmtime};".encode())
    return h.hexdigest()


def index_fingerprint(root: str | os.PathLike[str], image_dir: str = "rgb",
                      pseudo_dir: str | None = None) -> str:
    """A hash of the modification times of the image (and pseudo-label) folders' sequence
    and camera folders: it changes when files are added to or removed from them."""
    return _fingerprint(Path(root), image_dir, pseudo_dir)


def _scan(root: Path, image_dir: str, pseudo_dir: str | None, num_cameras: int) -> HanCoIndex:
    seqs: list[int] = []
    frames: list[int] = []
    views: list[np.ndarray] = []
    pseudo: list[np.ndarray] = []
    for seq_name, _ in _subdirs(root / image_dir, _SEQ_RE):
        per_cam: dict[int, set[int]] = {}
        for cam_name, _ in _subdirs(root / image_dir / seq_name, _CAM_RE):
            k = int(cam_name[3:])
            if k >= num_cameras:
                raise HanCoFormatError(
                    f"{image_dir}/{seq_name}/{cam_name}: camera {k} but num_cameras is "
                    f"{num_cameras}", path=root / image_dir / seq_name / cam_name)
            per_cam[k] = set(_frame_ids(root / image_dir / seq_name / cam_name, _JPG_RE))
        all_frames = sorted(set().union(*per_cam.values())) if per_cam else []
        if not all_frames:
            continue
        pos = {f: i for i, f in enumerate(all_frames)}
        v = np.zeros((len(all_frames), num_cameras), dtype=bool)
        p = np.zeros_like(v)
        for k, fs in per_cam.items():
            v[[pos[f] for f in fs], k] = True
            cam_dir = None if pseudo_dir is None else root / pseudo_dir / seq_name / f"cam{k}"
            if cam_dir is not None and cam_dir.is_dir():
                have = [pos[f] for f in _frame_ids(cam_dir, _JSON_RE) if f in pos]
                p[have, k] = True
        seqs.extend([int(seq_name)] * len(all_frames))
        frames.extend(all_frames)
        views.append(v)
        pseudo.append(p)
    empty = np.zeros((0, num_cameras), dtype=bool)
    return HanCoIndex(
        seqs=np.asarray(seqs, dtype=np.int64),
        frames=np.asarray(frames, dtype=np.int64),
        views=np.concatenate(views) if views else empty,
        pseudo=np.concatenate(pseudo) if pseudo else empty,
    )


def scan_hanco(root: str | os.PathLike[str], image_dir: str = "rgb",
               pseudo_dir: str | None = None, num_cameras: int = HANCO_NUM_CAMERAS,
               cache_dir: str | os.PathLike[str] | None = None) -> HanCoIndex:
    """Scan (or fetch from cache) the frames and views on disk under ``root/image_dir``.

    Args:
        root: HanCo root.
        image_dir: ``"rgb"`` or ``"rgb_merged"``.
        pseudo_dir: pseudo-label folder name to scan as well, or None.
        num_cameras: number of cameras (a ``cam<k>`` folder with k >= it is an error).
        cache_dir: optional folder for an on-disk copy of the index.

    Returns:
        :class:`HanCoIndex`, sorted by (sequence, frame).
    """
    root = Path(root).resolve()
    key = (str(root), image_dir, pseudo_dir, num_cameras)
    fp = _fingerprint(root, image_dir, pseudo_dir)
    cache_file = None
    if cache_dir is not None:
        name = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:16]
        cache_file = Path(cache_dir) / f"hanco_index_{name}.npz"
    hit = _INDEX_CACHE.get(key)
    index = hit[1] if hit is not None and hit[0] == fp else None
    if index is None and cache_file is not None:
        index = _load_cached_index(cache_file, fp)
        if index is not None:
            _INDEX_CACHE[key] = (fp, index)
            return index
    if index is None:
        index = _scan(root, image_dir, pseudo_dir, num_cameras)
        _INDEX_CACHE[key] = (fp, index)
    if cache_file is not None and _load_cached_index(cache_file, fp) is None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, fingerprint=np.asarray(fp), seqs=index.seqs, frames=index.frames,
                 views=index.views, pseudo=index.pseudo)
        os.replace(tmp, cache_file)
    return index


def _load_cached_index(cache_file: Path, fingerprint: str) -> HanCoIndex | None:
    """The index stored in ``cache_file`` if it exists and matches ``fingerprint``."""
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            return HanCoIndex(z["seqs"], z["frames"], z["views"], z["pseudo"])
    except (OSError, KeyError, ValueError):
        logger.warning("ignoring unreadable HanCo index cache %s", cache_file)
        return None


# --------------------------------------------------------------------------- dataset


class HanCo(Dataset):
    """HanCo frames, one view per sample (``mode="single"``) or all views (``"multi"``).

    Args:
        root: dataset root (holds ``meta.json``, ``calib/``, ``xyz/``, the image folder).
        split: ``"train"``, ``"test"`` or ``"all"``.
        mode: ``"single"``: a sample is one (sequence, camera, frame) with an image;
            ``"multi"``: a sample is one (sequence, frame) with every view.
        image_dir: ``"rgb"`` (green screen) or ``"rgb_merged"`` (composited backgrounds).
        split_fn: which split each sequence belongs to. A callable ``seq -> "train" |
            "test" | None`` (None: in no split) or a mapping ``{"train": [seqs], "test":
            [seqs]}``. Default :func:`standard_split` (sequence < 1200 is train).
        pseudo_labels: load the 2D pseudo labels (the folder must exist).
        pseudo_dir: the pseudo-label folder under ``root`` (same ``[kps, cfd]`` files), e.g.
            ``rgb_2D_keypoints_agreement`` written by
            :func:`hand_lib.pseudo.agreement.label_hanco_agreement`; None finds
            ``rgb_2D_keypoints`` (or ``rgb_2d_keypoints``).
        transform: callable applied to the sample dict (e.g. :class:`~hand_lib.data.HandCrop`).
        missing_views: multi-view handling of frames where some camera has no image:
            ``"skip"`` drops them, ``"mask"`` keeps them with ``view_mask`` False. In single
            mode every existing image is a sample and this only affects the counts' wording.
        load_mano: load the MANO fits from ``shape/`` when present.
        num_cameras: cameras per frame (8 for HanCo; calibration files must match).
        cache_dir: optional folder to keep the scanned index between processes.
        load_masks: also load the hand masks (``mask_hand/``, e.g. for background
            augmentation); the folder must exist.

    Attributes:
        items: (N, 3) int64 ``(seq, frame, cam)`` per sample (``cam`` = -1 in multi mode).
        num_incomplete_frames: frames of the split with some but not all views.
        num_missing_views: views absent in those frames.
        num_empty_frames: frames listed in meta.json with no image in any view (dropped).
        num_skipped_frames: frames dropped (empty ones, plus incomplete ones in skip mode).
        num_missing_pseudo_labels: views of the samples with an image but no pseudo label.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: Literal["train", "test", "all"] = "train",
        mode: Literal["single", "multi"] = "single",
        image_dir: Literal["rgb", "rgb_merged"] = "rgb",
        split_fn: SplitFn | None = None,
        pseudo_labels: bool = True,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        missing_views: Literal["skip", "mask"] = "skip",
        load_mano: bool = True,
        num_cameras: int = HANCO_NUM_CAMERAS,
        cache_dir: str | os.PathLike[str] | None = None,
        pseudo_dir: str | None = None,
        load_masks: bool = False,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if mode not in ("single", "multi"):
            raise ValueError(f"mode must be 'single' or 'multi', got {mode!r}")
        if image_dir not in ("rgb", "rgb_merged"):
            raise ValueError(f"image_dir must be 'rgb' or 'rgb_merged', got {image_dir!r}")
        if missing_views not in ("skip", "mask"):
            raise ValueError(f"missing_views must be 'skip' or 'mask', got {missing_views!r}")
        self.root = Path(root)
        self.split, self.mode, self.image_dir = split, mode, image_dir
        self.missing_views = missing_views
        self.transform = transform
        self.num_cameras = num_cameras
        self._files = FileReader(self.root, HanCoFormatError)
        self._check_layout()
        self.load_masks = load_masks
        if load_masks and not (self.root / MASK_DIR).is_dir():
            raise HanCoFormatError(f"{self.root}: load_masks=True but {MASK_DIR}/ does not exist "
                                   f"(expected {MASK_DIR}/<seq>/cam<k>/<frame>.jpg)",
                                   path=self.root)
        self.pseudo_dir = self._find_pseudo_dir(pseudo_dir) if pseudo_labels else None
        self.load_mano = load_mano and (self.root / "shape").is_dir()
        self.meta = self._load_meta()

        index = scan_hanco(self.root, image_dir, self.pseudo_dir, num_cameras, cache_dir)
        in_split = self._split_mask(index.seqs, split_fn)
        seqs, frames = index.seqs[in_split], index.frames[in_split]
        views, pseudo = index.views[in_split], index.pseudo[in_split]
        self._check_frames_in_meta(seqs, frames)

        n_views = views.sum(1)
        incomplete = n_views < num_cameras
        self.num_incomplete_frames = int(incomplete.sum())
        self.num_missing_views = int((num_cameras - n_views[incomplete]).sum())
        self.num_empty_frames = self._count_empty_frames(seqs)
        keep = ~incomplete if (mode == "multi" and missing_views == "skip") else np.ones_like(
            incomplete)
        self.num_skipped_frames = self.num_empty_frames + int((~keep).sum())
        self._seqs, self._frames = seqs[keep], frames[keep]
        self._views, self._pseudo = views[keep], pseudo[keep]
        if mode == "multi":
            rows = np.arange(len(self._seqs))
            cams = np.full(len(rows), -1, dtype=np.int64)
        else:
            rows, cams = np.nonzero(self._views)
        self._rows = rows.astype(np.int64)
        self.items = np.stack([self._seqs[rows], self._frames[rows], cams], 1).astype(np.int64)
        if mode == "multi":
            self.num_missing_pseudo_labels = int((self._views & ~self._pseudo).sum())
        else:
            self.num_missing_pseudo_labels = int((~self._pseudo[rows, cams]).sum())
        if self.pseudo_dir is None:
            self.num_missing_pseudo_labels = 0
        self._log_counts()

    # ------------------------------------------------------------------ setup

    def _check_layout(self) -> None:
        if not self.root.is_dir():
            raise HanCoFormatError(f"{self.root}: HanCo root not found (not a folder)",
                                   path=self.root)
        required = [self.image_dir + "/", "calib/", "xyz/", "meta.json"]
        missing = [r for r in required if not (self.root / r.rstrip("/")).exists()]
        if missing:
            hint = ""
            other = "rgb_merged" if self.image_dir == "rgb" else "rgb"
            if self.image_dir + "/" in missing and (self.root / other).is_dir():
                hint = f" (found {other}/: pass image_dir='{other}')"
            raise HanCoFormatError(
                f"{self.root} does not look like a HanCo root: missing {', '.join(missing)}"
                f"{hint}. Expected meta.json, {self.image_dir}/<seq>/cam<k>/<frame>.jpg, "
                "calib/<seq>/<frame>.json, xyz/<seq>/<frame>.json; optional shape/ and "
                "rgb_2D_keypoints/ (or rgb_2d_keypoints/)", path=self.root)

    def _find_pseudo_dir(self, name: str | None = None) -> str:
        if name is not None:
            if not (self.root / name).is_dir():
                raise HanCoFormatError(f"{self.root}: pseudo_dir {name}/ not found",
                                       path=self.root / name)
            return name
        found = [d for d in PSEUDO_LABEL_DIRS if (self.root / d).is_dir()]
        if not found:
            raise HanCoFormatError(
                f"{self.root}: pseudo_labels=True but neither {PSEUDO_LABEL_DIRS[0]}/ nor "
                f"{PSEUDO_LABEL_DIRS[1]}/ exists (pass pseudo_labels=False to go without)",
                path=self.root)
        if len(found) == 2 and not os.path.samefile(self.root / found[0], self.root / found[1]):
            raise HanCoFormatError(
                f"{self.root}: both {found[0]}/ and {found[1]}/ exist; keep one", path=self.root)
        return found[0]

    def _load_meta(self) -> dict[str, list[list[Any]]]:
        path = self.root / "meta.json"
        raw = self._files.json(path)
        meta: dict[str, list[list[Any]]] = {}
        for key in META_KEYS:
            value = self._files.key(raw, key, path)
            if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
                self._files.fail(path, f"key '{key}' must be a list (sequences) of lists "
                                 "(frames)", key)
            meta[key] = value
        n_seq = {len(v) for v in meta.values()}
        if len(n_seq) != 1:
            self._files.fail(path, "keys list different numbers of sequences: " + ", ".join(
                f"{k}: {len(v)}" for k, v in meta.items()))
        return meta

    def _split_mask(self, seqs: np.ndarray, split_fn: SplitFn | None) -> np.ndarray:
        fn: Callable[[int], str | None]
        if split_fn is None:
            fn = standard_split
        elif isinstance(split_fn, Mapping):
            unknown = set(split_fn) - {"train", "test"}
            if unknown:
                raise ValueError(f"split_fn mapping keys must be 'train'/'test', got {unknown}")
            lookup = {int(s): name for name, ss in split_fn.items() for s in ss}
            fn = lookup.get
        elif callable(split_fn):
            fn = split_fn
        else:
            raise TypeError("split_fn must be a callable or a mapping {'train': [...], ...}")
        which: dict[int, str | None] = {}
        for s in np.unique(seqs).tolist():
            name = fn(int(s))
            if name not in ("train", "test", None):
                raise ValueError(f"split_fn({s}) returned {name!r}; expected 'train', 'test' "
                                 "or None")
            which[s] = name
        chosen = {s for s, n in which.items() if n is not None and self.split in ("all", n)}
        return np.isin(seqs, sorted(chosen))

    def _check_frames_in_meta(self, seqs: np.ndarray, frames: np.ndarray) -> None:
        lengths = self.meta["is_train"]
        for s in np.unique(seqs).tolist():
            if s >= len(lengths):
                self._files.fail(self.root / "meta.json",
                                 f"sequence {s:04d} has images but meta.json lists only "
                                 f"{len(lengths)} sequences")
            n = len(lengths[s])
            per_key = {k: len(self.meta[k][s]) for k in META_KEYS}
            if len(set(per_key.values())) != 1:
                self._files.fail(self.root / "meta.json", f"sequence {s:04d}: keys list "
                                 f"different numbers of frames: {per_key}")
            last = int(frames[seqs == s].max())
            if last >= n:
                self._files.fail(self.root / "meta.json",
                                 f"sequence {s:04d} has an image of frame {last} but meta.json "
                                 f"lists {n} frames")

    def _count_empty_frames(self, seqs: np.ndarray) -> int:
        uniq, counts = np.unique(seqs, return_counts=True)
        return int(sum(len(self.meta["is_train"][s]) - c for s, c in zip(uniq.tolist(),
                                                                          counts.tolist(),
                                                                          strict=True)))

    def _log_counts(self) -> None:
        name = f"HanCo({self.split}, {self.mode}, {self.image_dir})"
        if self.num_incomplete_frames:
            action = ("dropped" if self.mode == "multi" and self.missing_views == "skip"
                      else "kept" + (" with view_mask False" if self.mode == "multi" else ""))
            logger.warning("%s: %d frames miss %d of their %d-view images in all; %s",
                           name, self.num_incomplete_frames, self.num_missing_views,
                           self.num_cameras, action)
        if self.num_empty_frames:
            logger.warning("%s: %d frames of meta.json have no image in any view; dropped",
                           name, self.num_empty_frames)
        if self.num_missing_pseudo_labels:
            logger.warning("%s: %d views have an image but no pseudo label (confidence 0)",
                           name, self.num_missing_pseudo_labels)

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (f"HanCo(root={str(self.root)!r}, split={self.split!r}, mode={self.mode!r}, "
                f"image_dir={self.image_dir!r}, samples={len(self)}, "
                f"skipped_frames={self.num_skipped_frames})")

    def __getitem__(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        row = int(self._rows[i])
        if self.mode == "multi":
            sample = self._load(row, list(range(self.num_cameras)))
        else:
            cam = int(self.items[i, 2])
            sample = self._load(row, [cam])
            for key in ("image", "K", "M", "joints_cam", "joints_2d", "pseudo_2d",
                        "pseudo_conf", "pseudo_valid", "mano_cam", "has_mano_cam", "mask"):
                if key not in sample:
                    continue
                sample[key] = sample[key][0]
            sample["cam"] = sample.pop("cams")[0]
            del sample["view_mask"]
        sample["index"] = torch.tensor(i, dtype=torch.int64)
        return self.transform(sample) if self.transform is not None else sample

    def _path(self, top: str, seq: int, frame: int, cam: int | None, ext: str) -> Path:
        cam_part = () if cam is None else (f"cam{cam}",)
        return self.root.joinpath(top, f"{seq:04d}", *cam_part, f"{frame:08d}.{ext}")

    def _load(self, row: int, cams: list[int]) -> dict[str, Tensor]:
        seq, frame = int(self._seqs[row]), int(self._frames[row])
        V = len(cams)
        present = self._views[row, cams]
        files = self._files

        calib_path = self._path("calib", seq, frame, None, "json")
        calib = files.json(calib_path)
        K_all = files.key_array(calib, "K", calib_path, (self.num_cameras, 3, 3))
        M_all = files.key_array(calib, "M", calib_path, (self.num_cameras, 4, 4))
        xyz_path = self._path("xyz", seq, frame, None, "json")
        xyz = files.array(files.json(xyz_path), xyz_path, None, (21, 3))
        K = torch.from_numpy(K_all[cams])
        M = torch.from_numpy(M_all[cams])
        joints_world = torch.from_numpy(xyz)
        joints_cam = world_to_camera(joints_world.expand(V, 21, 3), M)
        joints_2d = project_points(joints_cam, K)

        images: list[Tensor | None] = [None] * V
        size: tuple[tuple[int, int], Path] | None = None
        for j, k in enumerate(cams):
            if not present[j]:
                continue
            path = self._path(self.image_dir, seq, frame, k, "jpg")
            img = files.image(path)
            if size is None:
                size = (tuple(img.shape[-2:]), path)
            elif tuple(img.shape[-2:]) != size[0]:
                files.fail(path, f"image is {img.shape[-2]}x{img.shape[-1]} but "
                           f"{files.rel(size[1])} is {size[0][0]}x{size[0][1]}")
            images[j] = img
        assert size is not None, "the index only holds frames with at least one view"
        H, W = size[0]
        image = torch.stack([im if im is not None else torch.zeros(3, H, W) for im in images])

        pseudo_2d = torch.zeros(V, 21, 2, dtype=torch.float64)
        pseudo_conf = torch.zeros(V, 21, dtype=torch.float64)
        pseudo_valid = torch.zeros(V, dtype=torch.bool)
        if self.pseudo_dir is not None:
            for j, k in enumerate(cams):
                if present[j] and self._pseudo[row, k]:
                    pseudo_2d[j], pseudo_conf[j] = self._read_pseudo(seq, frame, k)
                    pseudo_valid[j] = True

        view_mask = torch.from_numpy(present.copy())
        m = view_mask.double()
        masks = None
        if self.load_masks:
            masks = torch.zeros(V, 1, H, W)
            for j, k in enumerate(cams):
                if present[j]:
                    path = self._path(MASK_DIR, seq, frame, k, "jpg")
                    mask = files.image(path, mode="L")
                    if tuple(mask.shape[-2:]) != (H, W):
                        files.fail(path, f"mask is {mask.shape[-2]}x{mask.shape[-1]} but the "
                                   f"image is {H}x{W}")
                    masks[j] = mask
        sample: dict[str, Tensor] = {
            "image": image,
            "K": K.float(),
            "M": M.float(),
            "joints_world": joints_world.float(),
            "joints_cam": (joints_cam * m[:, None, None]).float(),
            "joints_2d": (joints_2d * m[:, None, None]).float(),
            "pseudo_2d": pseudo_2d.float(),
            "pseudo_conf": pseudo_conf.float(),
            "pseudo_valid": pseudo_valid,
            "view_mask": view_mask,
            "cams": torch.tensor(cams, dtype=torch.int64),
        }
        if masks is not None:
            sample["mask"] = masks
        sample.update(self._load_mano(seq, frame, cams, present))
        sample.update(self._meta_values(seq, frame))
        return sample

    def _read_pseudo(self, seq: int, frame: int, cam: int) -> tuple[Tensor, Tensor]:
        assert self.pseudo_dir is not None
        path = self._path(self.pseudo_dir, seq, frame, cam, "json")
        raw = self._files.json(path)
        if not isinstance(raw, list) or len(raw) != 2:
            self._files.fail(path, "expected [keypoints 21x2, confidences 21]")
        kps = self._files.array(raw[0], path, "[0] (keypoints)", (21, 2))
        cfd = self._files.array(raw[1], path, "[1] (confidences)", (21,), flatten=True)
        return torch.from_numpy(kps), torch.from_numpy(cfd)

    def _load_mano(self, seq: int, frame: int, cams: list[int],
                   present: np.ndarray) -> dict[str, Tensor]:
        V = len(cams)
        pose, shape, trans = np.zeros(48), np.zeros(10), np.zeros(3)
        has = False
        mano_cam = np.zeros((V, 61))
        has_cam = np.zeros(V, dtype=bool)
        if self.load_mano:
            path = self._path("shape", seq, frame, None, "json")
            if path.is_file():
                raw = self._files.json(path)
                pose = self._files.key_array(raw, "poses", path, (48,), flatten=True)
                shape = self._files.key_array(raw, "shapes", path, (10,), flatten=True)
                trans = self._files.key_array(raw, "global_t", path, (3,), flatten=True)
                has = True
            for j, k in enumerate(cams):
                cpath = self._path("shape", seq, frame, k, "json")
                if present[j] and cpath.is_file():
                    mano_cam[j] = self._files.array(self._files.json(cpath), cpath, None, (61,),
                                                    flatten=True)
                    has_cam[j] = True
        return {
            "mano_pose": torch.from_numpy(pose).float(),
            "mano_shape": torch.from_numpy(shape).float(),
            "mano_trans": torch.from_numpy(trans).float(),
            "has_mano": torch.tensor(has),
            "mano_cam": torch.from_numpy(mano_cam).float(),
            "has_mano_cam": torch.from_numpy(has_cam),
        }

    def _meta_values(self, seq: int, frame: int) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {
            "seq": torch.tensor(seq, dtype=torch.int64),
            "frame": torch.tensor(frame, dtype=torch.int64),
        }
        path = self.root / "meta.json"
        for key in META_KEYS:
            value = self.meta[key][seq][frame]
            if key in ("subject_id", "object_id"):
                if value is not None and not isinstance(value, (int, float)):
                    self._files.fail(path, f"key '{key}' sequence {seq} frame {frame}: "
                                     f"{value!r} is not an integer id", key)
                out[key] = torch.tensor(-1 if value is None else int(value), dtype=torch.int64)
            else:
                if value not in (True, False, 0, 1):  # a string "False" would be truthy
                    self._files.fail(path, f"key '{key}' sequence {seq} frame {frame}: "
                                     f"{value!r} is not a boolean", key)
                out[key] = torch.tensor(bool(value))
        return out
