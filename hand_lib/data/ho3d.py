"""HO3D (v2 and v3): single-view images of a right hand holding an object (640x480).

Layout read::

    train.txt, evaluation.txt          one "<seq>/<frame id>" per line
    <split>/<seq>/rgb/<id>.png         v2 images (v3 stores the same images as .jpg; the
                                       HO3D authors' README: "all the rgb images are now in
                                       'jpg' format instead of 'png'")
    <split>/<seq>/meta/<id>.pkl        pickled dict (Python 2): camMat (3x3), handJoints3D,
                                       handPose (48), handBeta (10), handTrans (3);
                                       evaluation: handBoundingBox (4) and handJoints3D = the
                                       root joint (3) only

Conventions applied here:

- HO3D's 3D annotations use the OpenGL camera (y up, z backwards); they are converted to
  OpenCV (y down, z forward, as ``project_points`` expects) by ``X_cv = diag(1,-1,-1) X_gl``.
  ``camMat`` is an ordinary pixel intrinsics matrix and is used as is.
- ``handJoints3D`` is in HO3D's order (MANO skeleton then tips); it is reordered to FreiHAND
  order with :data:`hand_lib.data.joints.HO3D_TO_FREIHAND`.
- The MANO parameters are left as stored, in the OpenGL frame (``mano_pose_gl``,
  ``mano_trans_gl``): flipping a MANO fit means rotating it about its root joint, which
  needs the MANO layer. Flip its output instead: ``verts_cv = verts_gl * (1, -1, -1)``.
- Frames whose annotations are ``None`` (HO3D has a few) load with ``has_joints`` False.

Sample keys (float32 unless noted):

- ``image`` (3, H, W) RGB in [0, 1]; ``K`` (3, 3) pixels.
- ``joints_cam`` (21, 3) metres, OpenCV frame, FreiHAND order; ``joints_2d`` (21, 2)
  pixels; ``has_joints`` bool (False in the evaluation split: zeros).
- ``root_cam`` (3,) metres, OpenCV frame: the root (wrist) joint, given in both splits.
- ``hand_box`` (4,) ``x_min, y_min, x_max, y_max`` pixels: ``handBoundingBox`` in the
  evaluation split, the bounds of ``joints_2d`` in training; ``has_hand_box`` bool.
- ``mano_pose_gl`` (48,) axis-angle radians, ``mano_shape`` (10,), ``mano_trans_gl`` (3,)
  metres; ``has_mano`` bool.
- ``seq`` str, ``frame`` str, ``index`` int64.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from hand_lib.data.errors import HO3DFormatError
from hand_lib.data.files import FileReader
from hand_lib.data.joints import HO3D_TO_FREIHAND
from hand_lib.geometry.camera import project_points

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
"""``X_cv = OPENGL_TO_OPENCV @ X_gl`` (its own inverse)."""

HO3D_IMAGE_EXT = {"v2": "png", "v3": "jpg"}


class HO3D(Dataset):
    """HO3D training or evaluation frames.

    Args:
        root: dataset root (holds ``train.txt``, ``evaluation.txt``, ``train/``,
            ``evaluation/``).
        split: ``"train"`` or ``"evaluation"``.
        version: ``"v2"`` (.png images) or ``"v3"`` (.jpg images).
        transform: callable applied to the sample dict.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: Literal["train", "evaluation"] = "train",
        version: Literal["v2", "v3"] = "v2",
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if split not in ("train", "evaluation"):
            raise ValueError(f"split must be 'train' or 'evaluation', got {split!r}")
        if version not in HO3D_IMAGE_EXT:
            raise ValueError(f"version must be 'v2' or 'v3', got {version!r}")
        self.root = Path(root)
        self.split, self.version = split, version
        self.transform = transform
        self._files = FileReader(self.root, HO3DFormatError)
        self._check_layout()
        self.items = self._read_list(self.root / f"{split}.txt")

    def _check_layout(self) -> None:
        if not self.root.is_dir():
            raise HO3DFormatError(f"{self.root}: HO3D root not found (not a folder)",
                                  path=self.root)
        required = [f"{self.split}.txt", f"{self.split}/"]
        missing = [r for r in required if not (self.root / r.rstrip("/")).exists()]
        if missing:
            raise HO3DFormatError(
                f"{self.root} does not look like an HO3D root for split '{self.split}': "
                f"missing {', '.join(missing)}. Expected {self.split}.txt and "
                f"{self.split}/<seq>/rgb/<id>.{HO3D_IMAGE_EXT[self.version]}, "
                f"{self.split}/<seq>/meta/<id>.pkl", path=self.root)

    def _read_list(self, path: Path) -> list[tuple[str, str]]:
        items = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.split("/")
                if len(parts) != 2 or not all(parts):
                    self._files.fail(path, f"line {lineno}: expected '<seq>/<frame id>', got "
                                     f"{line!r}")
                items.append((parts[0], parts[1]))
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        seq, fid = self.items[i]
        base = self.root / self.split / seq
        image = self._files.image(base / "rgb" / f"{fid}.{HO3D_IMAGE_EXT[self.version]}")
        meta_path = base / "meta" / f"{fid}.pkl"
        meta = self._files.pickle(meta_path)
        f = self._files
        K = torch.from_numpy(f.key_array(meta, "camMat", meta_path, (3, 3)))
        flip = torch.from_numpy(OPENGL_TO_OPENCV)
        raw_joints = f.key(meta, "handJoints3D", meta_path)

        sample: dict[str, Any] = {"image": image, "K": K.float()}
        joints = torch.zeros(21, 3, dtype=torch.float64)
        joints_2d = torch.zeros(21, 2, dtype=torch.float64)
        root = torch.zeros(3, dtype=torch.float64)
        box = torch.zeros(4, dtype=torch.float64)
        has_joints = has_box = False
        if self.split == "train":
            if raw_joints is not None:
                gl = f.array(raw_joints, meta_path, "handJoints3D", (21, 3))
                joints = torch.from_numpy(gl)[list(HO3D_TO_FREIHAND)] @ flip.T
                joints_2d = project_points(joints, K)
                root = joints[0]
                box = torch.cat([joints_2d.amin(0), joints_2d.amax(0)])
                has_joints = has_box = True
        else:
            if raw_joints is not None:
                gl = f.array(raw_joints, meta_path, "handJoints3D", (3,), flatten=True)
                root = flip @ torch.from_numpy(gl)
            raw_box = f.key(meta, "handBoundingBox", meta_path)
            if raw_box is not None:
                box = torch.from_numpy(f.array(raw_box, meta_path, "handBoundingBox", (4,),
                                               flatten=True))
                has_box = True
        sample.update({
            "joints_cam": joints.float(),
            "joints_2d": joints_2d.float(),
            "has_joints": torch.tensor(has_joints),
            "root_cam": root.float(),
            "hand_box": box.float(),
            "has_hand_box": torch.tensor(has_box),
        })
        sample.update(self._mano(meta, meta_path))
        sample.update({"seq": seq, "frame": fid, "index": torch.tensor(i, dtype=torch.int64)})
        return self.transform(sample) if self.transform is not None else sample

    def _mano(self, meta: Any, path: Path) -> dict[str, torch.Tensor]:
        f = self._files
        values = {k: meta.get(k) if isinstance(meta, dict) else None
                  for k in ("handPose", "handBeta", "handTrans")}
        if any(v is None for v in values.values()):
            return {"mano_pose_gl": torch.zeros(48), "mano_shape": torch.zeros(10),
                    "mano_trans_gl": torch.zeros(3), "has_mano": torch.tensor(False)}
        pose = f.array(values["handPose"], path, "handPose", (48,), flatten=True)
        beta = f.array(values["handBeta"], path, "handBeta", (10,), flatten=True)
        trans = f.array(values["handTrans"], path, "handTrans", (3,), flatten=True)
        return {"mano_pose_gl": torch.from_numpy(pose).float(),
                "mano_shape": torch.from_numpy(beta).float(),
                "mano_trans_gl": torch.from_numpy(trans).float(),
                "has_mano": torch.tensor(True)}
