"""One trainer for every S2HAND stage and for HaMuCo: frozen YAML configs, AMP, DDP, gradient
clipping, a NaN/inf guard, atomic checkpoints with exact resume, CSV/TensorBoard logs, and the
original training schedules as presets."""

from hand_lib.train.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from hand_lib.train.config import ExperimentConfig, OptimConfig, ScheduleConfig, TrainConfig
from hand_lib.train.config_io import config_to_dict, dump_config, load_config, override
from hand_lib.train.device import move_to_device
from hand_lib.train.distributed import DistInfo, init_distributed
from hand_lib.train.errors import CheckpointError, ConfigError, TrainingDiverged
from hand_lib.train.frozen import FrozenDict
from hand_lib.train.optim import build_optimizer, build_scheduler, lr_multiplier
from hand_lib.train.profiles import PROFILES, STAGES, stage_config
from hand_lib.train.rng import seed_everything
from hand_lib.train.sampler import ResumableBatchSampler
from hand_lib.train.trainer import Trainer, TrainSummary, TrainTask
from hand_lib.train.weights import freeze, load_weights

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "ConfigError",
    "DistInfo",
    "ExperimentConfig",
    "FrozenDict",
    "OptimConfig",
    "PROFILES",
    "ResumableBatchSampler",
    "STAGES",
    "ScheduleConfig",
    "TrainConfig",
    "TrainSummary",
    "TrainTask",
    "Trainer",
    "TrainingDiverged",
    "build_optimizer",
    "build_scheduler",
    "checkpoint_path",
    "config_to_dict",
    "dump_config",
    "freeze",
    "init_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "load_weights",
    "lr_multiplier",
    "move_to_device",
    "override",
    "save_checkpoint",
    "seed_everything",
    "stage_config",
]
