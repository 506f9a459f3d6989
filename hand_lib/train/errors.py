"""Errors raised by the trainer, its config loader and its checkpoint reader.

Each message says what is wrong and where (file, key path, step), so that a failed run can be
fixed without a debugger:

    ConfigError: configs/shape.yaml: train.epoch: unknown key (known keys in 'train': ...)
    TrainingDiverged: 10 consecutive bad steps (non-finite loss or gradients), last at step 412
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file or dict has an unknown key, a missing key or a value of the wrong type."""


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or lacks a key the reader needs."""


class TrainingDiverged(RuntimeError):
    """Too many consecutive optimisation steps had a non-finite loss or gradient norm."""
