"""Reweight or filter pseudo labels by multi-view agreement (an extension over HaMuCo).

HaMuCo weights each 2D label by the detector's raw confidence. Here every joint of a frame is
triangulated from all labelled views (confidence-weighted DLT + RANSAC over views,
:func:`hand_lib.geometry.triangulate_ransac`), and a view's label is trusted as much as it
agrees with that consensus:

- ``mode="reweight"``: ``cfd * exp(-(e / sigma_px)^2)``, ``e`` the view's reprojection error
  to the triangulated point, pixels;
- ``mode="filter"``: ``cfd`` for the RANSAC inlier views, 0 for the others.

A joint that cannot be triangulated (fewer than ``min_inliers`` views agree) gets confidence
0 in every view: no two views vouch for it. Keypoints are kept as they are.

:func:`reweight_by_agreement` works on arrays; :func:`label_hanco_agreement` reads a
HanCo-layout label folder and writes a new one (default ``rgb_2D_keypoints_agreement``) in
the same ``[kps, cfd]`` format, atomically and resumably. Train on it with
``HanCo(root, pseudo_dir="rgb_2D_keypoints_agreement")`` (or ``hanco_dataset(...,
pseudo_dir=...)``); the default ``pseudo_dir=None`` keeps HaMuCo's raw confidences, so both
can be compared.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hand_lib.data.errors import HanCoFormatError
from hand_lib.data.files import FileReader
from hand_lib.data.hanco import HANCO_NUM_CAMERAS, PSEUDO_LABEL_DIRS, scan_hanco
from hand_lib.geometry.triangulation import triangulate_ransac
from hand_lib.pseudo.labels import (
    hanco_label_path,
    prepare_label_folder,
    read_hanco_label,
    read_label_stamp,
    write_hanco_label,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AGREEMENT_LABEL_DIR",
    "AgreementLabels",
    "AgreementSummary",
    "label_hanco_agreement",
    "reweight_by_agreement",
]

AGREEMENT_LABEL_DIR = "rgb_2D_keypoints_agreement"
AgreementMode = Literal["reweight", "filter"]


@dataclass(frozen=True)
class AgreementLabels:
    """Output of :func:`reweight_by_agreement` (N frames, V views, J joints).

    Attributes:
        confidence: (N, V, J) new confidences, in [0, raw confidence].
        reprojection_error_px: (N, V, J) distance from each label to the projection of the
            triangulated point, pixels; NaN where the joint was not triangulated.
        inliers: (N, V, J) bool, the RANSAC inlier views of each joint.
        triangulated: (N, J) bool, the joint was triangulated.
    """

    confidence: np.ndarray
    reprojection_error_px: np.ndarray
    inliers: np.ndarray
    triangulated: np.ndarray


def reweight_by_agreement(
    keypoints_px: np.ndarray,
    confidence: np.ndarray,
    K: np.ndarray,
    M: np.ndarray,
    *,
    mode: AgreementMode = "reweight",
    sigma_px: float = 10.0,
    threshold_px: float = 10.0,
    min_inliers: int = 2,
) -> AgreementLabels:
    """New label confidences from how well each view agrees with the others.

    Args:
        keypoints_px: (N, V, J, 2) labels, pixels.
        confidence: (N, V, J) raw confidences; 0 = not detected (stays 0).
        K: (N, V, 3, 3) intrinsics, pixels.
        M: (N, V, 4, 4) world-to-camera extrinsics, metres.
        mode: ``"reweight"`` (Gaussian in the reprojection error) or ``"filter"`` (RANSAC
            outlier views to 0).
        sigma_px: width of the reweighting Gaussian, pixels (``"reweight"`` only).
        threshold_px: RANSAC inlier threshold on the reprojection error, pixels.
        min_inliers: fewest agreeing views for a joint to be triangulated.

    Returns:
        :class:`AgreementLabels`.
    """
    if mode not in ("reweight", "filter"):
        raise ValueError(f"mode must be 'reweight' or 'filter', got {mode!r}")
    if not (sigma_px > 0 and np.isfinite(sigma_px)):
        raise ValueError(f"sigma_px must be positive and finite, got {sigma_px}")
    kps = np.asarray(keypoints_px, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if kps.ndim != 4 or kps.shape[-1] != 2 or conf.shape != kps.shape[:3]:
        raise ValueError(f"keypoints_px must be (N, V, J, 2) and confidence (N, V, J), got "
                         f"{kps.shape} and {conf.shape}")
    if (conf < 0).any():
        raise ValueError("confidence must be non-negative")
    tri = triangulate_ransac(
        torch.from_numpy(kps), torch.from_numpy(np.asarray(K, dtype=np.float64)),
        torch.from_numpy(np.asarray(M, dtype=np.float64)), torch.from_numpy(conf),
        threshold_px=threshold_px, min_inliers=min_inliers)
    valid = tri.valid.numpy()
    inliers = tri.inliers.numpy() & valid[:, None]
    err = np.where(valid[:, None], tri.reprojection_error_px.numpy(), np.nan)
    if mode == "filter":
        new = np.where(inliers, conf, 0.0)
    else:
        # inf (behind a camera) and NaN (not triangulated) both end at weight 0.
        weight = np.exp(-np.square(np.nan_to_num(err, nan=np.inf) / sigma_px))
        new = conf * weight
    return AgreementLabels(new, err, inliers, valid)


@dataclass(frozen=True)
class AgreementSummary:
    """What :func:`label_hanco_agreement` did.

    Attributes:
        frames: frames with at least one raw label.
        written: label files written.
        skipped_existing: label files that existed and were kept.
        mean_weight: mean of new / raw confidence over the detected joints written.
        zeroed_rate: share of those joints whose confidence became 0 (below 1e-4).
    """

    frames: int
    written: int
    skipped_existing: int
    mean_weight: float
    zeroed_rate: float


def label_hanco_agreement(
    root: str | os.PathLike[str],
    *,
    mode: AgreementMode = "reweight",
    sigma_px: float = 10.0,
    threshold_px: float = 10.0,
    min_inliers: int = 2,
    label_dir: str | None = None,
    out_dir: str = AGREEMENT_LABEL_DIR,
    image_dir: str = "rgb",
    sequences: Sequence[int] | None = None,
    overwrite: bool = False,
    batch_frames: int = 256,
    progress: bool = True,
    num_cameras: int = HANCO_NUM_CAMERAS,
) -> AgreementSummary:
    """Write agreement-weighted copies of a HanCo-layout folder's pseudo labels.

    Every view with a label file under ``label_dir`` gets a file under ``out_dir`` with the
    same keypoints and the confidences of :func:`reweight_by_agreement`. Views without a raw
    label get none. A frame whose output files all exist is skipped (resumable), and the
    result of a frame depends on that frame only.

    Args:
        root: HanCo-layout root (``calib/``, the image folder, the label folder).
        mode, sigma_px, threshold_px, min_inliers: see :func:`reweight_by_agreement`.
        label_dir: raw labels (default ``rgb_2D_keypoints`` or ``rgb_2d_keypoints``).
        out_dir: folder to write under ``root``.
        image_dir: the image folder that lists the frames.
        sequences: only these sequences (None = all).
        overwrite: rewrite existing output files.
        batch_frames: frames triangulated together.
        progress: show a tqdm bar over batches.
        num_cameras: cameras per frame.

    Returns:
        :class:`AgreementSummary`.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    if label_dir is None:
        found = [d for d in PSEUDO_LABEL_DIRS if (root / d).is_dir()]
        if not found:
            raise HanCoFormatError(f"{root}: no {PSEUDO_LABEL_DIRS[0]}/ or "
                                   f"{PSEUDO_LABEL_DIRS[1]}/ folder to reweight", path=root)
        label_dir = found[0]
    if out_dir == label_dir or out_dir in PSEUDO_LABEL_DIRS:
        raise ValueError(f"out_dir must be a new folder, not the raw labels' {out_dir!r}")
    index = scan_hanco(root, image_dir, label_dir, num_cameras)
    keep = index.pseudo.any(1)
    if sequences is not None:
        keep &= np.isin(index.seqs, list(sequences))
    rows = np.flatnonzero(keep)
    # The raw labels' own stamp stands for them: relabelled raw labels make these stale.
    inputs = {"labeller": "agreement", "mode": mode, "sigma_px": float(sigma_px),
              "threshold_px": float(threshold_px), "min_inliers": int(min_inliers),
              "label_dir": label_dir, "image_dir": image_dir,
              "source": read_label_stamp(root / label_dir)}  # fmt: skip
    overwrite = prepare_label_folder(root / out_dir, inputs, overwrite)
    files = FileReader(root, HanCoFormatError)
    todo, skipped = [], 0
    for r in rows:
        seq, frame = int(index.seqs[r]), int(index.frames[r])
        cams = np.flatnonzero(index.pseudo[r])
        exists = sum(hanco_label_path(root, seq, int(k), frame, out_dir).exists() for k in cams)
        if overwrite or exists < len(cams):
            todo.append(r)
        else:
            skipped += len(cams)
    written, weights, zeroed = 0, [], []
    batches = [todo[i:i + batch_frames] for i in range(0, len(todo), batch_frames)]
    for batch in tqdm(batches, desc="agreement labels", disable=not progress):
        n = len(batch)
        kps = np.zeros((n, num_cameras, 21, 2))
        conf = np.zeros((n, num_cameras, 21))
        K = np.zeros((n, num_cameras, 3, 3))
        M = np.zeros((n, num_cameras, 4, 4))
        for i, r in enumerate(batch):
            seq, frame = int(index.seqs[r]), int(index.frames[r])
            calib_path = root / "calib" / f"{seq:04d}" / f"{frame:08d}.json"
            calib = files.json(calib_path)
            K[i] = files.key_array(calib, "K", calib_path, (num_cameras, 3, 3))
            M[i] = files.key_array(calib, "M", calib_path, (num_cameras, 4, 4))
            for k in np.flatnonzero(index.pseudo[r]):
                kps[i, k], conf[i, k] = read_hanco_label(
                    hanco_label_path(root, seq, int(k), frame, label_dir))
        new = reweight_by_agreement(kps, conf, K, M, mode=mode, sigma_px=sigma_px,
                                    threshold_px=threshold_px, min_inliers=min_inliers)
        for i, r in enumerate(batch):
            seq, frame = int(index.seqs[r]), int(index.frames[r])
            for k in np.flatnonzero(index.pseudo[r]):
                path = hanco_label_path(root, seq, int(k), frame, out_dir)
                if write_hanco_label(path, kps[i, k], new.confidence[i, k], overwrite=overwrite):
                    written += 1
                    det = conf[i, k] > 0
                    weights.append(new.confidence[i, k][det] / conf[i, k][det])
                    zeroed.append(new.confidence[i, k][det] < 1e-4)
                else:
                    skipped += 1
    w = np.concatenate(weights) if weights else np.zeros(0)
    z = np.concatenate(zeroed) if zeroed else np.zeros(0)
    summary = AgreementSummary(
        frames=len(rows), written=written, skipped_existing=skipped,
        mean_weight=float(w.mean()) if w.size else float("nan"),
        zeroed_rate=float(z.mean()) if z.size else float("nan"))
    logger.info("agreement labels (%s) under %s: %s", mode, root / out_dir, summary)
    return summary
