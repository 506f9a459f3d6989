"""Multi-view inference with a trained :class:`~hand_lib.models.hamuco.HaMuCoNet`.

:func:`predict_multiview` takes the crops of one frame seen from N = 1..8 views (any order)
and, optionally, their calibration, and returns the per-view single-view and cross-view
results, a fused root-relative hand and, when the cameras are known and N >= 2, a
triangulation-refined hand in absolute world coordinates.

Fusion (:func:`fuse_views`): each view predicts the hand root-relative (keypoint 9) in its
own camera's axes. With calibration, view ``c``'s points go to world axes by ``R_c^T``
(``M_c = [R_c | t_c]`` world-to-camera) and are averaged. Without, every view is aligned to
a reference view by a similarity transform fitted on the joints and the results are
averaged in that view's camera axes.

Refinement (:func:`refine_with_triangulation`): each view's cross-view 2D keypoints, in
crop pixels, are triangulated with the crops' intrinsics and the extrinsics; the fused hand
is then placed on the triangulated joints by a similarity transform, which gives an
absolute mesh in the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from hand_lib.geometry import similarity_procrustes, triangulate_dlt, triangulate_ransac
from hand_lib.models.hamuco import ROOT, CrossViewOutput, HaMuCoNet, SingleViewOutput

__all__ = [
    "MultiViewPrediction",
    "TriangulationRefinement",
    "fuse_views",
    "predict_multiview",
    "refine_with_triangulation",
]


@dataclass
class TriangulationRefinement:
    """Result of :func:`refine_with_triangulation`. World frame, metres.

    Attributes:
        triangulated_joints: (21, 3) triangulated keypoints; NaN where invalid.
        valid: (21,) bool, True where a keypoint was triangulated.
        joints_world: (21, 3) the triangulated keypoints where valid, elsewhere the fused
            keypoints placed by ``transform``; all NaN when fewer than 3 are valid.
        vertices_world: (V, 3) the fused mesh placed by ``transform`` (NaN likewise).
        reprojection_error_px: (N, 21) pixel error of each view against the triangulated
            keypoints (NaN where invalid).
    """

    triangulated_joints: Tensor
    valid: Tensor
    joints_world: Tensor
    vertices_world: Tensor
    reprojection_error_px: Tensor


@dataclass
class MultiViewPrediction:
    """Result of :func:`predict_multiview` for one frame of N views.

    Attributes:
        single_view: per-view single-view results, fields of :class:`SingleViewOutput`
            with leading dim N ((N, 21, 3) etc.), in the order of the input views.
        cross_view: per-view cross-view results, likewise.
        fused_joints: (21, 3) fused keypoints, metres, root-relative at keypoint 9, in the
            axes named by ``fused_frame``.
        fused_vertices: (V, 3) fused mesh, metres, same frame.
        fused_frame: ``"world"`` (calibrated: world axes) or ``"view<k>"`` (uncalibrated:
            the camera axes of input view k).
        image_size: (H, W) of the crops, pixels (for ``keypoints_2d_px``).
        refinement: the triangulation-refined hand, or None without calibration or with a
            single view.
    """

    single_view: SingleViewOutput
    cross_view: CrossViewOutput
    fused_joints: Tensor
    fused_vertices: Tensor
    fused_frame: str
    image_size: tuple[int, int]
    refinement: TriangulationRefinement | None


def fuse_views(
    joints: Tensor,
    vertices: Tensor,
    rotations: Tensor | None = None,
    *,
    reference_view: int = 0,
) -> tuple[Tensor, Tensor]:
    """Fuse per-view root-relative hands into one.

    Args:
        joints: (N, 21, 3) keypoints, metres, root-relative at keypoint 9, each in its own
            camera's axes.
        vertices: (N, V, 3) meshes, same frames.
        rotations: optional (N, 3, 3) world-to-camera rotations ``R_c``. Given: points are
            rotated to world axes (``R_c^T x``) and averaged. None: each view is aligned to
            ``reference_view`` by a similarity transform fitted on the joints (applied to its
            vertices too) and the aligned views are averaged.
        reference_view: the view whose camera axes hold the uncalibrated result.

    Returns:
        joints (21, 3) and vertices (V, 3), metres, root-relative at keypoint 9.
    """
    if joints.ndim != 3 or joints.shape[1:] != (21, 3):
        raise ValueError(f"joints must be (N, 21, 3), got {tuple(joints.shape)}")
    N = joints.shape[0]
    if vertices.ndim != 3 or vertices.shape[0] != N or vertices.shape[2] != 3:
        raise ValueError(f"vertices must be (N, V, 3) with N = {N}, got {tuple(vertices.shape)}")
    if rotations is not None:
        if tuple(rotations.shape) != (N, 3, 3):
            raise ValueError(f"rotations must be (N, 3, 3) = ({N}, 3, 3), got "
                             f"{tuple(rotations.shape)}")  # fmt: skip
        R = rotations.to(joints.dtype)
        return (joints @ R).mean(0), (vertices @ R).mean(0)  # row vectors: x @ R = R^T x
    if not 0 <= reference_view < N:
        raise ValueError(f"reference_view must be in [0, {N}), got {reference_view}")
    target = joints[reference_view].expand(N, 21, 3)
    fit = similarity_procrustes(joints, target)
    fused_joints = fit.apply(joints).mean(0)
    fused_vertices = fit.apply(vertices).mean(0)
    root = fused_joints[ROOT]
    return fused_joints - root, fused_vertices - root


def refine_with_triangulation(
    fused_joints: Tensor,
    fused_vertices: Tensor,
    keypoints_px: Tensor,
    K: Tensor,
    M: Tensor,
    *,
    confidences: Tensor | None = None,
    method: Literal["ransac", "dlt"] = "ransac",
    threshold_px: float = 10.0,
) -> TriangulationRefinement:
    """Triangulate the views' 2D keypoints and place the fused hand on them.

    Args:
        fused_joints: (21, 3) fused keypoints, metres, root-relative, world axes.
        fused_vertices: (V, 3) fused mesh, same frame.
        keypoints_px: (N, 21, 2) 2D keypoints in the pixels that ``K`` describes (the crops).
        K: (N, 3, 3) intrinsics of the crops, pixels.
        M: (N, 4, 4) or (N, 3, 4) world-to-camera extrinsics, metres.
        confidences: optional (N, 21) non-negative weights for the triangulation.
        method: ``"ransac"`` (:func:`~hand_lib.geometry.triangulate_ransac`, robust to a bad
            view) or ``"dlt"`` (:func:`~hand_lib.geometry.triangulate_dlt`, all views).
        threshold_px: RANSAC inlier threshold, pixels.

    Returns:
        :class:`TriangulationRefinement`.
    """
    if keypoints_px.ndim != 3 or keypoints_px.shape[1:] != (21, 2):
        raise ValueError(f"keypoints_px must be (N, 21, 2), got {tuple(keypoints_px.shape)}")
    if fused_joints.shape != (21, 3):
        raise ValueError(f"fused_joints must be (21, 3), got {tuple(fused_joints.shape)}")
    conf = None if confidences is None else confidences[None]
    if method == "ransac":
        tri = triangulate_ransac(keypoints_px[None], K[None], M[None], conf,
                                 threshold_px=threshold_px)  # fmt: skip
    elif method == "dlt":
        tri = triangulate_dlt(keypoints_px[None], K[None], M[None], conf)
    else:
        raise ValueError(f"method must be 'ransac' or 'dlt', got {method!r}")
    points = tri.points_world[0].to(fused_joints.dtype)  # (21, 3)
    valid = tri.valid[0]
    if int(valid.sum()) >= 3:
        target = torch.where(valid[:, None], points, torch.zeros_like(points))
        fit = similarity_procrustes(
            fused_joints[None], target[None], valid[None].to(fused_joints.dtype)
        )
        placed_joints = fit.apply(fused_joints[None])[0]
        vertices_world = fit.apply(fused_vertices[None])[0]
        joints_world = torch.where(valid[:, None], points, placed_joints)
    else:
        joints_world = torch.full_like(fused_joints, float("nan"))
        vertices_world = torch.full_like(fused_vertices, float("nan"))
    return TriangulationRefinement(
        triangulated_joints=points,
        valid=valid,
        joints_world=joints_world,
        vertices_world=vertices_world,
        reprojection_error_px=tri.reprojection_error_px[0],
    )


@torch.no_grad()
def predict_multiview(
    model: HaMuCoNet,
    images: Tensor,
    calib: tuple[Tensor, Tensor] | None = None,
    *,
    reference_view: int = 0,
    triangulation: Literal["ransac", "dlt"] = "ransac",
    threshold_px: float = 10.0,
) -> MultiViewPrediction:
    """Predict one frame's hand from N = 1..8 views, in eval mode.

    Args:
        model: a :class:`HaMuCoNet` (its training mode is restored afterwards).
        images: (N, 3, H, W) RGB crops in [0, 1], any view order.
        calib: optional ``(K, M)``: K (N, 3, 3) intrinsics *of the crops*, pixels; M (N, 4, 4)
            world-to-camera extrinsics, metres (HanCo's ``X_cam = R X_world + t``).
        reference_view: the view whose axes hold the fused result without calibration.
        triangulation: ``"ransac"`` or ``"dlt"`` (see :func:`refine_with_triangulation`).
        threshold_px: RANSAC inlier threshold, crop pixels.

    Returns:
        :class:`MultiViewPrediction`.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be (N, 3, H, W) RGB crops of one frame, got {shape}")
    N, _, H, W = images.shape
    if calib is not None:
        K, M = calib
        if tuple(K.shape) != (N, 3, 3):
            raise ValueError(f"K must be (N, 3, 3) = ({N}, 3, 3), got {tuple(K.shape)}")
        if tuple(M.shape) not in ((N, 4, 4), (N, 3, 4)):
            raise ValueError(f"M must be (N, 4, 4) = ({N}, 4, 4), got {tuple(M.shape)}")
    was_training = model.training
    model.eval()
    try:
        out = model(images[None])
    finally:
        model.train(was_training)
    single, cross = out.single_view.select_sample(0), out.cross_view.select_sample(0)
    rotations = None if calib is None else calib[1][:, :3, :3]
    fused_joints, fused_vertices = fuse_views(
        cross.joints_rel, cross.vertices_rel, rotations, reference_view=reference_view
    )
    refinement = None
    if calib is not None and N >= 2:
        refinement = refine_with_triangulation(
            fused_joints, fused_vertices, cross.keypoints_2d_px((H, W)), calib[0], calib[1],
            method=triangulation, threshold_px=threshold_px,
        )  # fmt: skip
    return MultiViewPrediction(
        single_view=single,
        cross_view=cross,  # type: ignore[arg-type]
        fused_joints=fused_joints,
        fused_vertices=fused_vertices,
        fused_frame="world" if calib is not None else f"view{reference_view}",
        image_size=(H, W),
        refinement=refinement,
    )
