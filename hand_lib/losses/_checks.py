"""Shape checks shared by the loss modules (private)."""

from __future__ import annotations

import torch
from torch import Tensor

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(x: object, name: str) -> Tensor:
    """Raise TypeError unless ``x`` is a floating-point tensor; return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def check_shape(x: object, expected: tuple[int | None, ...], name: str, spec: str) -> Tensor:
    """Raise ValueError unless ``x`` has ``len(expected)`` dims matching ``expected``.

    ``None`` in ``expected`` matches any size. ``spec`` is the human-readable shape named in
    the error, e.g. ``"(B, 21, 2)"``.
    """
    x = check_tensor(x, name)
    if x.ndim != len(expected) or any(
        e is not None and s != e for s, e in zip(x.shape, expected, strict=True)
    ):
        raise ValueError(f"{name} must have shape {spec}, got {tuple(x.shape)}")
    return x


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise ValueError unless the two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def check_confidence(confidence: Tensor | None, shape: tuple[int, ...], name: str) -> None:
    """Raise ValueError unless ``confidence`` is None or exactly ``shape``."""
    if confidence is None:
        return
    check_tensor(confidence, name)
    if tuple(confidence.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(confidence.shape)}")


def safe_norm(x: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm along ``dim`` whose gradient is 0 (not NaN) at exactly zero."""
    sq = (x * x).sum(dim)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), 0.0)


def weighted_mean(values: Tensor, weights: Tensor, eps: float = 1e-12) -> Tensor:
    """``sum(w * v) / sum(w)``; 0 (not NaN) when every weight is 0."""
    return (weights * values).sum() / weights.sum().clamp_min(eps)
