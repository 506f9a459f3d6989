"""Checked readers for dataset files: JSON, pickle, images and numeric arrays.

Each reader raises the dataset's :class:`~hand_lib.data.errors.DataFormatError` subclass with
the file (relative to the dataset root) and the key in the message, instead of a bare
``KeyError`` or a NumPy broadcasting error three calls later.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from hand_lib.data.errors import DataFormatError

ShapeSpec = Sequence[int | None]


def format_shape(shape: ShapeSpec) -> str:
    """``(8, 3, 3)``-style text for a shape; ``None`` entries (any size) print as ``N``."""
    parts = ["N" if s is None else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


class FileReader:
    """Reads files under one dataset root and raises ``error_cls`` naming file and key.

    Args:
        root: the dataset root; messages name files relative to it.
        error_cls: the :class:`DataFormatError` subclass to raise.
    """

    def __init__(self, root: str | os.PathLike[str], error_cls: type[DataFormatError]) -> None:
        self.root = Path(root)
        self.error_cls = error_cls

    def rel(self, path: str | os.PathLike[str]) -> str:
        """The path relative to the root (POSIX separators), or as given if outside it."""
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def fail(self, path: str | os.PathLike[str], message: str, key: str | None = None) -> NoReturn:
        """Raise ``error_cls`` with ``"<relative path>: <message>"``."""
        raise self.error_cls(f"{self.rel(path)}: {message}", path=Path(path), key=key)

    def _open_check(self, path: Path) -> None:
        if not path.is_file():
            self.fail(path, "file not found")

    def json(self, path: str | os.PathLike[str]) -> Any:
        """Parse a JSON file."""
        path = Path(path)
        self._open_check(path)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            self.fail(path, f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})")
        except (OSError, UnicodeDecodeError) as e:
            self.fail(path, f"cannot read file ({e})")

    def pickle(self, path: str | os.PathLike[str]) -> Any:
        """Unpickle a file written by Python 2 or 3 (``latin1`` keeps NumPy arrays intact).

        Only for dataset files from a trusted source: unpickling runs code.
        """
        path = Path(path)
        self._open_check(path)
        try:
            with open(path, "rb") as f:
                return pickle.load(f, encoding="latin1")
        except Exception as e:  # any unpickling failure (bad bytes, missing class) is bad data
            self.fail(path, f"cannot unpickle ({type(e).__name__}: {e})")

    def image(self, path: str | os.PathLike[str], mode: str = "RGB") -> Tensor:
        """Decode an image file to RGB (or one channel with ``mode="L"``).

        Returns:
            (3, H, W) (``"L"``: (1, H, W)) float32 in [0, 1].
        """
        path = Path(path)
        self._open_check(path)
        try:
            with Image.open(path) as im:
                im.load()  # decode now, so a truncated file fails here and not later
                pixels = np.asarray(im.convert(mode))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            self.fail(path, f"cannot decode image ({type(e).__name__}: {e})")
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)

    def key(self, obj: Any, key: str, path: str | os.PathLike[str]) -> Any:
        """``obj[key]`` for a mapping read from ``path``; raises naming file and key."""
        if not isinstance(obj, dict):
            self.fail(path, f"expected an object with key '{key}', got {type(obj).__name__}", key)
        if key not in obj:
            self.fail(path, f"missing key '{key}'", key)
        return obj[key]

    def array(
        self,
        value: Any,
        path: str | os.PathLike[str],
        key: str | None,
        shape: ShapeSpec,
        flatten: bool = False,
    ) -> np.ndarray:
        """Check a numeric array read from ``path``.

        Args:
            value: nested lists / array as read.
            path: the file it came from (for messages).
            key: the key it was stored under, or None for a whole-file array.
            shape: expected shape; ``None`` entries accept any size.
            flatten: accept any nesting with the right number of elements (``shape`` must
                then be one fixed size, e.g. ``(61,)``) and return it flattened.

        Returns:
            float64 array of the expected shape, all values finite.
        """
        what = f"key '{key}'" if key is not None else "array"
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(path, f"{what} is not numeric (ragged nesting or non-numbers)", key)
        if flatten:
            (n,) = shape
            if arr.size != n:
                self.fail(
                    path, f"{what} has {arr.size} values (shape {arr.shape}), expected {n}", key
                )
            arr = arr.reshape(n)
        elif arr.ndim != len(shape) or any(
            e is not None and a != e for a, e in zip(arr.shape, shape, strict=False)
        ):
            self.fail(
                path, f"{what} has shape {format_shape(arr.shape)}, expected {format_shape(shape)}",
                key,
            )
        if not np.isfinite(arr).all():
            self.fail(path, f"{what} holds non-finite values", key)
        return arr

    def key_array(
        self,
        obj: Any,
        key: str,
        path: str | os.PathLike[str],
        shape: ShapeSpec,
        flatten: bool = False,
    ) -> np.ndarray:
        """:meth:`key` followed by :meth:`array`."""
        return self.array(self.key(obj, key, path), path, key, shape, flatten=flatten)
