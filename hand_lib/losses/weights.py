"""The original loss weights of S2HAND and HaMuCo as frozen dataclasses, and the weighted sum.

Sources: the S2HAND paper and released code (CVPR 2021, Chen et al.) and the HaMuCo released
code (ICCV 2023, Zheng et al.), as summarised in the project's REFERENCE.md sections 4 and 5.
Field names match the keys a trainer uses for the terms, so :func:`weighted_total` can check
that every term has a weight and vice versa.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from torch import Tensor

__all__ = ["HaMuCoLossWeights", "S2HandLossWeights", "weighted_total"]


def _validate(obj: object) -> None:
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{type(obj).__name__}.{f.name} must be finite and >= 0, got {value}")


@dataclass(frozen=True)
class S2HandLossWeights:
    """S2HAND's loss weights (the released training configuration).

    Attributes:
        keypoint_2d: :func:`~hand_lib.losses.keypoint_2d_loss` (Huber-like, conf^2), 1e-3.
        bone_direction: :func:`~hand_lib.losses.bone_direction_loss`, 0.1.
        heatmap_integral: :func:`~hand_lib.losses.heatmap_integral_loss`, 1e-3.
        keypoint_consistency: 2D-3D :func:`~hand_lib.losses.keypoint_consistency_loss`, 2e-4.
        scale_anchor: :func:`~hand_lib.losses.bone_length_anchor_loss` (0.0282 m), 0.1.
        angle_prior: :func:`~hand_lib.losses.joint_angle_prior_loss`, 0.1.
        shape_regularizer: :func:`~hand_lib.losses.shape_regularizer` (p=2), 1e-2.
        laplacian: :func:`~hand_lib.losses.laplacian_smoothness_loss`, 0.1.
        photometric: :func:`~hand_lib.losses.photometric_loss` (image conf^2), 5e-3.
        mean_colour: :func:`~hand_lib.losses.mean_colour_loss`, 1e-3.
        texture_outlier: :func:`~hand_lib.losses.texture_outlier_loss`, 5e-3.
        keypoint_heatmap: :func:`~hand_lib.losses.heatmap_cross_entropy_loss` of the
            encoder's keypoint head (``S2HandConfig.keypoint_features``; not in the paper), 1.
        keypoint_integral: :func:`~hand_lib.losses.heatmap_integral_loss` of the same head's
            soft-argmax keypoints (not in the paper), 1e-2.
        lifter: multiplies the shape terms (2D keypoints, bone directions, scale anchor,
            angle prior) computed again with the lifter fed the pseudo labels themselves
            instead of the keypoint head's output (:class:`hand_lib.tasks.S2HandTask`; not
            in the paper), 1.
    """

    keypoint_2d: float = 1e-3
    bone_direction: float = 0.1
    heatmap_integral: float = 1e-3
    keypoint_consistency: float = 2e-4
    scale_anchor: float = 0.1
    angle_prior: float = 0.1
    shape_regularizer: float = 1e-2
    laplacian: float = 0.1
    photometric: float = 5e-3
    mean_colour: float = 1e-3
    texture_outlier: float = 5e-3
    keypoint_heatmap: float = 1.0
    keypoint_integral: float = 1e-2
    lifter: float = 1.0

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class HaMuCoLossWeights:
    """HaMuCo's loss weights (all L1 terms; 1 unless noted, as released).

    Attributes:
        keypoint_2d_single: :func:`~hand_lib.losses.keypoint_2d_l1_loss`, single-view, 1.
        keypoint_2d_cross: the same for the cross-view output, 1.
        multiview_consistency: :func:`~hand_lib.losses.multiview_consistency_loss`, 1.
        distillation: :func:`~hand_lib.losses.distillation_loss`, 1.
        shape_prior: :func:`~hand_lib.losses.shape_regularizer` (p=1), 1.
        pose_prior_single: :func:`~hand_lib.losses.pose_prior_loss`, single-view, 0.01.
        pose_prior_cross: the same for the cross-view output, 0.01.
        keypoint_heatmap: :func:`~hand_lib.losses.heatmap_cross_entropy_loss` of the
            single-view keypoint head (``HaMuCoConfig.keypoint_features``; not in the
            paper), 1.
        keypoint_integral: :func:`~hand_lib.losses.heatmap_integral_loss` of its soft-argmax
            keypoints, pixels (not in the paper), 1e-2.
        lifter: multiplies the single-view 2D, pose and shape prior terms, the multi-view
            consistency and the angle prior computed again with the lifter fed the pseudo
            labels (:class:`hand_lib.tasks.HaMuCoTask`; not in the paper), 1.
        lifter_angle_prior: S2HAND's :func:`~hand_lib.losses.joint_angle_prior_loss` on the
            lifted hands (not in the paper; S2HAND's weight), 0.1.
    """

    keypoint_2d_single: float = 1.0
    keypoint_2d_cross: float = 1.0
    multiview_consistency: float = 1.0
    distillation: float = 1.0
    shape_prior: float = 1.0
    pose_prior_single: float = 0.01
    pose_prior_cross: float = 0.01
    keypoint_heatmap: float = 1.0
    keypoint_integral: float = 1e-2
    lifter: float = 1.0
    lifter_angle_prior: float = 0.1

    def __post_init__(self) -> None:
        _validate(self)


def weighted_total(
    terms: Mapping[str, Tensor],
    weights: S2HandLossWeights | HaMuCoLossWeights,
    *,
    check_finite: bool = True,
) -> Tensor:
    """``sum_k w_k L_k`` over the given terms (a stage may use a subset of the weights).

    Every key of ``terms`` must be a field of ``weights``: an unknown key (a typo) raises
    instead of being silently dropped. A non-finite term raises too (never skipped); pass
    ``check_finite=False`` to avoid the host synchronisation this check costs.

    Args:
        terms: name -> scalar loss tensor.
        weights: the weight set.
        check_finite: raise FloatingPointError on a NaN or infinite term.

    Returns:
        Scalar weighted sum.
    """
    if not terms:
        raise ValueError("terms is empty")
    known = {f.name for f in fields(weights)}
    unknown = sorted(set(terms) - known)
    if unknown:
        raise KeyError(f"no weight for terms {unknown}; known: {sorted(known)}")
    total: Tensor | None = None
    for name, value in terms.items():
        if value.ndim != 0:
            raise ValueError(f"term {name!r} must be a scalar tensor, got {tuple(value.shape)}")
        if check_finite and not bool(torch.isfinite(value)):
            raise FloatingPointError(f"loss term {name!r} is not finite: {float(value)}")
        part = getattr(weights, name) * value
        total = part if total is None else total + part
    assert total is not None
    return total
