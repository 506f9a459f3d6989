"""The no-learning rows of the results table: the mean hand, and the pseudo labels
triangulated across views.

**Mean hand** (:func:`mean_hand_rows`): MANO's mean pose and shape placed at each test
sample's wrist, with the identity rotation (MANO's own axes) and at the best constant
rotation fitted to the *training* split's hands in their crop frames
(:func:`hand_lib.experiments.evaluate.best_constant_rotation`). Both score the same
PA-MPJPE (alignment removes rotation); the second is the MPJPE to beat.

**Triangulated pseudo labels**:

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
from hand_lib.mano import ManoLayer
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


#: row names of :func:`mean_hand_rows`
MEAN_HAND_ROWS = ("mean hand (identity rotation)", "mean hand (best constant rotation)")


def mean_hand_rows(root: str | os.PathLike[str], image_size: int, mano_path: str = "",
                   split: str = "test") -> tuple[dict[str, dict[str, float]],
                                                 dict[str, np.ndarray]]:
    """The mean-hand rows of the results table, with bootstrap intervals over sequences.

    Args:
        root: HanCo-layout dataset (the suite's crops of ``split`` and of the training
            split are read from their caches; no image is decoded when they exist).
        image_size: crop side the methods use (the crop frames depend on it only through
            the cache; the rows do not).
        mano_path: the hand model ("" = the open hand).
        split: "test" or "val".

    Returns:
        ``(rows, arrays)``: rows by :data:`MEAN_HAND_ROWS` name (the metrics of
        :func:`~hand_lib.experiments.evaluate.metrics_row`), and ``arrays`` with
        ``joints_cam`` (N, 21, 3) ground truth, ``seq`` (N,), ``keys`` (N, 3) sequence,
        frame and camera of each sample, ``pred_identity`` and ``pred_best`` (N, 21, 3) and
        ``rotation`` (3, 3) the best constant rotation.
    """
    from hand_lib.experiments.data import hanco_dataset
    from hand_lib.experiments.evaluate import (
        best_constant_rotation,
        mean_hand_keypoints,
        mean_hand_predictions,
        metrics_row,
    )

    train = hanco_dataset(root, "train", image_size, augment=False)
    test = hanco_dataset(root, split, image_size)  # type: ignore[arg-type]
    mean = mean_hand_keypoints(ManoLayer(mano_path or None, dtype=torch.float64))
    rotation = best_constant_rotation(mean, train.labels("joints_cam").double().numpy())
    gt = test.labels("joints_cam").double().numpy()
    seq = test.labels("seq").numpy()
    keys = np.asarray(test.items)  # (N, 3) sequence, frame, camera of each crop
    pred_identity = mean_hand_predictions(gt, mean)
    pred_best = mean_hand_predictions(gt, mean, rotation)
    rows = {MEAN_HAND_ROWS[0]: metrics_row(pred_identity, gt, groups=seq),
            MEAN_HAND_ROWS[1]: metrics_row(pred_best, gt, groups=seq)}
    arrays = {"joints_cam": gt, "seq": seq, "keys": keys, "pred_identity": pred_identity,
              "pred_best": pred_best, "rotation": rotation}
    return rows, arrays
