"""Pure tensor geometry: rotations, cameras, Procrustes alignment, triangulation.

The bottom layer of hand_lib: it imports nothing else from the package.
"""

from hand_lib.geometry.camera import project_points, solve_translation, world_to_camera
from hand_lib.geometry.procrustes import (
    FreiHandAlignment,
    SimilarityTransform,
    freihand_procrustes,
    kabsch,
    procrustes_align,
    similarity_procrustes,
)
from hand_lib.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)
from hand_lib.geometry.triangulation import (
    RansacTriangulation,
    Triangulation,
    reprojection_error,
    triangulate_dlt,
    triangulate_ransac,
)

__all__ = [
    "FreiHandAlignment",
    "RansacTriangulation",
    "SimilarityTransform",
    "Triangulation",
    "axis_angle_to_matrix",
    "freihand_procrustes",
    "kabsch",
    "matrix_to_axis_angle",
    "matrix_to_rot6d",
    "procrustes_align",
    "project_points",
    "reprojection_error",
    "rot6d_to_matrix",
    "similarity_procrustes",
    "solve_translation",
    "triangulate_dlt",
    "triangulate_ransac",
    "world_to_camera",
]
