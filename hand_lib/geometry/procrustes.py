"""Batched Procrustes alignment of point sets (similarity, rigid, FreiHAND-official).

Convention everywhere in this module: a transform maps *source* points onto *target* points as
``aligned = scale * source @ R.T + t`` (row-vector points, ``R`` acts on column vectors).

Two families live here:

- :func:`similarity_procrustes` / :func:`kabsch`: the weighted least-squares solutions
  (Umeyama 1991) with the reflection guard, so ``R`` is always a proper rotation
  (``det R = +1``). These are what the library's own metrics and losses use.
- :func:`freihand_procrustes`: the alignment of the official FreiHAND evaluation script,
  reproduced step for step so that numbers can be compared with published FreiHAND results.
  It normalises both sets by their Frobenius norms and, like ``scipy.linalg.orthogonal_procrustes``
  which the script calls, does *not* exclude reflections by default.

All functions are differentiable (through ``torch.linalg.svd``). The gradient is undefined where
the 3x3 cross-covariance has repeated singular values (e.g. perfectly symmetric or collinear
point sets); that is a property of the problem, not of the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "FreiHandAlignment",
    "SimilarityTransform",
    "freihand_procrustes",
    "kabsch",
    "procrustes_align",
    "similarity_procrustes",
]

_FLOAT_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class SimilarityTransform:
    """A batch of similarity transforms ``x -> scale * x @ R.T + t``.

    Attributes:
        R: (B, 3, 3) rotation matrices (``det = +1`` unless reflections were allowed).
        scale: (B,) positive scale factors (unitless; 1 for a rigid transform).
        t: (B, 3) translations, in the units of the target points (metres in this library).
    """

    R: Tensor
    scale: Tensor
    t: Tensor

    def apply(self, points: Tensor) -> Tensor:
        """Transform points.

        Args:
            points: (B, N, 3) points in the source frame (any N, e.g. mesh vertices aligned
                with a transform estimated on joints).

        Returns:
            (B, N, 3) transformed points.
        """
        _check_points(points, "points")
        if points.shape[0] != self.R.shape[0]:
            raise ValueError(
                f"points has batch {points.shape[0]}, transform has batch {self.R.shape[0]}"
            )
        return self.scale[:, None, None] * (points @ self.R.transpose(-1, -2)) + self.t[:, None]


def _check_points(points: Tensor, name: str) -> None:
    if not isinstance(points, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(points.shape)}")
    if points.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {points.dtype}")


def _check_pair(source: Tensor, target: Tensor, weights: Tensor | None) -> None:
    _check_points(source, "source")
    _check_points(target, "target")
    if source.shape != target.shape:
        raise ValueError(
            "source and target must have the same shape (B, N, 3), got "
            f"{tuple(source.shape)} and {tuple(target.shape)}"
        )
    if source.dtype != target.dtype:
        raise ValueError(f"source and target dtypes differ: {source.dtype} vs {target.dtype}")
    if source.shape[1] < 1:
        raise ValueError("source and target need at least one point (N >= 1)")
    if weights is not None:
        if tuple(weights.shape) != tuple(source.shape[:2]):
            raise ValueError(
                f"weights must have shape (B, N) = {tuple(source.shape[:2])}, "
                f"got {tuple(weights.shape)}"
            )
        if bool((weights < 0).any()):
            raise ValueError("weights must be non-negative")


def _rotation_from_cov(cov: Tensor, allow_reflection: bool) -> tuple[Tensor, Tensor]:
    """Best rotation for a cross-covariance ``cov = sum_i w_i y_i x_i^T``.

    Returns ``R`` (B, 3, 3) maximising ``trace(R^T cov)`` and the matching ``trace(S D)``
    (B,), the sum of singular values with the sign flip of the reflection guard applied.
    The 3x3 SVD runs in float64 whatever the input dtype: it is cheap and removes the float32
    failure mode where nearly equal singular values swap.
    """
    U, S, Vh = torch.linalg.svd(cov.to(torch.float64))
    if allow_reflection:
        d = torch.ones_like(S[:, -1])
    else:
        # det(U V^T) is +-1; a sign of 0 is impossible for orthogonal factors, but guard anyway.
        d = torch.where(torch.linalg.det(U @ Vh) < 0, -1.0, 1.0).to(S.dtype)
    D = torch.ones_like(S)
    D = torch.cat([D[:, :2], d[:, None]], dim=1)
    R = (U * D[:, None, :]) @ Vh
    trace_sd = (S * D).sum(-1)
    return R.to(cov.dtype), trace_sd.to(cov.dtype)


def _procrustes(
    source: Tensor,
    target: Tensor,
    weights: Tensor | None,
    *,
    with_scale: bool,
    with_translation: bool,
    allow_reflection: bool,
    eps: float,
) -> SimilarityTransform:
    _check_pair(source, target, weights)
    B, N, _ = source.shape
    if weights is None:
        w = torch.full((B, N), 1.0 / N, dtype=source.dtype, device=source.device)
    else:
        w = weights.to(source.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(eps)
    if with_translation:
        mu_src = (w[..., None] * source).sum(1)  # (B, 3)
        mu_tgt = (w[..., None] * target).sum(1)
    else:
        mu_src = torch.zeros_like(source[:, 0])
        mu_tgt = torch.zeros_like(target[:, 0])
    src_c = source - mu_src[:, None]
    tgt_c = target - mu_tgt[:, None]
    cov = (tgt_c * w[..., None]).transpose(1, 2) @ src_c  # (B, 3, 3) = sum_i w_i y_i x_i^T
    R, trace_sd = _rotation_from_cov(cov, allow_reflection)
    if with_scale:
        var_src = (w * (src_c * src_c).sum(-1)).sum(-1)
        scale = trace_sd / var_src.clamp_min(eps)
    else:
        scale = torch.ones_like(trace_sd)
    t = mu_tgt - scale[:, None] * (mu_src[:, None] @ R.transpose(-1, -2))[:, 0]
    return SimilarityTransform(R=R, scale=scale, t=t)


def similarity_procrustes(
    source: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    *,
    allow_reflection: bool = False,
    eps: float = 1e-12,
) -> SimilarityTransform:
    """Weighted similarity Procrustes (rotation, scale, translation), batched.

    Minimises ``sum_i w_i || scale * R x_i + t - y_i ||^2`` (Umeyama's closed form).

    Args:
        source: (B, N, 3) points to move (e.g. predicted joints), float32 or float64.
        target: (B, N, 3) reference points (e.g. ground truth), same dtype and units.
        weights: optional (B, N) non-negative per-point weights (normalised internally; all
            zero for a sample gives a meaningless transform for that sample).
        allow_reflection: if True, ``R`` may be an improper rotation (det -1). Default False,
            the reflection-safe solution.
        eps: guards divisions for degenerate inputs. A source set that has collapsed to one
            point gets scale 0 (its aligned copy is the target centroid).

    Returns:
        :class:`SimilarityTransform` with R (B, 3, 3), scale (B,), t (B, 3); apply it with
        ``.apply(source)``.
    """
    return _procrustes(
        source, target, weights, with_scale=True, with_translation=True,
        allow_reflection=allow_reflection, eps=eps,
    )


def kabsch(
    source: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    *,
    with_translation: bool = True,
    allow_reflection: bool = False,
    eps: float = 1e-12,
) -> SimilarityTransform:
    """Weighted rigid (Kabsch) alignment: rotation (and translation), scale fixed to 1.

    Args:
        source: (B, N, 3) points to move, float32 or float64.
        target: (B, N, 3) reference points, same dtype and units.
        weights: optional (B, N) non-negative per-point weights.
        with_translation: if False, solve for the rotation about the origin only (``t = 0``),
            for point sets that already share their origin (e.g. root-relative joints).
        allow_reflection: allow det(R) = -1 (default False).
        eps: guards the weight normalisation.

    Returns:
        :class:`SimilarityTransform` with ``scale == 1``.
    """
    return _procrustes(
        source, target, weights, with_scale=False, with_translation=with_translation,
        allow_reflection=allow_reflection, eps=eps,
    )


def procrustes_align(
    source: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    *,
    with_scale: bool = True,
) -> Tensor:
    """Align ``source`` onto ``target`` and return the aligned source.

    Args:
        source: (B, N, 3) points to move.
        target: (B, N, 3) reference points.
        weights: optional (B, N) non-negative per-point weights.
        with_scale: similarity (True, default) or rigid (False) alignment.

    Returns:
        (B, N, 3) aligned source points, in the target's units and frame.
    """
    fit = similarity_procrustes if with_scale else kabsch
    return fit(source, target, weights).apply(source)


@dataclass(frozen=True)
class FreiHandAlignment:
    """The transform of the official FreiHAND evaluation, kept in its own factored form.

    The official script aligns a prediction ``P`` to ground truth ``G`` as::

        aligned = ((P - pred_centroid) / pred_norm) @ R.T * procrustes_scale * gt_norm
                  + gt_centroid

    Attributes:
        R: (B, 3, 3) orthogonal matrices (det may be -1: the script does not exclude
            reflections).
        procrustes_scale: (B,) sum of singular values returned by the orthogonal Procrustes
            step on the unit-norm sets (unitless).
        gt_norm: (B,) Frobenius norm of the centred ground truth plus 1e-8 (metres).
        pred_norm: (B,) Frobenius norm of the centred prediction plus 1e-8 (metres).
        gt_centroid: (B, 3) ground-truth centroid (metres).
        pred_centroid: (B, 3) prediction centroid (metres).
    """

    R: Tensor
    procrustes_scale: Tensor
    gt_norm: Tensor
    pred_norm: Tensor
    gt_centroid: Tensor
    pred_centroid: Tensor

    def as_similarity(self) -> SimilarityTransform:
        """The same map as a :class:`SimilarityTransform` (``scale = s * gt_norm / pred_norm``)."""
        scale = self.procrustes_scale * self.gt_norm / self.pred_norm
        t = self.gt_centroid - scale[:, None] * (
            self.pred_centroid[:, None] @ self.R.transpose(-1, -2)
        )[:, 0]
        return SimilarityTransform(R=self.R, scale=scale, t=t)

    def apply(self, points: Tensor) -> Tensor:
        """Apply the official alignment to (B, N, 3) points in the prediction's frame."""
        return self.as_similarity().apply(points)


def freihand_procrustes(
    pred: Tensor,
    gt: Tensor,
    *,
    allow_reflection: bool = True,
    norm_eps: float = 1e-8,
) -> FreiHandAlignment:
    """Alignment exactly as the official FreiHAND ``eval.py`` (``align_w_scale``) computes it.

    Steps, per sample: centre both sets; divide each by its Frobenius norm (+ ``norm_eps``,
    as the script adds 1e-8); orthogonal Procrustes between the unit-norm sets, keeping the
    scale it returns (the sum of singular values); then undo the ground truth's scale and
    centre. For non-degenerate inputs with ``allow_reflection=False`` the result equals
    :func:`similarity_procrustes` up to the 1e-8 offsets.

    Args:
        pred: (B, N, 3) predicted points, metres.
        gt: (B, N, 3) ground-truth points, metres.
        allow_reflection: True (default) reproduces ``scipy.linalg.orthogonal_procrustes``,
            which does not exclude improper rotations. Set False for the reflection-safe
            variant.
        norm_eps: the constant added to both Frobenius norms (1e-8 in the script).

    Returns:
        :class:`FreiHandAlignment`; ``.apply(pred)`` gives the aligned prediction.
    """
    _check_pair(pred, gt, None)
    gt_centroid = gt.mean(1)
    pred_centroid = pred.mean(1)
    gt_c = gt - gt_centroid[:, None]
    pred_c = pred - pred_centroid[:, None]
    gt_norm = gt_c.flatten(1).norm(dim=1) + norm_eps
    pred_norm = pred_c.flatten(1).norm(dim=1) + norm_eps
    gt_u = gt_c / gt_norm[:, None, None]
    pred_u = pred_c / pred_norm[:, None, None]
    # The script solves min ||G R - P|| (R maps ground truth onto prediction), then applies
    # R.T to the prediction; in our "source -> target" convention that is the rotation
    # taking pred onto gt, whose cross-covariance is gt_u^T pred_u.
    R, trace_sd = _rotation_from_cov(gt_u.transpose(1, 2) @ pred_u, allow_reflection)
    return FreiHandAlignment(
        R=R,
        procrustes_scale=trace_sd,
        gt_norm=gt_norm,
        pred_norm=pred_norm,
        gt_centroid=gt_centroid,
        pred_centroid=pred_centroid,
    )
