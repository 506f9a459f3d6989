"""Optimiser and learning-rate schedule from their configs.

The schedule is a pure function of the step (:func:`lr_multiplier`), applied with
:class:`torch.optim.lr_scheduler.LambdaLR` stepped once per optimisation step, so the lr
of any step can be computed without running anything and is restored exactly on resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from hand_lib.train.config import OptimConfig, ScheduleConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], config: OptimConfig
) -> torch.optim.Optimizer:
    """Build the optimiser named by ``config.name`` over ``params`` (tensors or groups).

    ``"adamw"`` really builds :class:`torch.optim.AdamW` (decoupled weight decay); one of the
    original code bases built Adam for it.
    """
    params = list(params)
    if config.name == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, eps=config.eps,
            weight_decay=config.weight_decay,
        )
    if config.name == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, eps=config.eps,
            weight_decay=config.weight_decay,
        )
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    raise ValueError(f"unknown optimiser {config.name!r}")


def milestone_steps(config: ScheduleConfig, steps_per_epoch: int) -> tuple[int, ...]:
    """The steps at which a ``multistep`` schedule multiplies the lr by ``gamma``."""
    return tuple(int(round(m * steps_per_epoch)) for m in config.milestones)


def lr_multiplier(
    step: int, config: ScheduleConfig, steps_per_epoch: int, total_steps: int
) -> float:
    """Factor on the base lr for the step with 0-based index ``step``.

    Args:
        step: number of optimisation steps already taken.
        config: the schedule.
        steps_per_epoch: optimisation steps per epoch (converts epoch milestones to steps).
        total_steps: steps in the whole run (the length of the cosine).
    """
    factor = 1.0
    if config.warmup_steps > 0 and step < config.warmup_steps:
        factor = (step + 1) / config.warmup_steps
    if config.name == "constant":
        return factor
    if config.name == "multistep":
        passed = sum(1 for m in milestone_steps(config, steps_per_epoch) if step >= m)
        return factor * config.gamma**passed
    if config.name == "cosine":
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, max(0.0, (step - config.warmup_steps) / span))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return factor * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)
    raise ValueError(f"unknown schedule {config.name!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, steps_per_epoch: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler: call ``.step()`` once after every optimisation step (even a
    skipped one, so that the lr stays a function of the global step)."""

    def multiplier(step: int) -> float:
        return lr_multiplier(step, config, steps_per_epoch, total_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
