"""The sequence bootstrap: intervals against a reference and against independence."""

from __future__ import annotations

import numpy as np
import pytest

from hand_lib.eval import compare, sequence_bootstrap


def test_interval_matches_a_direct_resampling_of_groups() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), rng.integers(1, 5, 12))
    values = rng.normal(10.0, 2.0, len(groups)) + groups * 0.3
    got = sequence_bootstrap(values, groups, n_resamples=500, seed=3)
    # reference: the same replicates, drawn and averaged the slow way
    draws = np.random.default_rng(3).integers(0, 12, size=(500, 12))
    means = [np.concatenate([values[groups == k] for k in row]).mean() for row in draws]
    low, high = np.quantile(means, [0.025, 0.975])
    assert got.mean == pytest.approx(values.mean())
    assert (got.low, got.high) == pytest.approx((low, high), rel=1e-12)
    assert got.groups == 12 and got.samples == len(values)


def test_grouped_interval_is_wider_than_a_per_sample_one() -> None:
    # 40 sequences of 8 nearly identical frames: the information is in 40 numbers, not 320
    rng = np.random.default_rng(0)
    seq_level = rng.normal(15.0, 3.0, 40)
    values = np.repeat(seq_level, 8) + rng.normal(0.0, 0.1, 320)
    groups = np.repeat(np.arange(40), 8)
    by_sequence = sequence_bootstrap(values, groups, seed=0)
    by_frame = sequence_bootstrap(values, np.arange(320), seed=0)
    assert by_sequence.half_width > 2.4 * by_frame.half_width
    # and it covers the spread of the sequence means: 3 / sqrt(40) ~ 0.47 mm standard error
    assert 0.7 < by_sequence.half_width < 1.3


def test_compare_verdicts() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(30), 4)
    base = rng.normal(12.0, 3.0, 120)
    better = base - 1.0 + rng.normal(0.0, 0.2, 120)
    same = base + rng.normal(0.0, 0.2, 120)
    assert compare(better, base, groups).verdict == "holds"
    assert compare(base, better, groups).verdict == "does not hold"
    assert compare(same, base, groups).verdict == "within noise"
    # paired: a 1 mm shift is resolved although the two marginal intervals overlap
    a, b = sequence_bootstrap(better, groups), sequence_bootstrap(base, groups)
    assert a.high > b.low


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        sequence_bootstrap([1.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="groups must have the shape"):
        sequence_bootstrap([1.0, 2.0], [0])
    with pytest.raises(ValueError, match="1-D"):
        sequence_bootstrap(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no samples"):
        sequence_bootstrap([], [])
    with pytest.raises(ValueError, match="paired"):
        compare([1.0, 2.0], [1.0], [0, 1])
