"""MANO: model file I/O, the layer, joint conventions and the open hand model."""

from hand_lib.mano.io import (
    ManoFileError,
    ManoModelData,
    load_model,
    load_model_file,
    model_from_arrays,
    save_model_file,
)
from hand_lib.mano.joints import KEYPOINT_NAMES, MANO_JOINT_NAMES, MANO_TO_FREIHAND
from hand_lib.mano.layer import ManoLayer, ManoOutput

__all__ = [
    "KEYPOINT_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_TO_FREIHAND",
    "ManoFileError",
    "ManoLayer",
    "ManoModelData",
    "ManoOutput",
    "load_model",
    "load_model_file",
    "model_from_arrays",
    "save_model_file",
]
