"""Procrustes alignment: exact recovery, reflection guard, weights, official FreiHAND variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from hand_lib.geometry import (
    SimilarityTransform,
    axis_angle_to_matrix,
    freihand_procrustes,
    kabsch,
    procrustes_align,
    similarity_procrustes,
)

F64 = torch.float64


def _random_similarity(B: int, dtype=F64, seed: int = 0) -> SimilarityTransform:
    g = torch.Generator().manual_seed(seed)
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=F64) * 1.5)
    scale = 0.5 + 2.0 * torch.rand(B, generator=g, dtype=F64)
    t = torch.randn(B, 3, generator=g, dtype=F64)
    return SimilarityTransform(R=R.to(dtype), scale=scale.to(dtype), t=t.to(dtype))


def _points(B: int, N: int, dtype=F64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, N, 3, generator=g, dtype=F64) * 0.05).to(dtype)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_similarity_recovers_known_transform(dtype, tol):
    target = _points(5, 21, dtype)
    truth = _random_similarity(5, dtype)
    # source = inverse of truth applied to target, so truth maps source onto target
    source = ((target - truth.t[:, None]) @ truth.R) / truth.scale[:, None, None]
    fit = similarity_procrustes(source, target)
    assert fit.R.dtype == dtype and fit.scale.dtype == dtype
    assert torch.allclose(fit.R, truth.R, atol=tol)
    assert torch.allclose(fit.scale, truth.scale, rtol=tol)
    assert torch.allclose(fit.t, truth.t, atol=tol)
    assert torch.allclose(fit.apply(source), target, atol=tol)
    assert torch.allclose(procrustes_align(source, target), target, atol=tol)


def test_rotation_is_proper_even_for_mirrored_target():
    source = _points(4, 21)
    target = source * torch.tensor([1.0, 1.0, -1.0], dtype=F64)  # a mirror image
    fit = similarity_procrustes(source, target)
    assert torch.allclose(torch.linalg.det(fit.R), torch.ones(4, dtype=F64))
    residual = (fit.apply(source) - target).norm(dim=-1).mean()
    assert residual > 1e-3  # a proper rotation cannot undo a mirror
    # allowing reflections recovers the mirror exactly
    fit_r = similarity_procrustes(source, target, allow_reflection=True)
    assert torch.allclose(torch.linalg.det(fit_r.R), -torch.ones(4, dtype=F64))
    assert torch.allclose(fit_r.apply(source), target, atol=1e-12)


def test_solution_is_a_least_squares_optimum():
    source = _points(3, 21, seed=3)
    target = _points(3, 21, seed=4)  # unrelated sets: a non-trivial optimum
    fit = similarity_procrustes(source, target)

    def cost(tr: SimilarityTransform) -> torch.Tensor:
        return ((tr.apply(source) - target) ** 2).sum((1, 2))

    best = cost(fit)
    small = axis_angle_to_matrix(torch.tensor([[1e-3, -2e-3, 1e-3]], dtype=F64)).expand(3, 3, 3)
    for tr in (
        SimilarityTransform(fit.R @ small, fit.scale, fit.t),
        SimilarityTransform(fit.R, fit.scale * 1.01, fit.t),
        SimilarityTransform(fit.R, fit.scale, fit.t + 1e-3),
    ):
        assert (cost(tr) > best).all()
    # a rigid fit can only be worse or equal
    assert (cost(kabsch(source, target)) >= best - 1e-15).all()


def test_weights_ignore_zero_weight_outliers_and_match_subset():
    target = _points(2, 21)
    truth = _random_similarity(2)
    source = ((target - truth.t[:, None]) @ truth.R) / truth.scale[:, None, None]
    corrupted = source.clone()
    corrupted[:, 3] += 1.0  # a gross outlier
    w = torch.ones(2, 21, dtype=F64)
    w[:, 3] = 0.0
    fit = similarity_procrustes(corrupted, target, w)
    assert torch.allclose(fit.R, truth.R, atol=1e-10)
    assert torch.allclose(fit.scale, truth.scale, rtol=1e-10)
    # integer weights equal duplicating points
    src, tgt = _points(1, 6, seed=5), _points(1, 6, seed=6)
    w2 = torch.tensor([[2.0, 1, 1, 1, 1, 3]], dtype=F64)
    dup = [0, 0, 1, 2, 3, 4, 5, 5, 5]
    a = similarity_procrustes(src, tgt, w2)
    b = similarity_procrustes(src[:, dup], tgt[:, dup])
    assert torch.allclose(a.R, b.R, atol=1e-12)
    assert torch.allclose(a.scale, b.scale, atol=1e-12)
    assert torch.allclose(a.t, b.t, atol=1e-12)


def test_kabsch_rigid_and_origin_variants():
    target = _points(3, 10)
    truth = _random_similarity(3)
    source = (target - truth.t[:, None]) @ truth.R  # rigid: scale 1
    fit = kabsch(source, target)
    assert torch.equal(fit.scale, torch.ones(3, dtype=F64))
    assert torch.allclose(fit.R, truth.R, atol=1e-10)
    assert torch.allclose(fit.t, truth.t, atol=1e-10)
    # about the origin: pure rotation recovered, t exactly 0
    rotated = target @ truth.R.transpose(-1, -2)
    fit0 = kabsch(target, rotated, with_translation=False)
    assert torch.equal(fit0.t, torch.zeros(3, 3, dtype=F64))
    assert torch.allclose(fit0.R, truth.R, atol=1e-10)
    assert torch.allclose(procrustes_align(source, target, with_scale=False), target, atol=1e-10)


def test_gradients_are_correct():
    source = _points(2, 6, seed=7).requires_grad_(True)
    target = _points(2, 6, seed=8).requires_grad_(True)

    def f(s, t):
        return procrustes_align(s, t)

    assert torch.autograd.gradcheck(f, (source, target), eps=1e-6, atol=1e-5)


def test_degenerate_source_gives_finite_zero_scale():
    source = torch.zeros(1, 5, 3, dtype=F64) + 0.3
    target = _points(1, 5)
    fit = similarity_procrustes(source, target)
    assert torch.isfinite(fit.R).all() and torch.isfinite(fit.t).all()
    assert float(fit.scale) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(fit.apply(source), target.mean(1, keepdim=True).expand(1, 5, 3))


def test_input_validation():
    good = _points(2, 5)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        similarity_procrustes(good[0], good[0])
    with pytest.raises(ValueError, match="same shape"):
        similarity_procrustes(good, good[:, :4])
    with pytest.raises(ValueError, match="float32 or float64"):
        similarity_procrustes(good.half(), good.half())
    with pytest.raises(ValueError, match="non-negative"):
        similarity_procrustes(good, good, -torch.ones(2, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        similarity_procrustes(good, good, torch.ones(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="batch"):
        similarity_procrustes(good, good).apply(_points(3, 5))


def _scipy_official(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The official protocol, per sample, with scipy doing the orthogonal Procrustes."""
    gt_c, pred_c = gt - gt.mean(0), pred - pred.mean(0)
    s_gt, s_pred = np.linalg.norm(gt_c) + 1e-8, np.linalg.norm(pred_c) + 1e-8
    R, s = orthogonal_procrustes(gt_c / s_gt, pred_c / s_pred)
    return (pred_c / s_pred) @ R.T * s * s_gt + gt.mean(0)


def test_freihand_variant_matches_scipy_reference_and_allows_reflection():
    gt = _points(6, 21, seed=9)
    truth = _random_similarity(6, seed=10)
    pred = truth.apply(gt) + 0.004 * _points(6, 21, seed=11)
    fit = freihand_procrustes(pred, gt)
    aligned = fit.apply(pred)
    for b in range(6):
        ref = _scipy_official(pred[b].numpy(), gt[b].numpy())
        np.testing.assert_allclose(aligned[b].numpy(), ref, atol=1e-12)
    # without reflections, it is the least-squares similarity up to the 1e-8 norm offsets
    assert torch.allclose(aligned, similarity_procrustes(pred, gt).apply(pred), atol=1e-7)
    # the official step does not exclude reflections: a mirrored prediction aligns exactly
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    fit_m = freihand_procrustes(mirrored, gt)
    assert torch.allclose(torch.linalg.det(fit_m.R), -torch.ones(6, dtype=F64))
    assert torch.allclose(fit_m.apply(mirrored), gt, atol=1e-7)
    ref = _scipy_official(mirrored[0].numpy(), gt[0].numpy())
    np.testing.assert_allclose(fit_m.apply(mirrored)[0].numpy(), ref, atol=1e-12)
    safe = freihand_procrustes(mirrored, gt, allow_reflection=False)
    assert torch.allclose(torch.linalg.det(safe.R), torch.ones(6, dtype=F64))
