"""The trainer's configuration: frozen dataclasses, one per concern.

Load them from YAML with :func:`hand_lib.train.config_io.load_config` (unknown keys and wrong
types are errors), change them with :func:`~hand_lib.train.config_io.override`, write them
with :func:`~hand_lib.train.config_io.dump_config`. Nothing here is a global: every run gets
its own config object and nothing can mutate it.

``ExperimentConfig.model``/``loss``/``data`` are free-form read-only mappings by default. A
method that wants them checked too subclasses ``ExperimentConfig`` and gives those fields
its own dataclass types::

    @dataclass(frozen=True)
    class ShapeStageConfig(ExperimentConfig):
        model: S2HandModelConfig = field(default_factory=S2HandModelConfig)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hand_lib.train.errors import ConfigError
from hand_lib.train.frozen import FrozenDict


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings.

    ``adamw`` builds :class:`torch.optim.AdamW` (decoupled weight decay); ``adam`` builds
    :class:`torch.optim.Adam`, whose ``weight_decay`` is an L2 term added to the gradient.
    ``momentum`` and ``nesterov`` are used by ``sgd`` only.
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        _require(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        wd = self.weight_decay
        _require(wd >= 0, f"optim.weight_decay must be >= 0, got {wd}")
        betas = self.betas
        _require(all(0 <= b < 1 for b in betas), f"optim.betas must be in [0, 1), got {betas}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, evaluated once per optimisation step.

    - ``constant``: the base lr.
    - ``multistep``: multiply by ``gamma`` at each milestone. Milestones are in epochs and
      may be fractional (the scaled-down profiles need that); epoch ``m`` starts at step
      ``round(m * steps_per_epoch)``.
    - ``cosine``: half a cosine from the base lr to ``min_lr_ratio * lr`` over the run.

    ``warmup_steps`` > 0 ramps the multiplier linearly from ``1 / warmup_steps`` to 1 first.
    """

    name: Literal["multistep", "cosine", "constant"] = "constant"
    milestones: tuple[float, ...] = ()
    gamma: float = 0.5
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        ms = self.milestones
        _require(
            list(ms) == sorted(ms) and all(m > 0 for m in ms),
            f"schedule.milestones must be positive and increasing, got {ms}",
        )
        _require(self.gamma > 0, f"schedule.gamma must be > 0, got {self.gamma}")
        _require(self.warmup_steps >= 0, f"schedule.warmup_steps must be >= 0: {self.warmup_steps}")
        _require(
            0 <= self.min_lr_ratio <= 1,
            f"schedule.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}",
        )
        _require(
            self.name == "multistep" or not self.milestones,
            f"schedule.milestones is set but schedule.name is {self.name!r}",
        )


@dataclass(frozen=True)
class TrainConfig:
    """The loop itself.

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per optimisation step *per process* (DDP multiplies it).
        grad_clip_norm: clip the global gradient L2 norm to this value; None: no clipping.
        amp: autocast on CUDA (ignored on CPU, with one info message).
        amp_dtype: ``float16`` (with a gradient scaler) or ``bfloat16`` (no scaler needed).
        checkpoint_every_steps: write a checkpoint every N steps (and always at the end).
        keep_checkpoints: how many step checkpoints to keep (oldest deleted first).
        log_every_steps: write a CSV row every N steps (bad steps are always logged).
        max_bad_steps: raise ``TrainingDiverged`` after this many *consecutive* steps with a
            non-finite loss or gradient norm. Each bad step is skipped, counted and logged.
        seed: seeds shuffling and the RNGs (process rank is added for the RNGs under DDP).
        num_workers: DataLoader worker processes.
        drop_last: drop the last incomplete batch of each epoch.
        shuffle: shuffle the training set, with a permutation fixed by (seed, epoch).
        validate_every_epochs: run ``validation_step`` over the validation set every N epochs.
        validate_every_steps: also every N optimisation steps (before that step's checkpoint,
            so a checkpoint implies its validation row); None: only by epochs. With it, the
            step 0 (untrained) network is validated too, the first point of a learning curve.
        progress_bar: show a tqdm bar (rank 0 only).
        tensorboard: also log to TensorBoard when ``tensorboard`` is installed.
        find_unused_parameters: passed to DistributedDataParallel.
    """

    epochs: int = 1
    batch_size: int = 8
    grad_clip_norm: float | None = None
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    checkpoint_every_steps: int = 1000
    keep_checkpoints: int = 3
    log_every_steps: int = 10
    max_bad_steps: int = 10
    seed: int = 0
    num_workers: int = 0
    drop_last: bool = True
    shuffle: bool = True
    validate_every_epochs: int = 1
    validate_every_steps: int | None = None
    progress_bar: bool = True
    tensorboard: bool = True
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every_steps", "keep_checkpoints",
                     "log_every_steps", "max_bad_steps", "validate_every_epochs"):
            value = getattr(self, name)
            _require(value >= 1, f"train.{name} must be >= 1, got {value}")
        _require(self.num_workers >= 0, f"train.num_workers must be >= 0, got {self.num_workers}")
        _require(self.validate_every_steps is None or self.validate_every_steps >= 1,
                 f"train.validate_every_steps must be >= 1 or null, got "
                 f"{self.validate_every_steps}")
        _require(
            self.grad_clip_norm is None or self.grad_clip_norm > 0,
            f"train.grad_clip_norm must be > 0 or null, got {self.grad_clip_norm}",
        )


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs: the trainer's sections plus the caller's sections.

    ``model``, ``loss`` and ``data`` belong to the method being trained; the trainer never
    reads them. They are read-only mappings unless a subclass types them.
    """

    name: str = "experiment"
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: Mapping[str, Any] = field(default_factory=FrozenDict)
    loss: Mapping[str, Any] = field(default_factory=FrozenDict)
    data: Mapping[str, Any] = field(default_factory=FrozenDict)
