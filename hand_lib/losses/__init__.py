"""Every loss term of S2HAND and HaMuCo as a small, tested, pure function.

Each function returns a scalar tensor and states its formula, shapes and units; the
original weights live in :mod:`hand_lib.losses.weights`. Layering: imports only from
``geometry`` and ``mano``.
"""

from hand_lib.losses.keypoints import (
    HUBER_THRESHOLD_PX,
    KEYPOINT_BONES,
    S2HAND_KEYPOINT_WEIGHTS,
    bone_direction_loss,
    heatmap_cross_entropy_loss,
    heatmap_integral_loss,
    huber_like,
    keypoint_2d_l1_loss,
    keypoint_2d_loss,
    keypoint_consistency_loss,
)
from hand_lib.losses.mesh import laplacian_smoothness_loss, mesh_laplacian, uniform_laplacian
from hand_lib.losses.multiview import (
    align_views,
    consistency_phase,
    distillation_loss,
    fused_points,
    multiview_consistency_loss,
    relative_rotations,
    similarity_with_rotation,
)
from hand_lib.losses.photometric import (
    IMAGE_CONFIDENCE_MIN,
    composite_over_background,
    image_confidence,
    mean_colour_loss,
    photometric_loss,
    texture_outlier_loss,
)
from hand_lib.losses.priors import (
    ANGLE_LIMITS_MAX_RAD,
    ANGLE_LIMITS_MIN_RAD,
    ANGLE_PRIOR_AXIS_WEIGHTS,
    SCALE_ANCHOR_BONE,
    SCALE_ANCHOR_LENGTH_M,
    bone_length_anchor_loss,
    finger_pose,
    joint_angle_prior_loss,
    pose_prior_loss,
    shape_regularizer,
)
from hand_lib.losses.weights import HaMuCoLossWeights, S2HandLossWeights, weighted_total

__all__ = [
    "ANGLE_LIMITS_MAX_RAD",
    "ANGLE_LIMITS_MIN_RAD",
    "ANGLE_PRIOR_AXIS_WEIGHTS",
    "HUBER_THRESHOLD_PX",
    "IMAGE_CONFIDENCE_MIN",
    "KEYPOINT_BONES",
    "S2HAND_KEYPOINT_WEIGHTS",
    "SCALE_ANCHOR_BONE",
    "SCALE_ANCHOR_LENGTH_M",
    "HaMuCoLossWeights",
    "S2HandLossWeights",
    "align_views",
    "bone_direction_loss",
    "bone_length_anchor_loss",
    "composite_over_background",
    "consistency_phase",
    "distillation_loss",
    "finger_pose",
    "fused_points",
    "heatmap_cross_entropy_loss",
    "heatmap_integral_loss",
    "huber_like",
    "image_confidence",
    "joint_angle_prior_loss",
    "keypoint_2d_l1_loss",
    "keypoint_2d_loss",
    "keypoint_consistency_loss",
    "laplacian_smoothness_loss",
    "mean_colour_loss",
    "mesh_laplacian",
    "multiview_consistency_loss",
    "photometric_loss",
    "pose_prior_loss",
    "relative_rotations",
    "shape_regularizer",
    "similarity_with_rotation",
    "texture_outlier_loss",
    "uniform_laplacian",
    "weighted_total",
]
