"""Errors raised by the dataset loaders.

Every error about bad data names the file (relative to the dataset root where there is one)
and, where it applies, the key, so that a broken download can be fixed without a debugger:

    HanCoFormatError: calib/0003/00000012.json: key 'K' has shape (7, 3, 3), expected (8, 3, 3)
"""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A dataset file is missing, unreadable or holds values of the wrong form.

    Attributes:
        path: the offending file or folder (absolute), or None.
        key: the key inside the file, or None.
    """

    def __init__(self, message: str, path: Path | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class HanCoFormatError(DataFormatError):
    """Bad or missing data under a HanCo root."""


class FreiHANDFormatError(DataFormatError):
    """Bad or missing data under a FreiHAND root."""


class HO3DFormatError(DataFormatError):
    """Bad or missing data under an HO3D root."""
