"""Pseudo labels for a HanCo-layout folder: simulate them from ground truth, load them back.

:func:`label_hanco_simulated` writes ``rgb_2D_keypoints/<seq>/cam<k>/<frame>.json`` for every
image of a HanCo-layout root (real HanCo or the synthetic generator's output), from the true
projections of ``xyz/`` with ``calib/`` corrupted by :func:`simulate_detections`. Per-joint
occlusion comes from an optional ``visibility/<seq>/cam<k>/<frame>.json`` (written by the
synthetic generator; ``{"visible": 21 bool, ...}`` or a bare list of 21 bools) or from any
callable. Each frame draws from its own generator seeded with ``(seed, seq, frame)``, so a
resumed run (existing files are skipped) writes exactly what one uninterrupted run would.

:func:`load_hanco_multiview` gathers labels, cameras and ground truth of complete multi-view
frames into arrays for :func:`hand_lib.pseudo.report.pseudo_label_report`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hand_lib.data.errors import HanCoFormatError
from hand_lib.data.files import FileReader
from hand_lib.data.hanco import HANCO_NUM_CAMERAS, PSEUDO_LABEL_DIRS, scan_hanco
from hand_lib.pseudo.labels import (
    HANCO_LABEL_DIR,
    LabelFormatError,
    hanco_label_path,
    prepare_label_folder,
    read_hanco_label,
    write_hanco_label,
)
from hand_lib.pseudo.simulated import (
    SimulatedDetectorConfig,
    hand_box_size,
    simulate_detections,
)

logger = logging.getLogger(__name__)

__all__ = [
    "VISIBILITY_DIR",
    "HanCoMultiView",
    "LabellingSummary",
    "dataset_fingerprint",
    "hanco_projections",
    "label_hanco_simulated",
    "load_hanco_multiview",
    "read_visibility",
]

VISIBILITY_DIR = "visibility"

VisibilityFn = Callable[[int, int, int], "np.ndarray | None"]


@dataclass(frozen=True)
class LabellingSummary:
    """What a labelling run did.

    Attributes:
        images: images found (views with an image file).
        written: label files written.
        skipped_existing: label files that existed and were kept.
        hands_found: written labels with at least one detected joint.
        with_visibility: written labels whose occlusion was known.
    """

    images: int
    written: int
    skipped_existing: int
    hands_found: int
    with_visibility: int


def read_visibility(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a per-view visibility file: ``{"visible": 21 bool, ...}`` or a list of 21 bools.

    Returns:
        (21,) bool, True = visible (in the image and not occluded).

    Raises:
        LabelFormatError: naming the file and what was expected.
    """
    import json

    path = Path(path)
    expected = '{"visible": 21 booleans, ...} or a list of 21 booleans'
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError as e:
        raise LabelFormatError(path, f"file not found (expected {expected})") from e
    except (OSError, ValueError) as e:
        raise LabelFormatError(path, f"cannot read JSON ({e}); expected {expected}") from e
    value = raw.get("visible") if isinstance(raw, dict) else raw
    if (not isinstance(value, list) or len(value) != 21
            or not all(v in (True, False, 0, 1) for v in value)):
        raise LabelFormatError(path, f"expected {expected}")
    return np.asarray(value, dtype=bool)


def _visibility_from_folder(root: Path, folder: str) -> VisibilityFn:
    def lookup(seq: int, frame: int, cam: int) -> np.ndarray | None:
        path = root / folder / f"{seq:04d}" / f"cam{cam}" / f"{frame:08d}.json"
        return read_visibility(path) if path.is_file() else None

    return lookup


def hanco_projections(
    root: str | os.PathLike[str], seq: int, frame: int, num_cameras: int = HANCO_NUM_CAMERAS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True 2D keypoints of every camera of one frame, from ``xyz/`` and ``calib/``.

    Returns:
        uv (V, 21, 2) pixels (pixel centres at integers), xyz (21, 3) world metres,
        K (V, 3, 3) pixels, M (V, 4, 4) world-to-camera; V = ``num_cameras``.

    Raises:
        HanCoFormatError: a missing or malformed file, named.
    """
    files = FileReader(root, HanCoFormatError)
    root = Path(root)
    calib_path = root / "calib" / f"{seq:04d}" / f"{frame:08d}.json"
    calib = files.json(calib_path)
    K = files.key_array(calib, "K", calib_path, (num_cameras, 3, 3))
    M = files.key_array(calib, "M", calib_path, (num_cameras, 4, 4))
    xyz_path = root / "xyz" / f"{seq:04d}" / f"{frame:08d}.json"
    xyz = files.array(files.json(xyz_path), xyz_path, None, (21, 3))
    cam = np.einsum("vij,nj->vni", M[:, :3, :3], xyz) + M[:, None, :3, 3]
    if (cam[..., 2] <= 0).any():
        files.fail(xyz_path, "a keypoint lies at or behind a camera (z <= 0); check calib M")
    proj = np.einsum("vij,vnj->vni", K, cam)
    uv = proj[..., :2] / proj[..., 2:3]
    return uv, xyz, K, M


def dataset_fingerprint(root: str | os.PathLike[str]) -> Any:
    """What identifies a HanCo-layout folder's content for its derived labels: the synthetic
    generator's record (version and configuration) when there is one, else None (a real
    dataset, whose ground truth does not change)."""
    path = Path(root) / "synthetic.json"
    if not path.is_file():
        return None
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def label_hanco_simulated(
    root: str | os.PathLike[str],
    *,
    config: SimulatedDetectorConfig | None = None,
    seed: int = 0,
    image_dir: str = "rgb",
    label_dir: str = HANCO_LABEL_DIR,
    sequences: Sequence[int] | None = None,
    visibility: Literal["auto", "none"] | VisibilityFn = "auto",
    overwrite: bool = False,
    progress: bool = True,
    num_cameras: int = HANCO_NUM_CAMERAS,
) -> LabellingSummary:
    """Write simulated-detector labels for every image of a HanCo-layout folder.

    Args:
        root: HanCo-layout root (needs ``calib/``, ``xyz/`` and the image folder).
        config: the simulated detector's parameters (None = defaults).
        seed: base seed; frame (seq, frame) uses ``numpy.random.default_rng([seed, seq,
            frame])``, so results do not depend on the order or on resuming.
        image_dir: which images define the views to label (``rgb`` or ``rgb_merged``).
        label_dir: output folder under ``root``.
        sequences: only these sequences (None = all).
        visibility: ``"auto"`` reads ``visibility/`` where a file exists (all joints visible
            otherwise), ``"none"`` treats every joint as visible, or a callable
            ``(seq, frame, cam) -> (21,) bool | None``.
        overwrite: rewrite existing label files (default: keep them, so runs resume).
        progress: show a tqdm bar over frames.
        num_cameras: cameras per frame.

    Returns:
        :class:`LabellingSummary`.
    """
    from tqdm.auto import tqdm

    config = SimulatedDetectorConfig() if config is None else config
    root = Path(root)
    if label_dir in PSEUDO_LABEL_DIRS:
        other = [d for d in PSEUDO_LABEL_DIRS if d != label_dir and (root / d).is_dir()]
        if other and not (root / label_dir).is_dir():
            raise HanCoFormatError(
                f"{root}: {other[0]}/ exists; write to it (label_dir={other[0]!r}) instead of "
                f"creating {label_dir}/ next to it", path=root)
    if visibility == "auto":
        vis_fn: VisibilityFn | None = _visibility_from_folder(root, VISIBILITY_DIR)
    elif visibility == "none":
        vis_fn = None
    elif callable(visibility):
        vis_fn = visibility
    else:
        raise ValueError(f"visibility must be 'auto', 'none' or a callable, got {visibility!r}")
    index = scan_hanco(root, image_dir, None, num_cameras)
    keep = np.ones(len(index.seqs), dtype=bool) if sequences is None else np.isin(
        index.seqs, list(sequences))
    rows = np.flatnonzero(keep)
    # What the labels depend on: a changed detector, seed or dataset (a synthetic folder
    # regenerated or upgraded by a newer generator) makes the folder's labels stale.
    inputs = {"labeller": "simulated", "config": asdict(config), "seed": int(seed),
              "image_dir": image_dir, "num_cameras": int(num_cameras),
              "visibility": visibility if isinstance(visibility, str) else "callable",
              "data": dataset_fingerprint(root)}  # fmt: skip
    overwrite = prepare_label_folder(root / label_dir, inputs, overwrite)
    written = skipped = found = with_vis = 0
    for r in tqdm(rows, desc="simulated labels", disable=not progress):
        seq, frame = int(index.seqs[r]), int(index.frames[r])
        cams = np.flatnonzero(index.views[r])
        paths = {int(k): hanco_label_path(root, seq, int(k), frame, label_dir) for k in cams}
        todo = [k for k, p in paths.items() if overwrite or not p.exists()]
        skipped += len(cams) - len(todo)
        if not todo:
            continue
        uv, _, _, _ = hanco_projections(root, seq, frame, num_cameras)
        visible = np.ones((num_cameras, 21), dtype=bool)
        known = np.zeros(num_cameras, dtype=bool)
        if vis_fn is not None:
            for k in todo:
                v = vis_fn(seq, frame, k)
                if v is not None:
                    v = np.asarray(v, dtype=bool)
                    if v.shape != (21,):
                        raise ValueError(f"visibility for seq {seq} frame {frame} cam {k} "
                                         f"has shape {v.shape}, expected (21,)")
                    visible[k], known[k] = v, True
        box = np.maximum(hand_box_size(uv), 1.0)
        # Every camera is simulated (also absent ones) so the draws do not depend on `todo`.
        det = simulate_detections(uv, visible, box, np.random.default_rng([seed, seq, frame]),
                                  config)
        for k in todo:
            write_hanco_label(paths[k], det.keypoints_px[k], det.confidence[k], overwrite=True)
            written += 1
            found += int(det.hand_found[k])
            with_vis += int(known[k])
    summary = LabellingSummary(int(index.views[rows].sum()), written, skipped, found, with_vis)
    logger.info("simulated labels under %s: %s", root / label_dir, summary)
    return summary


@dataclass(frozen=True)
class HanCoMultiView:
    """Pseudo labels, cameras and ground truth of N multi-view frames (V cameras).

    Attributes:
        keypoints_px: (N, V, 21, 2) pseudo labels, pixels.
        confidence: (N, V, 21) label confidences; 0 where missing (no file: all 0).
        has_label: (N, V) bool, label file present.
        gt_2d: (N, V, 21, 2) true projections, pixels.
        gt_world: (N, 21, 3) true keypoints, world frame, metres.
        K: (N, V, 3, 3) intrinsics, pixels.
        M: (N, V, 4, 4) world-to-camera extrinsics, metres.
        seqs, frames: (N,) int64 ids.
    """

    keypoints_px: np.ndarray
    confidence: np.ndarray
    has_label: np.ndarray
    gt_2d: np.ndarray
    gt_world: np.ndarray
    K: np.ndarray
    M: np.ndarray
    seqs: np.ndarray
    frames: np.ndarray


def load_hanco_multiview(
    root: str | os.PathLike[str],
    *,
    label_dir: str | None = None,
    image_dir: str = "rgb",
    sequences: Sequence[int] | None = None,
    max_frames: int | None = None,
    num_cameras: int = HANCO_NUM_CAMERAS,
) -> HanCoMultiView:
    """Gather the pseudo labels and ground truth of the frames of a HanCo-layout folder.

    Args:
        root: HanCo-layout root.
        label_dir: label folder (default: ``rgb_2D_keypoints`` or ``rgb_2d_keypoints``,
            whichever exists).
        image_dir: the image folder that lists the frames.
        sequences: only these sequences (None = all).
        max_frames: at most this many frames, in (sequence, frame) order.
        num_cameras: cameras per frame.

    Returns:
        :class:`HanCoMultiView`; views without a label file have confidence 0.
    """
    root = Path(root)
    if label_dir is None:
        found = [d for d in PSEUDO_LABEL_DIRS if (root / d).is_dir()]
        if not found:
            raise HanCoFormatError(f"{root}: no {PSEUDO_LABEL_DIRS[0]}/ or "
                                   f"{PSEUDO_LABEL_DIRS[1]}/ folder", path=root)
        label_dir = found[0]
    index = scan_hanco(root, image_dir, None, num_cameras)
    keep = np.ones(len(index.seqs), dtype=bool) if sequences is None else np.isin(
        index.seqs, list(sequences))
    rows = np.flatnonzero(keep)[:max_frames]
    out: dict[str, list[Any]] = {k: [] for k in (
        "kps", "conf", "has", "uv", "xyz", "K", "M")}
    for r in rows:
        seq, frame = int(index.seqs[r]), int(index.frames[r])
        uv, xyz, K, M = hanco_projections(root, seq, frame, num_cameras)
        kps = np.zeros((num_cameras, 21, 2))
        conf = np.zeros((num_cameras, 21))
        has = np.zeros(num_cameras, dtype=bool)
        for k in range(num_cameras):
            path = hanco_label_path(root, seq, k, frame, label_dir)
            if path.is_file():
                kps[k], conf[k] = read_hanco_label(path)
                has[k] = True
        for key, value in zip(out, (kps, conf, has, uv, xyz, K, M), strict=True):
            out[key].append(value)
    V = num_cameras

    def stack(key: str, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
        return np.stack(out[key]) if out[key] else np.zeros((0, *shape), dtype=dtype)

    return HanCoMultiView(
        keypoints_px=stack("kps", (V, 21, 2)), confidence=stack("conf", (V, 21)),
        has_label=stack("has", (V,), bool), gt_2d=stack("uv", (V, 21, 2)),
        gt_world=stack("xyz", (21, 3)), K=stack("K", (V, 3, 3)), M=stack("M", (V, 4, 4)),
        seqs=index.seqs[rows].astype(np.int64), frames=index.frames[rows].astype(np.int64))
