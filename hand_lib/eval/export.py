"""Write prediction files for the FreiHAND and HO-3D evaluation servers.

Both servers read one JSON file, ``pred.json`` = ``[xyz_list, verts_list]``: a list of N
(21, 3) keypoint arrays and a list of N (V, 3) vertex arrays (V = 778 for MANO), camera
space, metres, as nested lists. The servers take it zipped (``zip -j pred.zip pred.json``;
:func:`zip_submission`).

- FreiHAND (lmb-freiburg/freihand ``pred.py``): keypoints in FreiHAND order, OpenCV camera
  axes (x right, y down, z forward), i.e. the frame this library uses.
- HO-3D v2/v3 (shreyashampali/ho3d ``pred.py``, README): keypoints in HO-3D's own order
  (the MANO joint order followed by the five tips, see :data:`HO3D_TO_FREIHAND`) and the
  **OpenGL** camera frame (hand along negative z: multiply y and z by -1). Its ``pred.py``
  rejects a sample whose keypoints or vertices all have z > 0; we apply the same check.
  The joint order of the submission is an inference, not documented by the challenge: the
  dataset's ``handJoints3D`` annotations are in this order (its ``vis_HO3D.py`` remaps them to
  FreiHAND order with the inverse permutation) and published HO-3D evaluation code converts
  predictions into it before dumping.

Writes are atomic: the JSON goes to a temporary file in the target directory, is flushed and
fsynced, then moved over the destination with ``os.replace``; a failed write leaves any
previous file untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FREIHAND_TO_HO3D",
    "HO3D_TO_FREIHAND",
    "OPENCV_TO_OPENGL",
    "read_pred_json",
    "write_freihand_pred_json",
    "write_ho3d_pred_json",
    "zip_submission",
]

#: ``freihand = ho3d[HO3D_TO_FREIHAND]``. HO-3D order: wrist; index, middle, pinky, ring,
#: thumb (3 joints each, MANO order); tips of thumb, index, middle, ring, pinky.
HO3D_TO_FREIHAND: tuple[int, ...] = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20
)
#: ``ho3d = freihand[FREIHAND_TO_HO3D]`` (the inverse permutation).
FREIHAND_TO_HO3D: tuple[int, ...] = tuple(int(i) for i in np.argsort(HO3D_TO_FREIHAND))
#: OpenCV camera axes -> OpenGL camera axes (and back: it is its own inverse).
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])

NUM_JOINTS = 21
#: Coordinates larger than this (metres) almost certainly mean millimetres were passed.
_MAX_ABS_METRES = 10.0


def _to_numpy(x: Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _validate(
    xyz_m: Tensor | np.ndarray, verts_m: Tensor | np.ndarray, expected_count: int | None
) -> tuple[np.ndarray, np.ndarray]:
    xyz = np.asarray(_to_numpy(xyz_m, "xyz_m"), dtype=np.float64)
    verts = np.asarray(_to_numpy(verts_m, "verts_m"), dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"xyz_m must have shape (N, 21, 3) (metres), got {xyz.shape}")
    if verts.ndim != 3 or verts.shape[2] != 3 or verts.shape[1] < 1:
        raise ValueError(f"verts_m must have shape (N, V, 3) (metres, V=778), got {verts.shape}")
    if xyz.shape[0] != verts.shape[0]:
        raise ValueError(f"xyz_m has {xyz.shape[0]} samples, verts_m has {verts.shape[0]}")
    if xyz.shape[0] == 0:
        raise ValueError("no samples to write")
    if expected_count is not None and xyz.shape[0] != expected_count:
        raise ValueError(f"expected {expected_count} samples, got {xyz.shape[0]}")
    for name, a in (("xyz_m", xyz), ("verts_m", verts)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
        if np.abs(a).max() > _MAX_ABS_METRES:
            raise ValueError(
                f"{name} has coordinates above {_MAX_ABS_METRES} m in magnitude; "
                "the servers expect metres (millimetres passed?)"
            )
    return xyz, verts


def _atomic_write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_freihand_pred_json(
    path: str | os.PathLike[str],
    xyz_m: Tensor | np.ndarray,
    verts_m: Tensor | np.ndarray,
    *,
    expected_count: int | None = None,
) -> Path:
    """Write a FreiHAND ``pred.json`` = ``[xyz Nx21x3, verts NxVx3]`` (metres, lists).

    Args:
        path: destination file (parent directories are created).
        xyz_m: (N, 21, 3) keypoints, FreiHAND order, OpenCV camera frame, metres.
        verts_m: (N, V, 3) vertices, same frame, metres (V = 778 for MANO; other topologies
            are accepted by the official script, which then aligns them with the keypoints).
        expected_count: if given, N must equal it (3,960 for the FreiHAND evaluation split).

    Returns:
        The path written.
    """
    xyz, verts = _validate(xyz_m, verts_m, expected_count)
    out = Path(path)
    _atomic_write_json(out, [xyz.tolist(), verts.tolist()])
    return out


def write_ho3d_pred_json(
    path: str | os.PathLike[str],
    xyz_m: Tensor | np.ndarray,
    verts_m: Tensor | np.ndarray,
    *,
    joint_order: Literal["freihand", "ho3d"] = "freihand",
    frame: Literal["opencv", "opengl"] = "opencv",
    expected_count: int | None = None,
) -> Path:
    """Write an HO-3D ``pred.json`` = ``[xyz Nx21x3, verts NxVx3]``: HO-3D order, OpenGL frame.

    Args:
        path: destination file.
        xyz_m: (N, 21, 3) keypoints, metres, absolute camera coordinates, in ``joint_order``.
        verts_m: (N, V, 3) vertices, metres, same frame.
        joint_order: order of ``xyz_m``: "freihand" (this library's, reordered to HO-3D's
            here) or "ho3d" (already in HO-3D order).
        frame: camera frame of the inputs: "opencv" (this library's, converted with
            diag(1, -1, -1) here) or "opengl" (written as is).
        expected_count: if given, N must equal it (the HO-3D evaluation split size of the
            version you submit to).

    Returns:
        The path written.

    Raises:
        ValueError: on bad shapes or values, or if any sample ends up with all keypoint or all
            vertex z > 0 (not OpenGL: the check HO-3D's ``pred.py`` applies).
    """
    if joint_order not in ("freihand", "ho3d"):
        raise ValueError(f"joint_order must be 'freihand' or 'ho3d', got {joint_order!r}")
    if frame not in ("opencv", "opengl"):
        raise ValueError(f"frame must be 'opencv' or 'opengl', got {frame!r}")
    xyz, verts = _validate(xyz_m, verts_m, expected_count)
    if joint_order == "freihand":
        xyz = xyz[:, list(FREIHAND_TO_HO3D)]
    if frame == "opencv":
        xyz = xyz @ OPENCV_TO_OPENGL.T
        verts = verts @ OPENCV_TO_OPENGL.T
    bad = (xyz[..., 2] > 0).all(1) | (verts[..., 2] > 0).all(1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} sample(s) (first: {first}) lie entirely at z > 0 in the OpenGL "
            "frame; HO-3D expects the hand in front of the camera along -z "
            f"(inputs declared frame={frame!r})"
        )
    out = Path(path)
    _atomic_write_json(out, [xyz.tolist(), verts.tolist()])
    return out


def read_pred_json(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``pred.json`` written by either writer.

    Args:
        path: the JSON file.

    Returns:
        ``(xyz, verts)``: (N, 21, 3) and (N, V, 3) float64 arrays, as stored (no reordering or
        frame change is undone).
    """
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    if not isinstance(payload, list) or len(payload) != 2:
        raise ValueError(f"{path}: expected a JSON list [xyz_list, verts_list]")
    xyz, verts = (np.asarray(p, dtype=np.float64) for p in payload)
    if xyz.ndim != 3 or xyz.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"{path}: xyz must be (N, 21, 3), got {xyz.shape}")
    if verts.ndim != 3 or verts.shape[2] != 3 or verts.shape[0] != xyz.shape[0]:
        raise ValueError(
            f"{path}: verts must be (N, V, 3) with N={xyz.shape[0]}, got {verts.shape}"
        )
    return xyz, verts


def zip_submission(
    json_path: str | os.PathLike[str], zip_path: str | os.PathLike[str] | None = None
) -> Path:
    """Zip a prediction file for upload, flat (like ``zip -j``), atomically.

    Args:
        json_path: the ``pred.json`` to pack.
        zip_path: destination; default: next to ``json_path`` with the suffix ``.zip``.

    Returns:
        The zip path written.
    """
    src = Path(json_path)
    if not src.is_file():
        raise FileNotFoundError(src)
    out = Path(zip_path) if zip_path is not None else src.with_suffix(".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(src, arcname=src.name)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
