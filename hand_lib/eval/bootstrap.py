"""Confidence intervals that respect how test data is grouped: a bootstrap over sequences.

Frames of one sequence share a subject, a camera rig and nearly a pose, so they are not
independent samples: an interval that resamples frames (or views) is too narrow. Here the
unit of resampling is the *sequence* (any group id will do): each bootstrap replicate draws
as many sequences as the split has, with replacement, and takes the mean over all samples
of the drawn sequences (a sequence with more samples weighs more, as in the point estimate).

A comparison of two methods on the *same* samples is a paired bootstrap of the per-sample
difference (same replicates of sequences for both), which is much tighter than two separate
intervals. :func:`compare` turns it into a verdict on a claim "A is lower than B":

- ``holds``: the whole interval of ``mean(A - B)`` lies below 0;
- ``does not hold``: it lies above 0 (B is lower beyond noise);
- ``within noise``: it contains 0.

Percentile intervals, ``n_resamples`` replicates from a seeded NumPy generator (the same
seed gives the same interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Comparison", "Interval", "compare", "sequence_bootstrap", "verdict"]

Verdict = Literal["holds", "does not hold", "within noise"]


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap confidence interval (same unit as the values).

    Attributes:
        mean: the point estimate, mean over all samples.
        low, high: the interval's bounds.
        level: the interval's coverage, e.g. 0.95.
        groups: number of groups (sequences) resampled; samples: number of samples.
    """

    mean: float
    low: float
    high: float
    level: float
    groups: int
    samples: int

    @property
    def half_width(self) -> float:
        """Half the interval's width: the "+-" of a table."""
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class Comparison:
    """A paired comparison "A < B" (see :func:`compare`).

    Attributes:
        difference: :class:`Interval` of ``mean(A - B)``.
        verdict: "holds", "does not hold" or "within noise".
    """

    difference: Interval
    verdict: Verdict


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {array.shape}")
    return array


def sequence_bootstrap(values: ArrayLike, groups: ArrayLike, *, n_resamples: int = 2000,
                       level: float = 0.95, seed: int = 0) -> Interval:
    """The mean of ``values`` with a bootstrap interval over the groups.

    Args:
        values: (N,) one value per sample (e.g. per-sample PA-MPJPE, mm). Non-finite values
            are an error: decide what a failed sample scores before calling.
        groups: (N,) the group of each sample (e.g. the sequence id).
        n_resamples: bootstrap replicates.
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling.

    Returns:
        :class:`Interval`.

    Raises:
        ValueError: mismatched or empty inputs, non-finite values, a bad level.
    """
    v = _as_1d(values, "values")
    g = np.asarray(groups)
    if g.shape != v.shape:
        raise ValueError(f"groups must have the shape of values {v.shape}, got {g.shape}")
    if v.size == 0:
        raise ValueError("no samples to bootstrap")
    if not np.isfinite(v).all():
        raise ValueError(f"{int((~np.isfinite(v)).sum())} non-finite values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    _, inverse = np.unique(g, return_inverse=True)
    G = int(inverse.max()) + 1
    sums = np.bincount(inverse, weights=v, minlength=G)
    counts = np.bincount(inverse, minlength=G).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, G, size=(n_resamples, G))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(mean=float(v.mean()), low=float(low), high=float(high), level=level,
                    groups=G, samples=int(v.size))


def verdict(difference: Interval) -> Verdict:
    """The verdict on "A < B" from the interval of ``mean(A - B)``."""
    if difference.high < 0:
        return "holds"
    if difference.low > 0:
        return "does not hold"
    return "within noise"


def compare(a: ArrayLike, b: ArrayLike, groups: ArrayLike, *, n_resamples: int = 2000,
            level: float = 0.95, seed: int = 0) -> Comparison:
    """Paired bootstrap of the claim "A is lower than B" on the same samples.

    Args:
        a, b: (N,) per-sample values of the two methods (e.g. errors), sample for sample.
        groups: (N,) group (sequence) of each sample.

    Returns:
        :class:`Comparison` with the interval of ``mean(a - b)`` and the verdict.
    """
    va, vb = _as_1d(a, "a"), _as_1d(b, "b")
    if va.shape != vb.shape:
        raise ValueError(f"a and b must be paired sample for sample, got {va.shape} and "
                         f"{vb.shape}")
    diff = sequence_bootstrap(va - vb, groups, n_resamples=n_resamples, level=level, seed=seed)
    return Comparison(difference=diff, verdict=verdict(diff))
