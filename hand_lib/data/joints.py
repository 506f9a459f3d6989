"""Joint orders of the datasets and the index maps to hand_lib's order.

hand_lib's order everywhere is FreiHAND's (also HanCo's and OpenPose's), defined once in
:mod:`hand_lib.mano.joints` as ``KEYPOINT_NAMES``: 0 wrist; thumb 1-4; index 5-8;
middle 9-12; ring 13-16; pinky 17-20, each finger from the base out, so the 4th is the tip.

HO3D's ``handJoints3D`` uses MANO's internal order for the 16 skeleton joints (wrist, then
index, middle, pinky, ring, thumb with 3 joints each) followed by the 5 tips in the order
thumb, index, middle, ring, pinky. Its map to FreiHAND order is therefore the same as
``hand_lib.mano.joints.MANO_TO_FREIHAND``, and it is the map the HO3D authors' own
visualisation script applies (``jointsMapManoToSimple``).

Use a map as ``joints_freihand = joints_ho3d[..., HO3D_TO_FREIHAND, :]``.
"""

from __future__ import annotations

from torch import Tensor

from hand_lib.mano.joints import KEYPOINT_NAMES, KEYPOINT_PARENTS

NUM_KEYPOINTS = len(KEYPOINT_NAMES)

FREIHAND_JOINT_NAMES: tuple[str, ...] = KEYPOINT_NAMES
"""The 21 keypoints in hand_lib / FreiHAND order (``<finger>_tip`` last per finger)."""

FREIHAND_PARENTS: tuple[int, ...] = KEYPOINT_PARENTS
"""Parent of each keypoint in FreiHAND order (-1 for the wrist)."""

HO3D_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "pinky_mcp", "pinky_pip", "pinky_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_mcp", "thumb_pip", "thumb_dip",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip",
)  # fmt: skip
"""HO3D ``handJoints3D`` order: MANO's 16 skeleton joints, then tips thumb..pinky."""

HO3D_TO_FREIHAND: tuple[int, ...] = tuple(HO3D_JOINT_NAMES.index(n) for n in KEYPOINT_NAMES)
"""``joints_freihand = joints_ho3d[HO3D_TO_FREIHAND]``:
(0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)."""

FREIHAND_TO_HO3D: tuple[int, ...] = tuple(KEYPOINT_NAMES.index(n) for n in HO3D_JOINT_NAMES)
"""Inverse of :data:`HO3D_TO_FREIHAND`: ``joints_ho3d = joints_freihand[FREIHAND_TO_HO3D]``."""


def reorder_joints(joints: Tensor, index: tuple[int, ...]) -> Tensor:
    """Reorder the joint axis.

    Args:
        joints: (..., 21, D) joints in the source order (D = 2 or 3, any unit).
        index: one of the maps here, e.g. :data:`HO3D_TO_FREIHAND`.

    Returns:
        (..., 21, D) joints in the target order.
    """
    if joints.ndim < 2 or joints.shape[-2] != len(index):
        raise ValueError(f"joints must be (..., {len(index)}, D), got {tuple(joints.shape)}")
    return joints[..., list(index), :]
