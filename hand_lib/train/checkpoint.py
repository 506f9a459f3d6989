"""The one checkpoint format of the trainer: written atomically, read with clear errors.

A checkpoint is a dict saved with ``torch.save``:

- ``format``: ``"hand_lib.train/1"``;
- ``model``: the task's ``state_dict()``;
- ``optimizer``, ``scheduler``: their state dicts; ``scaler``: GradScaler state or None;
- ``step``: optimisation steps completed; ``epoch``: epoch in progress (0-based);
  ``batch_in_epoch``: batches of that epoch already consumed (the sampler position);
- ``world_size``: processes that wrote it; ``rng``: one
  :func:`hand_lib.train.rng.capture_rng_state` per rank;
- ``guard``: bad-step counters; ``elapsed_s``: training wall time so far;
- ``config``: the config as plain dicts (``load_config(payload["config"], cls)`` rebuilds it).

Only plain containers, numbers, strings and tensors are stored, so the files load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from hand_lib.train.errors import CheckpointError

CHECKPOINT_FORMAT = "hand_lib.train/1"
REQUIRED_KEYS = (
    "format", "model", "optimizer", "scheduler", "scaler", "step", "epoch", "batch_in_epoch",
    "world_size", "rng", "guard", "elapsed_s", "config",
)
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``<directory>/step_<step:08d>.pt``."""
    return Path(directory) / f"step_{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest step first (temporary files ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically.

    The bytes go to a temporary file in the same folder, are flushed and fsync'ed, and the
    file is renamed over ``path`` with ``os.replace``: a crash at any moment leaves either the
    old file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (not supported on every platform; best effort there)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device | None = "cpu",
    required_keys: tuple[str, ...] = REQUIRED_KEYS,
) -> dict[str, Any]:
    """Read a checkpoint and check that it has ``required_keys``.

    Raises:
        CheckpointError: naming the file, and the missing key if that is the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling failure means a bad or foreign file
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(payload).__name__}")
    for key in required_keys:
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint has no key {key!r}")
    if "format" in required_keys and payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: format {payload['format']!r}, this reader expects {CHECKPOINT_FORMAT!r}"
        )
    return payload


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; return the deleted paths."""
    old = list_checkpoints(directory)[:-keep] if keep > 0 else list_checkpoints(directory)
    for path in old:
        path.unlink(missing_ok=True)
    return old
