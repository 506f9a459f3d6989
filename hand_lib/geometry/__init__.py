"""Pure tensor geometry: rotations, cameras, Procrustes alignment, triangulation.

The bottom layer of hand_lib: it imports nothing else from the package.
"""

from hand_lib.geometry.camera import project_points, world_to_camera
from hand_lib.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "project_points",
    "rot6d_to_matrix",
    "world_to_camera",
]
