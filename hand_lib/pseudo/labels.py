"""2D keypoint label files: HanCo/HaMuCo, S2HAND detection lists and OpenPose JSON.

Three formats, all in hand_lib's joint order (FreiHAND/OpenPose: 0 wrist, thumb 1-4, index 5-8,
middle 9-12, ring 13-16, pinky 17-20) and in pixels of the original image:

- HanCo / HaMuCo (:func:`read_hanco_label`, :func:`write_hanco_label`): one file per view,
  ``rgb_2D_keypoints/<seq:04d>/cam<k>/<frame:08d>.json`` = ``[kps, cfd]`` with ``kps`` 21 x 2
  and ``cfd`` 21 confidences. :func:`hanco_label_path` builds the path.
- S2HAND detection list (:func:`read_s2hand_detections`, :func:`write_s2hand_detections`):
  one file per dataset split, ``[xy, conf, names]`` with ``xy`` N x 21 x 2, ``conf`` N x 21
  and ``names`` N image names (file names relative to the image folder). A two-element
  ``[xy, conf]`` file (no names) is read too; its names are the indices as strings.
- OpenPose (:func:`read_openpose_hand`, :func:`write_openpose_hand`): OpenPose's own
  per-image output, ``{"version": ..., "people": [{"hand_right_keypoints_2d": [x, y, c] * 21,
  "hand_left_keypoints_2d": ..., ...}]}``. OpenPose writes undetected joints as
  ``x = y = c = 0`` and an image with nobody in it as ``"people": []``.

Missing joints: confidence 0 means "not detected"; the coordinates of such a joint carry no
meaning (they are written as given, conventionally 0). "No hand found" is every confidence 0.

Writing is atomic: the data go to a temporary file in the target folder, which is then
renamed over the target (``os.replace``), so a reader never sees a half-written file and a
failed write leaves no file behind. The writers return False and leave an existing file alone
when ``overwrite=False``, which makes labelling runs resumable.

This module needs only NumPy (no torch): the MediaPipe side environment imports it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "HANCO_LABEL_DIR",
    "LabelFormatError",
    "S2HandDetections",
    "atomic_write_json",
    "hanco_label_path",
    "read_hanco_label",
    "read_openpose_hand",
    "read_s2hand_detections",
    "write_hanco_label",
    "write_openpose_hand",
    "write_s2hand_detections",
]

NUM_KEYPOINTS = 21
HANCO_LABEL_DIR = "rgb_2D_keypoints"
"""The folder HaMuCo ships its labels in (its README spells it ``rgb_2d_keypoints``)."""

PathLike = str | os.PathLike[str]


class LabelFormatError(ValueError):
    """A label file is missing, unreadable or not in the expected format.

    The message starts with the file and says what was expected.

    Attributes:
        path: the offending file.
    """

    def __init__(self, path: PathLike, message: str) -> None:
        super().__init__(f"{os.fspath(path)}: {message}")
        self.path = Path(path)


# --------------------------------------------------------------------------- helpers


def _load_json(path: PathLike, expected: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise LabelFormatError(path, f"file not found (expected {expected})")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise LabelFormatError(
            path, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno}); expected {expected}"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise LabelFormatError(path, f"cannot read file ({e}); expected {expected}") from e


def _as_array(
    value: Any, path: PathLike, what: str, shape: tuple[int, ...], flatten: bool = False
) -> np.ndarray:
    """float64 array of exactly ``shape`` (-1 = any size) with finite values, or raise.

    ``flatten``: accept any nesting with the right number of values (``shape`` = ``(n,)``).
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise LabelFormatError(
            path, f"{what} is not numeric (ragged nesting or non-numbers); expected shape "
            f"{_shape_text(shape)}") from e
    if flatten and arr.size == shape[0]:
        arr = arr.reshape(shape)
    if arr.ndim != len(shape) or any(
            e != -1 and a != e for a, e in zip(arr.shape, shape, strict=True)):
        raise LabelFormatError(
            path, f"{what} has shape {_shape_text(arr.shape)}, expected {_shape_text(shape)}")
    if not np.isfinite(arr).all():
        raise LabelFormatError(path, f"{what} holds non-finite values")
    return arr


def _shape_text(shape: Sequence[int]) -> str:
    parts = ["N" if s == -1 else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _check_pair(keypoints: np.ndarray, confidence: np.ndarray, lead: tuple[int, ...]) -> None:
    if keypoints.shape != (*lead, NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape {(*lead, NUM_KEYPOINTS, 2)}, "
                         f"got {keypoints.shape}")
    if confidence.shape != (*lead, NUM_KEYPOINTS):
        raise ValueError(f"confidence must have shape {(*lead, NUM_KEYPOINTS)}, "
                         f"got {confidence.shape}")
    if not (np.isfinite(keypoints).all() and np.isfinite(confidence).all()):
        raise ValueError("keypoints and confidence must be finite (write missing joints as "
                         "confidence 0, coordinates 0)")
    if (confidence < 0).any():
        raise ValueError("confidence must be non-negative")


def atomic_write_json(
    path: PathLike, obj: Any, *, overwrite: bool = True,
    dump: Callable[[Any, IO[str]], None] | None = None,
) -> bool:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file + ``os.replace``).

    The parent folder is created. If anything fails, the temporary file is removed and the
    target is untouched.

    Args:
        path: target file.
        obj: JSON-serialisable object.
        overwrite: if False and ``path`` exists, do nothing and return False.
        dump: serialiser ``dump(obj, file)``; default compact :func:`json.dump`.

    Returns:
        True if the file was written.
    """
    path = Path(path)
    if not overwrite and path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if dump is None:
                json.dump(obj, f, separators=(",", ":"), allow_nan=False)
            else:
                dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


#: suffix of the provenance file a labeller writes *beside* its label folder
#: (``rgb_2D_keypoints`` -> ``rgb_2D_keypoints.provenance.json``), so the folder itself holds
#: label files only
LABEL_STAMP_SUFFIX = ".provenance.json"


def label_stamp_path(folder: PathLike) -> Path:
    """Where the provenance stamp of a label folder lives (beside it)."""
    folder = Path(folder)
    return folder.with_name(folder.name + LABEL_STAMP_SUFFIX)


def read_label_stamp(folder: PathLike) -> Any:
    """The provenance stamp of a label folder (see :func:`write_label_stamp`), or None when it
    has none (new, or written by something that does not stamp, such as the labels shipped
    with HanCo). Labels derived from a folder record its stamp as their source.

    Raises:
        ValueError: the stamp exists but is not valid JSON (names the file).
    """
    path = label_stamp_path(folder)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete it to relabel") from error


def label_stamp_matches(folder: PathLike, inputs: dict[str, Any]) -> bool | None:
    """Whether the label folder was written from ``inputs``: True (same), False (stale: another
    labeller configuration or other data) or None (no stamp; see :func:`read_label_stamp`)."""
    stamp = read_label_stamp(folder)
    if stamp is None:
        return None
    # a JSON round trip of ``inputs`` compares like with like (tuples become lists)
    return stamp == json.loads(json.dumps(inputs))


def write_label_stamp(folder: PathLike, inputs: dict[str, Any]) -> None:
    """Record what a label folder was computed from (labeller, its parameters, a fingerprint
    of the data), atomically, in :func:`label_stamp_path`."""
    atomic_write_json(label_stamp_path(folder), inputs,
                      dump=lambda obj, f: json.dump(obj, f, indent=1, sort_keys=True))  # fmt: skip


def _move_aside(folder: Path) -> Path:
    """Rename ``folder`` and its stamp to the first free ``<name>.stale-<n>``; return it."""
    n = 1
    while (aside := folder.with_name(f"{folder.name}.stale-{n}")).exists() or \
            label_stamp_path(aside).exists():  # fmt: skip
        n += 1
    if folder.exists():
        folder.rename(aside)
    label_stamp_path(folder).rename(label_stamp_path(aside))
    return aside


def prepare_label_folder(folder: PathLike, inputs: dict[str, Any], overwrite: bool) -> bool:
    """Decide how a labelling run treats ``folder``, and stamp it.

    - stamp equal to ``inputs``: resume (existing files kept unless ``overwrite``);
    - stamp different: the labels are stale (other parameters or other data); the folder
      and its stamp are renamed to ``<name>.stale-<n>`` (nothing is deleted), with a
      warning, and the run starts an empty, freshly stamped folder, so an interrupted
      relabelling resumes without mixing old and new labels;
    - no stamp and no label file: a new folder, stamped;
    - no stamp but label files (labels shipped with a dataset, or written before stamps
      existed): kept as they are unless ``overwrite``, with a warning; not stamped.

    Returns:
        The ``overwrite`` flag the run must use.
    """
    import logging

    folder = Path(folder)
    state = label_stamp_matches(folder, inputs)
    if state is False:
        aside = _move_aside(folder)
        logging.getLogger(__name__).warning(
            "%s was labelled from other inputs than these; moved to %s, relabelling every view",
            folder, aside)
    elif state is None and not overwrite and folder.is_dir() and next(
            folder.glob("*/cam*/*.json"), None) is not None:
        logging.getLogger(__name__).warning(
            "%s holds labels without a provenance stamp (%s); keeping them as they are "
            "(overwrite=True relabels)", folder, label_stamp_path(folder))
        return overwrite
    if state is not True:
        write_label_stamp(folder, inputs)
    return overwrite


def _rounded(arr: np.ndarray, decimals: int) -> list[Any]:
    return np.round(np.asarray(arr, dtype=np.float64), decimals).tolist()


# --------------------------------------------------------------------------- HanCo / HaMuCo


def hanco_label_path(
    root: PathLike, seq: int, cam: int, frame: int, label_dir: str = HANCO_LABEL_DIR
) -> Path:
    """``root/<label_dir>/<seq:04d>/cam<cam>/<frame:08d>.json``."""
    return Path(root) / label_dir / f"{seq:04d}" / f"cam{cam}" / f"{frame:08d}.json"


def read_hanco_label(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a HanCo/HaMuCo label file ``[kps, cfd]``.

    Returns:
        keypoints (21, 2) float64 pixels, confidence (21,) float64 (0 = not detected).

    Raises:
        LabelFormatError: naming the file and what was expected.
    """
    expected = "[keypoints 21x2, confidences 21]"
    raw = _load_json(path, expected)
    if not isinstance(raw, list) or len(raw) != 2:
        got = f"a list of {len(raw)}" if isinstance(raw, list) else type(raw).__name__
        raise LabelFormatError(path, f"expected {expected}, got {got}")
    kps = _as_array(raw[0], path, "[0] (keypoints)", (NUM_KEYPOINTS, 2))
    # Any nesting of 21 values, as the HanCo loader accepts (e.g. a 21 x 1 list).
    cfd = _as_array(raw[1], path, "[1] (confidences)", (NUM_KEYPOINTS,), flatten=True)
    if (cfd < 0).any():
        raise LabelFormatError(path, "[1] (confidences) holds negative values")
    return kps, cfd


def write_hanco_label(
    path: PathLike, keypoints: np.ndarray, confidence: np.ndarray, *,
    overwrite: bool = True, decimals: int = 3,
) -> bool:
    """Write a HanCo/HaMuCo label file ``[kps, cfd]`` atomically.

    Args:
        path: target, usually :func:`hanco_label_path`.
        keypoints: (21, 2) pixels.
        confidence: (21,) non-negative, 0 for a missing joint.
        overwrite: False keeps an existing file (returns False): resumable runs.
        decimals: rounding of the stored numbers (3 = a thousandth of a pixel).

    Returns:
        True if the file was written.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    cfd = np.asarray(confidence, dtype=np.float64)
    _check_pair(kps, cfd, ())
    return atomic_write_json(path, [_rounded(kps, decimals), _rounded(cfd, 4)],
                             overwrite=overwrite)


# --------------------------------------------------------------------------- S2HAND


@dataclass(frozen=True)
class S2HandDetections:
    """A dataset's 2D detections as S2HAND stores them.

    Attributes:
        keypoints: (N, 21, 2) float64 pixels.
        confidence: (N, 21) float64, 0 = not detected.
        names: N image names (relative to the image folder), one per row.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


def read_s2hand_detections(path: PathLike) -> S2HandDetections:
    """Read an S2HAND detection file ``[xy, conf, names]`` (or ``[xy, conf]``).

    Raises:
        LabelFormatError: naming the file and what was expected.
    """
    expected = "[xy Nx21x2, conf Nx21, names N] (or [xy, conf])"
    raw = _load_json(path, expected)
    if not isinstance(raw, list) or len(raw) not in (2, 3):
        got = f"a list of {len(raw)}" if isinstance(raw, list) else type(raw).__name__
        raise LabelFormatError(path, f"expected {expected}, got {got}")
    if len(raw[0]) == 0:
        kps = np.zeros((0, NUM_KEYPOINTS, 2))
    else:
        kps = _as_array(raw[0], path, "[0] (xy)", (-1, NUM_KEYPOINTS, 2))
    n = len(kps)
    conf = (np.zeros((0, NUM_KEYPOINTS)) if n == 0 and len(raw[1]) == 0
            else _as_array(raw[1], path, "[1] (conf)", (n, NUM_KEYPOINTS)))
    if (conf < 0).any():
        raise LabelFormatError(path, "[1] (conf) holds negative values")
    if len(raw) == 3:
        names = raw[2]
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise LabelFormatError(path, "[2] (names) must be a list of strings")
        if len(names) != n:
            raise LabelFormatError(path, f"[2] (names) has {len(names)} entries, expected {n} "
                                   "(one per row of xy)")
        if len(set(names)) != n:
            raise LabelFormatError(path, "[2] (names) holds duplicate names")
    else:
        names = [str(i) for i in range(n)]
    return S2HandDetections(kps, conf, tuple(names))


def write_s2hand_detections(
    path: PathLike, keypoints: np.ndarray, confidence: np.ndarray, names: Sequence[str], *,
    overwrite: bool = True, decimals: int = 3,
) -> bool:
    """Write an S2HAND detection file ``[xy, conf, names]`` atomically.

    Args:
        path: target file.
        keypoints: (N, 21, 2) pixels.
        confidence: (N, 21), 0 = not detected.
        names: N distinct image names.
        overwrite: False keeps an existing file (returns False).
        decimals: rounding of the stored coordinates.

    Returns:
        True if the file was written.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    names = [str(s) for s in names]
    _check_pair(kps, conf, (len(names),))
    if len(set(names)) != len(names):
        raise ValueError("names must be distinct")
    return atomic_write_json(
        path, [_rounded(kps, decimals), _rounded(conf, 4), names], overwrite=overwrite)


# --------------------------------------------------------------------------- OpenPose


_OPENPOSE_HANDS = {"right": "hand_right_keypoints_2d", "left": "hand_left_keypoints_2d"}


def read_openpose_hand(
    path: PathLike, hand: str = "right"
) -> tuple[np.ndarray, np.ndarray]:
    """Read one hand from an OpenPose JSON file.

    When several people are listed, the one whose hand has the largest summed confidence is
    taken. No people (or an empty hand list) gives zeros: "no hand found".

    Args:
        path: OpenPose output file.
        hand: ``"right"`` or ``"left"``.

    Returns:
        keypoints (21, 2) float64 pixels, confidence (21,) float64.

    Raises:
        LabelFormatError: naming the file and what was expected.
    """
    if hand not in _OPENPOSE_HANDS:
        raise ValueError(f"hand must be 'right' or 'left', got {hand!r}")
    key = _OPENPOSE_HANDS[hand]
    expected = f'{{"people": [{{"{key}": [x, y, c] * 21, ...}}]}}'
    raw = _load_json(path, expected)
    if not isinstance(raw, dict) or "people" not in raw:
        raise LabelFormatError(path, f"missing key 'people'; expected {expected}")
    people = raw["people"]
    if not isinstance(people, list):
        raise LabelFormatError(path, f"'people' must be a list; expected {expected}")
    best: tuple[np.ndarray, np.ndarray] | None = None
    for i, person in enumerate(people):
        if not isinstance(person, dict) or key not in person:
            raise LabelFormatError(path, f"people[{i}] has no key '{key}'; expected {expected}")
        flat = person[key]
        if isinstance(flat, list) and len(flat) == 0:
            continue  # OpenPose writes [] when that hand was not computed
        arr = _as_array(flat, path, f"people[{i}].{key}", (3 * NUM_KEYPOINTS,))
        arr = arr.reshape(NUM_KEYPOINTS, 3)
        if (arr[:, 2] < 0).any():
            raise LabelFormatError(path, f"people[{i}].{key} holds negative confidences")
        if best is None or arr[:, 2].sum() > best[1].sum():
            best = (arr[:, :2].copy(), arr[:, 2].copy())
    if best is None:
        return np.zeros((NUM_KEYPOINTS, 2)), np.zeros(NUM_KEYPOINTS)
    return best


def write_openpose_hand(
    path: PathLike, keypoints: np.ndarray, confidence: np.ndarray, hand: str = "right", *,
    overwrite: bool = True, decimals: int = 3,
) -> bool:
    """Write one hand as an OpenPose JSON file (one person; other parts empty) atomically.

    A hand whose confidences are all 0 is written as ``"people": []``, as OpenPose does.

    Args:
        path: target file.
        keypoints: (21, 2) pixels.
        confidence: (21,) non-negative.
        hand: ``"right"`` or ``"left"``.
        overwrite: False keeps an existing file (returns False).
        decimals: rounding of the stored numbers.

    Returns:
        True if the file was written.
    """
    if hand not in _OPENPOSE_HANDS:
        raise ValueError(f"hand must be 'right' or 'left', got {hand!r}")
    kps = np.asarray(keypoints, dtype=np.float64)
    cfd = np.asarray(confidence, dtype=np.float64)
    _check_pair(kps, cfd, ())
    people = []
    if (cfd > 0).any():
        flat = np.concatenate([kps, cfd[:, None]], axis=1).reshape(-1)
        person: dict[str, Any] = {
            "person_id": [-1],
            "pose_keypoints_2d": [], "face_keypoints_2d": [],
            "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": [],
            "pose_keypoints_3d": [], "face_keypoints_3d": [],
            "hand_left_keypoints_3d": [], "hand_right_keypoints_3d": [],
        }
        person[_OPENPOSE_HANDS[hand]] = _rounded(flat, decimals)
        people.append(person)
    return atomic_write_json(path, {"version": 1.3, "people": people}, overwrite=overwrite)
