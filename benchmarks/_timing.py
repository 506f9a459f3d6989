"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``).

On a shared machine other jobs come and go within seconds, so a case timed for a second
and its peer timed the next second can see different machines. :func:`time_interleaved`
calls the cases in turn, one call each per round, so every case sees the same load and
the per-round ratio stays meaningful even when absolute times drift.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], device: torch.device, min_time: float = 0.5, max_reps: int = 200,
    min_reps: int = 3, warmup: int = 1,
) -> float:  # fmt: skip
    """Median wall time of ``fn`` in milliseconds: ``warmup`` untimed calls, then at least
    ``min_reps`` and at most ``max_reps`` timed calls, for about ``min_time`` seconds."""
    for _ in range(warmup):
        fn()
    sync(device)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_reps or (
        time.perf_counter() - start < min_time and len(samples) < max_reps
    ):
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def time_interleaved(
    fns: list[Callable[[], Any]], device: torch.device, steps: int, warmup: int
) -> list[list[float]]:
    """Wall time of each call of each of ``fns``, milliseconds, calling them in turn.

    ``warmup`` untimed rounds first, then ``steps`` timed rounds of one call each.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync(device)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(steps):
        for fn, out in zip(fns, samples, strict=True):
            t0 = time.perf_counter()
            fn()
            sync(device)
            out.append((time.perf_counter() - t0) * 1e3)
    return samples


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]`` (samples from one
    :func:`time_interleaved` run)."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def steps_for(fns: list[Callable[[], Any]], device: torch.device, budget_s: float,
              lo: int = 5, hi: int = 200) -> int:  # fmt: skip
    """How many interleaved rounds fit in ``budget_s`` seconds (one probe call each)."""
    t0 = time.perf_counter()
    for fn in fns:
        fn()
    sync(device)
    per_round = max(time.perf_counter() - t0, 1e-6)
    return max(lo, min(hi, int(budget_s / per_round)))
