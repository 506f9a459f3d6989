"""Choosing the device and moving nested batches onto it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``device`` as a torch.device; None picks ``cuda:<local_rank>`` if available, else CPU."""
    if device is None:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nested dict/list/tuple/namedtuple/dataclass batch to ``device``.

    Mappings come back as plain dicts. Non-tensor leaves (strings, numbers, None) are
    returned unchanged.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: move_to_device(getattr(batch, f.name), device)
                   for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch
