"""Reading and writing MANO model files (official ``.pkl``, ``.npz`` with the same keys).

The official MANO pickles hold chumpy objects, and chumpy does not import on Python >= 3.11
with numpy >= 1.24. :class:`_ChumpyFreeUnpickler` maps every ``chumpy.*`` class to a stub
whose pickled state is kept, and plain ``Ch`` objects are turned into the array they hold in
state key ``x``. A scipy-sparse ``J_regressor`` becomes a dense array.

Where no path is given, the project's open hand model (``hand_lib/assets``) is used: a
procedurally built hand in the same format (see :mod:`hand_lib.mano.openhand`).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hand_lib.mano.joints import MANO_TIP_VERTEX_IDS

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets"
OPEN_HAND_RIGHT = ASSET_DIR / "open_hand_right.pkl"

Side = Literal["right", "left"]

_REQUIRED_KEYS = (
    "v_template",
    "f",
    "J_regressor",
    "kintree_table",
    "weights",
    "shapedirs",
    "posedirs",
    "hands_components",
    "hands_mean",
)


class ManoFileError(ValueError):
    """A model file is missing a key or holds an array of the wrong shape."""


@dataclass(frozen=True)
class ManoModelData:
    """The arrays of a MANO-format model, as float64/int64 numpy arrays.

    Attributes:
        v_template: (V, 3) rest-pose vertices, metres.
        faces: (F, 3) int64 triangle indices.
        J_regressor: (J, V) dense joint regressor (J = 16 for MANO).
        parents: (J,) int64 parent of each joint, -1 for the root.
        weights: (V, J) linear-blend-skinning weights.
        shapedirs: (V, 3, S) shape blend shapes, metres per unit beta.
        posedirs: (V, 3, 9*(J-1)) pose corrective blend shapes.
        hands_components: (C, 3*(J-1)) pose PCA basis, one component per row.
        hands_mean: (3*(J-1),) mean finger pose, axis-angle.
        tip_vertex_ids: (5,) fingertip vertex ids, thumb, index, middle, ring, pinky.
        side: "right" or "left".
        path: the file it came from ("" when built in memory).
    """

    v_template: np.ndarray
    faces: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    tip_vertex_ids: np.ndarray
    side: Side
    path: str = ""

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    @property
    def template_joints(self) -> np.ndarray:
        """(J, 3) rest-pose joints, ``J_regressor @ v_template``, metres."""
        return self.J_regressor @ self.v_template


# --------------------------------------------------------------------------------------
# chumpy-free unpickling


class _ChumpyStub:
    """Stands in for any chumpy class; keeps whatever state the pickle restores."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyStub:
        obj = object.__new__(cls)
        obj.__dict__["_stub_args"] = args
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        self.__dict__["_stub_state"] = state


class _ChumpyFreeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStub,), {"_chumpy_name": f"{module}.{name}"})
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            # Old scipy pickles name private modules such as scipy.sparse.csc.
            if module.startswith("scipy.sparse"):
                import scipy.sparse

                return getattr(scipy.sparse, name)
            raise


def _to_array(value: Any, key: str, path: Path) -> Any:
    if isinstance(value, _ChumpyStub):
        state = value.__dict__.get("_stub_state")
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise ManoFileError(
            f"{path}: key {key!r} holds a chumpy {value._chumpy_name} expression, not a plain "
            "array; only plain chumpy arrays (Ch with state 'x') can be read without chumpy"
        )
    if hasattr(value, "toarray") and "scipy.sparse" in type(value).__module__:
        return np.asarray(value.toarray())
    return value


def _read_raw(path: Path) -> dict[str, Any]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=True) as npz:
            raw = {k: npz[k] for k in npz.files}
        # 0-d object arrays (e.g. a sparse matrix saved by np.savez) are unwrapped.
        return {k: (v.item() if v.dtype == object and v.ndim == 0 else v) for k, v in raw.items()}
    with open(path, "rb") as fh:
        try:
            raw = _ChumpyFreeUnpickler(fh, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise ManoFileError(f"{path}: not a readable MANO pickle ({exc})") from exc
    if not isinstance(raw, dict):
        raise ManoFileError(f"{path}: expected a pickled dict of arrays, got {type(raw).__name__}")
    return raw


def _expect(arr: np.ndarray, shape: tuple[int | None, ...], key: str, path: Path) -> None:
    ok = arr.ndim == len(shape) and all(
        s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
    )
    if not ok:
        dims = ["N" if s is None else str(s) for s in shape]
        want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        raise ManoFileError(f"{path}: key {key!r} has shape {arr.shape}, expected {want}")


def _side_from_name(path: Path) -> Side | None:
    name = path.name.upper()
    if "LEFT" in name:
        return "left"
    if "RIGHT" in name:
        return "right"
    return None


def load_model_file(
    path: str | os.PathLike[str],
    *,
    side: Side | None = None,
    fix_left_shapedirs: bool | None = None,
) -> ManoModelData:
    """Load a MANO-format model file (official pickle with or without chumpy, or ``.npz``).

    Args:
        path: ``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl``, an ``.npz`` with the same keys, or the
            open hand model.
        side: "right" or "left"; by default taken from ``is_rhand``-style names in the file
            name (``RIGHT``/``LEFT``), else right.
        fix_left_shapedirs: the official ``MANO_LEFT.pkl`` carries the right hand's shape
            x-components unmirrored (smplx issue #48), so shaped left hands are wrong.
            ``True`` negates ``shapedirs[:, 0, :]``; ``False`` leaves it; ``None`` (default)
            decides from the data: with a right-hand file beside it (same suffix) the two are
            compared, otherwise a left file is fixed when its x-displacements anti-correlate
            with its own geometry (a warning says what was done).

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where real files go).
        ManoFileError: missing keys, wrong shapes, unreadable contents.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MANO model file not found: {path}. Download MANO_RIGHT.pkl / MANO_LEFT.pkl from "
            "https://mano.is.tue.mpg.de (license required) and pass that path or its folder "
            "(e.g. --mano PATH); without one, hand_lib uses its open hand model, the default "
            f"({OPEN_HAND_RIGHT})."
        )
    return model_from_arrays(
        _read_raw(path), path=path, side=side, fix_left_shapedirs=fix_left_shapedirs
    )


def model_from_arrays(
    raw: dict[str, Any],
    *,
    path: str | os.PathLike[str] = "<memory>",
    side: Side | None = None,
    fix_left_shapedirs: bool | None = None,
) -> ManoModelData:
    """Validate a dict with MANO's keys (as read from a file or built in memory) and convert
    it to :class:`ManoModelData`. Arguments as in :func:`load_model_file`."""
    path = Path(path)
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise ManoFileError(f"{path}: missing key(s) {missing}; a MANO file has {_REQUIRED_KEYS}")
    arrays = {k: _to_array(v, k, path) for k, v in raw.items() if k in _REQUIRED_KEYS}
    arrays["tip_vertex_ids"] = raw.get("tip_vertex_ids", np.asarray(MANO_TIP_VERTEX_IDS))
    try:
        v_template = np.asarray(arrays["v_template"], dtype=np.float64)
        faces = np.asarray(arrays["f"]).astype(np.int64)
        J_regressor = np.asarray(arrays["J_regressor"], dtype=np.float64)
        kintree = np.asarray(arrays["kintree_table"]).astype(np.int64)
        weights = np.asarray(arrays["weights"], dtype=np.float64)
        shapedirs = np.asarray(arrays["shapedirs"], dtype=np.float64)
        posedirs = np.asarray(arrays["posedirs"], dtype=np.float64)
        comps = np.asarray(arrays["hands_components"], dtype=np.float64)
        mean = np.asarray(arrays["hands_mean"], dtype=np.float64).reshape(-1)
        tips = np.asarray(_to_array(arrays["tip_vertex_ids"], "tip_vertex_ids", path))
        tips = tips.astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ManoFileError(f"{path}: an entry is not a numeric array ({exc})") from exc

    _expect(v_template, (None, 3), "v_template", path)
    num_v = v_template.shape[0]
    _expect(faces, (None, 3), "f", path)
    _expect(J_regressor, (None, num_v), "J_regressor", path)
    num_j = J_regressor.shape[0]
    _expect(kintree, (2, num_j), "kintree_table", path)
    _expect(weights, (num_v, num_j), "weights", path)
    _expect(shapedirs, (num_v, 3, None), "shapedirs", path)
    _expect(posedirs, (num_v, 3, 9 * (num_j - 1)), "posedirs", path)
    _expect(comps, (None, 3 * (num_j - 1)), "hands_components", path)
    _expect(mean, (3 * (num_j - 1),), "hands_mean", path)
    _expect(tips, (5,), "tip_vertex_ids", path)
    if faces.min() < 0 or faces.max() >= num_v:
        raise ManoFileError(f"{path}: key 'f' indexes vertices outside [0, {num_v})")
    if tips.min() < 0 or tips.max() >= num_v:
        raise ManoFileError(
            f"{path}: fingertip vertex ids {tips.tolist()} are outside [0, {num_v}); a non-MANO "
            "mesh must carry its own 'tip_vertex_ids' key"
        )
    parents = kintree[0].copy()
    parents[parents >= num_j] = -1  # the root's parent is stored as 2**32 - 1
    if parents[0] != -1 or np.any(parents[1:] >= np.arange(1, num_j)):
        raise ManoFileError(f"{path}: kintree_table parents {parents.tolist()} are not topological")

    side = side or _side_from_name(path) or "right"
    if side == "left":
        shapedirs = _maybe_fix_left_shapedirs(path, v_template, shapedirs, fix_left_shapedirs)
    return ManoModelData(
        v_template=v_template,
        faces=faces,
        J_regressor=J_regressor,
        parents=parents,
        weights=weights,
        shapedirs=shapedirs,
        posedirs=posedirs,
        hands_components=comps,
        hands_mean=mean,
        tip_vertex_ids=tips,
        side=side,
        path=str(path),
    )


def left_shapedirs_look_unmirrored(
    v_template: np.ndarray, shapedirs: np.ndarray, right_shapedirs: np.ndarray | None = None
) -> bool:
    """Whether a left hand's ``shapedirs`` carry the right hand's x-components (smplx #48).

    With the right model's ``shapedirs`` the test is exact: the buggy file's x-components
    equal the right's, a correct mirror's are their negation. Without it, use geometry: a
    shape component moves vertices coherently in x and y (growing the hand stretches both),
    so the per-component correlation of x-displacement with x-position has the sign of the
    y one; a flipped x-component reverses it.
    """
    x = shapedirs[:, 0, :]
    if right_shapedirs is not None and right_shapedirs.shape == shapedirs.shape:
        same = np.linalg.norm(x - right_shapedirs[:, 0, :])
        mirrored = np.linalg.norm(x + right_shapedirs[:, 0, :])
        return bool(same < mirrored)
    centred = v_template - v_template.mean(0)
    score = 0.0
    for k in range(shapedirs.shape[2]):
        cx = np.dot(centred[:, 0], x[:, k])
        cy = np.dot(centred[:, 1], shapedirs[:, 1, k])
        cz = np.dot(centred[:, 2], shapedirs[:, 2, k])
        score += cx * (cy + cz)
    return bool(score < 0)


def _maybe_fix_left_shapedirs(
    path: Path, v_template: np.ndarray, shapedirs: np.ndarray, fix: bool | None
) -> np.ndarray:
    if fix is None:
        right_path = path.with_name(path.name.replace("LEFT", "RIGHT").replace("left", "right"))
        right = None
        if right_path != path and right_path.is_file():
            try:
                raw_right = _read_raw(right_path)["shapedirs"]
                right = np.asarray(_to_array(raw_right, "shapedirs", right_path))
            except (KeyError, ManoFileError):
                right = None
        fix = left_shapedirs_look_unmirrored(v_template, shapedirs, right)
        if fix:
            warnings.warn(
                f"{path}: left-hand shapedirs carry unmirrored x-components (smplx issue #48); "
                "negating shapedirs[:, 0, :]. Pass fix_left_shapedirs=False to keep them.",
                stacklevel=3,
            )
    if fix:
        shapedirs = shapedirs.copy()
        shapedirs[:, 0, :] *= -1.0
    return shapedirs


def save_model_file(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write a MANO-format model atomically: ``.pkl`` (pickle protocol 2, like the official
    files) or ``.npz``, chosen by the suffix. ``data`` holds the official keys (see
    :data:`_REQUIRED_KEYS`) plus any extras such as ``tip_vertex_ids``.
    """
    path = Path(path)
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise ManoFileError(f"{path}: cannot save, missing key(s) {missing}")
    if path.suffix not in (".pkl", ".npz"):
        raise ValueError(f"{path}: model files end in .pkl or .npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if path.suffix == ".pkl":
                pickle.dump(dict(data), fh, protocol=2)
            else:
                # npz holds plain arrays (what smplx and other tools expect): densify sparse
                np.savez(fh, **{k: _dense(v) for k, v in data.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _dense(value: Any) -> Any:
    return value.toarray() if "scipy.sparse" in type(value).__module__ else value


def resolve_model_path(model: str | os.PathLike[str] | None, side: Side = "right") -> Path | None:
    """Turn a user's ``--mano`` value into a file path.

    ``None`` means the open hand model (returns ``None``: the caller builds it). A folder is
    searched for ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (or ``.npz``); a file is returned as is.
    """
    if model is None:
        return None
    path = Path(model).expanduser()
    if path.is_dir():
        stem = "MANO_RIGHT" if side == "right" else "MANO_LEFT"
        for suffix in (".pkl", ".npz"):
            if (path / f"{stem}{suffix}").is_file():
                return path / f"{stem}{suffix}"
        raise FileNotFoundError(
            f"{path} holds no {stem}.pkl or {stem}.npz. Put the licensed MANO files from "
            "https://mano.is.tue.mpg.de there, or pass no path to use the open hand model."
        )
    return path


def load_model(model: str | os.PathLike[str] | None = None, side: Side = "right") -> ManoModelData:
    """Load the real MANO (a file or folder) or, when ``model`` is None, the open hand model.

    The open model ships as a right hand; the left hand is its exact mirror image.
    """
    path = resolve_model_path(model, side)
    if path is not None:
        return load_model_file(path, side=side)
    right = load_model_file(OPEN_HAND_RIGHT, side="right")
    if side == "right":
        return right
    from hand_lib.mano.openhand import mirror_to_left

    left = mirror_to_left(_read_raw(OPEN_HAND_RIGHT))
    return model_from_arrays(
        left,
        path=OPEN_HAND_RIGHT.with_name("open_hand_left (mirrored)"),
        side="left",
        fix_left_shapedirs=False,
    )
