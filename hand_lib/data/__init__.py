"""Datasets (HanCo, FreiHAND, HO3D), joint orders and exact-camera crops.

Every loader returns dicts of tensors that the default ``torch.utils.data`` collate stacks;
the keys and their shapes and units are listed in each loader's module docstring. Shared
conventions: joints in FreiHAND order (:mod:`hand_lib.data.joints`), metres, OpenCV camera
frame (x right, y down, z forward), pixel centres at integer coordinates
(:mod:`hand_lib.data.transforms`).

The synthetic HanCo generator (:mod:`hand_lib.data.synthetic`) is exported lazily
(``SyntheticConfig``, ``generate_synthetic_hanco``, ``ensure_synthetic_hanco``) so that
importing the loaders does not import the renderer.
"""

from typing import Any

from hand_lib.data.backgrounds import BackgroundBank, BackgroundComposite
from hand_lib.data.cache import CacheSpec, CropCache
from hand_lib.data.errors import (
    DataFormatError,
    FreiHANDFormatError,
    HanCoFormatError,
    HO3DFormatError,
)
from hand_lib.data.freihand import FreiHAND
from hand_lib.data.hanco import HanCo, scan_hanco, standard_split
from hand_lib.data.ho3d import HO3D
from hand_lib.data.joints import (
    FREIHAND_JOINT_NAMES,
    FREIHAND_TO_HO3D,
    HO3D_JOINT_NAMES,
    HO3D_TO_FREIHAND,
    reorder_joints,
)
from hand_lib.data.transforms import (
    Compose,
    CropConfig,
    CropResult,
    HandCrop,
    crop_and_augment,
    upright_angle,
)

__all__ = [
    "BackgroundBank",
    "BackgroundComposite",
    "CacheSpec",
    "Compose",
    "CropCache",
    "FREIHAND_JOINT_NAMES",
    "FREIHAND_TO_HO3D",
    "HO3D",
    "HO3D_JOINT_NAMES",
    "HO3D_TO_FREIHAND",
    "CropConfig",
    "CropResult",
    "DataFormatError",
    "FreiHAND",
    "FreiHANDFormatError",
    "HO3DFormatError",
    "HandCrop",
    "HanCo",
    "HanCoFormatError",
    "SyntheticConfig",
    "crop_and_augment",
    "ensure_synthetic_hanco",
    "generate_synthetic_hanco",
    "reorder_joints",
    "scan_hanco",
    "standard_split",
    "upright_angle",
]

_SYNTHETIC_EXPORTS = {"SyntheticConfig": "SyntheticConfig",
                      "ensure_synthetic_hanco": "ensure_synthetic_hanco",
                      "generate_synthetic_hanco": "generate"}


def __getattr__(name: str) -> Any:
    if name in _SYNTHETIC_EXPORTS:
        from hand_lib.data import synthetic

        return getattr(synthetic, _SYNTHETIC_EXPORTS[name])
    raise AttributeError(f"module 'hand_lib.data' has no attribute {name!r}")
