"""The no-learning row of the results table: the pseudo labels, triangulated across views.

Each test frame's joints are triangulated from its labelled views (confidence-weighted DLT
with RANSAC over views, :func:`hand_lib.geometry.triangulate_ransac`), then expressed in every
camera's frame so that they are scored exactly like a single-view prediction of that view.
A joint that could not be triangulated (too few inlier views) falls back to the frame's
other joints' centroid, so that it counts as a (large) error instead of being dropped.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from hand_lib.data.hanco import HANCO_TEST_FIRST_SEQUENCE, scan_hanco
from hand_lib.geometry import triangulate_ransac
from hand_lib.pseudo.hanco_labels import load_hanco_multiview


def triangulated_pseudo_labels(
    root: str | os.PathLike[str],
    *,
    split: str = "test",
    max_frames: int | None = None,
    threshold_px: float = 10.0,
) -> dict[str, np.ndarray]:
    """Triangulated pseudo labels of a split, per (frame, view), in each camera's frame.

    Args:
        root: HanCo-layout dataset with ``rgb_2D_keypoints``.
        split: "test" (sequences >= 1200) or "train".
        max_frames: at most this many frames.
        threshold_px: RANSAC inlier threshold.

    Returns:
        ``pred_joints`` and ``joints_cam`` (N*V, 21, 3) metres; ``valid`` (N*V, 21) bool
        (triangulated); ``seq``, ``frame``, ``cam`` (N*V,) ids.
    """
    index = scan_hanco(root, "rgb", None)
    seqs = np.unique(index.seqs)
    chosen = seqs[seqs >= HANCO_TEST_FIRST_SEQUENCE] if split == "test" else \
        seqs[seqs < HANCO_TEST_FIRST_SEQUENCE]
    if len(chosen) == 0:
        raise ValueError(f"{root}: no {split} sequence")
    data = load_hanco_multiview(root, sequences=chosen.tolist(), max_frames=max_frames)
    t = torch.as_tensor
    tri = triangulate_ransac(t(data.keypoints_px), t(data.K), t(data.M), t(data.confidence),
                             threshold_px=threshold_px)  # fmt: skip
    world = tri.points_world.numpy().copy()
    valid = tri.valid.numpy()
    for n in range(len(world)):  # untriangulated joints: the frame's centroid
        fallback = world[n, valid[n]].mean(0) if valid[n].any() else np.zeros(3)
        world[n, ~valid[n]] = fallback
    R, tr = data.M[..., :3, :3], data.M[..., :3, 3]  # (N, V, 3, 3), (N, V, 3)
    pred = np.einsum("nvij,nkj->nvki", R, world) + tr[:, :, None]
    gt = np.einsum("nvij,nkj->nvki", R, data.gt_world) + tr[:, :, None]
    N, V = pred.shape[:2]
    return {
        "pred_joints": pred.reshape(N * V, 21, 3),
        "joints_cam": gt.reshape(N * V, 21, 3),
        "valid": np.repeat(valid[:, None], V, axis=1).reshape(N * V, 21),
        "seq": np.repeat(data.seqs, V),
        "frame": np.repeat(data.frames, V),
        "cam": np.tile(np.arange(V), N),
    }
