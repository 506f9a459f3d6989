"""Datasets (HanCo, FreiHAND, HO3D), joint orders and exact-camera crops.

Every loader returns dicts of tensors that the default ``torch.utils.data`` collate stacks;
the keys and their shapes and units are listed in each loader's module docstring. Shared
conventions: joints in FreiHAND order (:mod:`hand_lib.data.joints`), metres, OpenCV camera
frame (x right, y down, z forward), pixel centres at integer coordinates
(:mod:`hand_lib.data.transforms`).
"""

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
from hand_lib.data.transforms import CropConfig, CropResult, HandCrop, crop_and_augment

__all__ = [
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
    "crop_and_augment",
    "reorder_joints",
    "scan_hanco",
    "standard_split",
]
