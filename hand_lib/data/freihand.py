"""FreiHAND: single-view hand images with MANO fits (224x224).

Layout read::

    training_K.json       N x 3x3 intrinsics, pixels          (N = 32,560)
    training_xyz.json     N x 21x3 joints, camera space, metres
    training_scale.json   N reference bone lengths, metres
    training_mano.json    N x 61 (or N x 1x61): 48 pose + 10 shape + 3 translation
    training_verts.json   optional N x 778x3 (read only with load_verts=True)
    training/rgb/%08d.jpg 4 x N images: the green-screen originals then 3 recoloured copies
    evaluation_K.json, evaluation_scale.json          (N = 3,960)
    evaluation_xyz.json, evaluation_verts.json, evaluation_mano.json   optional
    evaluation/rgb/%08d.jpg

Training image ``i`` of version ``v`` is ``training/rgb/{i + offset(v) * N:08d}.jpg`` with the
offsets gs 0, hom 1, sample 2, auto 3 (FreiHAND's own order). The annotations of the four
versions are the same.

Sample keys (float32 unless noted):

- ``image`` (3, H, W) RGB in [0, 1]; ``K`` (3, 3) pixels.
- ``joints_cam`` (21, 3) metres, OpenCV camera frame, FreiHAND joint order;
  ``joints_2d`` (21, 2) pixels (projection with ``K``); ``has_joints`` bool (False, values
  zero, for an evaluation split without ``evaluation_xyz.json``).
- ``scale`` () metres; ``mano`` (61,) as stored, camera space; ``has_mano`` bool.
- ``verts_cam`` (778, 3) metres and ``has_verts`` bool, only with ``load_verts=True``.
- ``index``, ``image_id`` (file number), ``version`` (0..3) int64.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from hand_lib.data.errors import FreiHANDFormatError
from hand_lib.data.files import FileReader
from hand_lib.geometry.camera import project_points

FREIHAND_VERSIONS = ("gs", "hom", "sample", "auto")
FREIHAND_TRAINING_SIZE = 32560
FREIHAND_EVALUATION_SIZE = 3960

Version = Literal["gs", "hom", "sample", "auto"]


class FreiHAND(Dataset):
    """FreiHAND training or evaluation samples.

    Args:
        root: dataset root (holds the ``*_K.json`` files and ``training/``, ``evaluation/``).
        split: ``"training"`` or ``"evaluation"``.
        version: colour version(s) of the training images: one of ``"gs"``, ``"hom"``,
            ``"sample"``, ``"auto"`` or a sequence of them (concatenated in that order).
            The evaluation split has one version, ``"gs"``.
        transform: callable applied to the sample dict.
        load_verts: also read ``<split>_verts.json`` (large for training).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: Literal["training", "evaluation"] = "training",
        version: Version | Sequence[Version] = "gs",
        transform: Callable[[dict[str, Any]], Any] | None = None,
        load_verts: bool = False,
    ) -> None:
        if split not in ("training", "evaluation"):
            raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
        versions = (version,) if isinstance(version, str) else tuple(version)
        bad = [v for v in versions if v not in FREIHAND_VERSIONS]
        if bad or not versions:
            raise ValueError(f"version must be one or more of {FREIHAND_VERSIONS}, got {version!r}")
        if split == "evaluation" and versions != ("gs",):
            raise ValueError("the evaluation split has a single image version; use 'gs'")
        self.root = Path(root)
        self.split = split
        self.versions = versions
        self.transform = transform
        self._files = FileReader(self.root, FreiHANDFormatError)
        self._check_layout()

        p = self._json_path
        self.K = self._read_array(p("K"), (None, 3, 3))
        n = len(self.K)
        self.scale = self._read_array(p("scale"), (n,), flatten_entries=1)
        self.xyz = self._read_optional(p("xyz"), (n, 21, 3), required=split == "training")
        self.mano = self._read_optional(p("mano"), (n, 61), required=split == "training",
                                        flatten_entries=61)
        self.verts = (self._read_optional(p("verts"), (n, 778, 3), required=False)
                      if load_verts else None)
        self.load_verts = load_verts
        self.num_annotations = n

    def _json_path(self, what: str) -> Path:
        return self.root / f"{self.split}_{what}.json"

    def _check_layout(self) -> None:
        if not self.root.is_dir():
            raise FreiHANDFormatError(f"{self.root}: FreiHAND root not found (not a folder)",
                                      path=self.root)
        s = self.split
        required = [f"{s}_K.json", f"{s}_scale.json", f"{s}/rgb/"]
        if s == "training":
            required += ["training_xyz.json", "training_mano.json"]
        missing = [r for r in required if not (self.root / r.rstrip("/")).exists()]
        if missing:
            raise FreiHANDFormatError(
                f"{self.root} does not look like a FreiHAND root for split '{s}': missing "
                f"{', '.join(missing)}. Expected {', '.join(required)} (images "
                f"{s}/rgb/%08d.jpg)", path=self.root)

    def _read_array(self, path: Path, shape: tuple[int | None, ...],
                    flatten_entries: int | None = None) -> np.ndarray:
        raw = self._files.json(path)
        if flatten_entries is not None:
            # entries stored as [[v0, ..]] or [v0, ..]: check per-entry size, then reshape
            try:
                arr = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError):
                self._files.fail(path, "array is not numeric (ragged nesting or non-numbers)")
            n = shape[0] if shape[0] is not None else len(arr)
            if arr.ndim == 0 or len(arr) != n or arr.size != n * flatten_entries:
                expected = f"({n}, {flatten_entries})" if flatten_entries > 1 else f"({n},)"
                self._files.fail(path, f"array has shape {arr.shape}, expected {expected}")
            raw = arr.reshape(shape)
        return self._files.array(raw, path, None, shape)

    def _read_optional(self, path: Path, shape: tuple[int, ...], required: bool,
                       flatten_entries: int | None = None) -> np.ndarray | None:
        if not path.is_file() and not required:
            return None
        return self._read_array(path, shape, flatten_entries)

    def __len__(self) -> int:
        return self.num_annotations * len(self.versions)

    def __getitem__(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        n = self.num_annotations
        v_pos, j = divmod(i, n)
        version = FREIHAND_VERSIONS.index(self.versions[v_pos])
        image_id = j + version * n
        image = self._files.image(self.root / self.split / "rgb" / f"{image_id:08d}.jpg")
        K = torch.from_numpy(self.K[j])  # float64 until the end: exact projections
        sample: dict[str, Any] = {"image": image, "K": K.float()}
        if self.xyz is not None:
            xyz = torch.from_numpy(self.xyz[j])
            sample["joints_cam"] = xyz.float()
            sample["joints_2d"] = project_points(xyz, K).float()
            sample["has_joints"] = torch.tensor(True)
        else:
            sample["joints_cam"] = torch.zeros(21, 3)
            sample["joints_2d"] = torch.zeros(21, 2)
            sample["has_joints"] = torch.tensor(False)
        sample["scale"] = torch.tensor(float(self.scale[j]))
        has_mano = self.mano is not None
        sample["mano"] = torch.from_numpy(self.mano[j]).float() if has_mano else torch.zeros(61)
        sample["has_mano"] = torch.tensor(has_mano)
        if self.load_verts:
            has_verts = self.verts is not None
            sample["verts_cam"] = (torch.from_numpy(self.verts[j]).float() if has_verts
                                   else torch.zeros(778, 3))
            sample["has_verts"] = torch.tensor(has_verts)
        sample["index"] = torch.tensor(i, dtype=torch.int64)
        sample["image_id"] = torch.tensor(image_id, dtype=torch.int64)
        sample["version"] = torch.tensor(version, dtype=torch.int64)
        return self.transform(sample) if self.transform is not None else sample
