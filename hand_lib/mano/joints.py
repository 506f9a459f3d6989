"""Joint conventions: MANO's 16 joints, the 21 FreiHAND/HanCo/OpenPose keypoints, fingertips."""

from __future__ import annotations

#: MANO's 16 kinematic joints. MANO's internal finger order is index, middle, pinky, ring, thumb.
MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip

#: Parent of each MANO joint (-1 for the root), the first row of MANO's ``kintree_table``.
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: The 21 keypoints in FreiHAND / HanCo / OpenPose order; the 4th of each finger is the tip.
KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip

#: Fingertip order used for ``tip_vertex_ids`` in model files.
TIP_ORDER: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

#: Fingertip vertex ids on the official MANO right-hand mesh (thumb, index, middle, ring,
#: pinky). Used when a model file carries no ``tip_vertex_ids`` key (the official files don't).
#: One of the two sets in circulation (the other, smplx's, is 744, 320, 443, 554, 671).
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (745, 317, 444, 556, 673)

#: Index into ``cat([16 MANO joints, 5 tips in TIP_ORDER])`` that yields FreiHAND order.
MANO_TO_FREIHAND: tuple[int, ...] = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20,
)  # fmt: skip

#: FreiHAND parent of each keypoint (bones for plots and bone losses).
KEYPOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19,
)  # fmt: skip

#: HaMuCo's root joint for root-relative evaluation (middle MCP).
ROOT_KEYPOINT = 9
