"""What each suite profile trains: model sizes, crop sizes and schedules.

``full`` is the papers' setting (S2HAND: EfficientNet-B3 at 224 px, the original stage
schedules; HaMuCo: ResNet-18 at 256 px, 50 epochs) and wants a GPU. ``quick`` is sized so
the whole notebook suite finishes in about half an hour on a 2-core CPU, ``smoke`` in a few
minutes (the test suite runs it). Only the sizes shrink: the code path is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hand_lib.train import ExperimentConfig, override, stage_config
from hand_lib.train.profiles import stage_tree

#: training stages of the suite: the trainer preset each one uses
SUITE_STAGES: dict[str, str] = {
    "s2hand_shape": "s2hand_shape",
    "s2hand_kp": "s2hand_kp",
    "s2hand_finetune": "s2hand_finetune",
    "s2hand_e2e": "s2hand_e2e",
    "supervised": "s2hand_shape",  # the same network and schedule, 3D ground truth
    "hamuco": "hamuco",
}


@dataclass(frozen=True)
class SuiteSettings:
    """Sizes of one profile.

    Attributes:
        profile: smoke, quick or full.
        image_size: S2HAND crop side, pixels (4 x ``heatmap_size``).
        encoder, hidden: S2HAND encoder and regressor width.
        encoder_width: channel multiplier of the (ResNet) encoders, S2HAND's and HaMuCo's.
        hourglass_width, hourglass_stacks, heatmap_size: the 2D keypoint network.
        hamuco_image_size, hamuco_encoder, hamuco_token_dim: the HaMuCo networks.
        epochs: training epochs per suite stage (None = the original schedule).
        batch_size: single-view images per step; hamuco_batch_size: frames (x views).
        max_test_samples: cap on evaluated test samples (None = all).
        loader_workers: DataLoader processes.
        validate_every_steps: steps between two points of a learning curve (validation
            split); None: once per epoch.
        max_val_samples: validation samples per point (evenly spread over the split).
        schedule: "original" (each method's published schedule, milestones scaled to the
            profile's epochs) or "cosine" (linear warm-up, then a cosine to zero over the
            run: a run of minutes is better served by a schedule that spends its whole
            length learning, see benchmarks/RESULTS.md).
        lr_scale: multiplies the S2HAND stages' published learning rates.
        hamuco_lr_scale: multiplies HaMuCo's (3e-4). Kept at 1 in every profile: at twice
            the rate the single-view error rose further in its first 200 steps on the
            validation split (15.4 vs 15.2 mm PA-MPJPE at step 100, 16.7 vs 13.9 at 200).
        warmup_steps: linear warm-up of the "cosine" schedule, steps.
        render_downsample: S2HAND's appearance terms render at 1 / this of the crop size
            (:class:`hand_lib.tasks.S2HandTask`); 2 at 64 px keeps the finetune step within
            3x the shape step (``benchmarks/bench_train.py --stages``).
        render_samples: S2HAND renders this many crops of each batch for its appearance
            terms (None: all; an unbiased estimate on a random subset).
    """

    profile: str
    image_size: int
    encoder: str
    hidden: int
    hourglass_width: int
    hourglass_stacks: int
    heatmap_size: int
    hamuco_image_size: int
    hamuco_encoder: str
    hamuco_token_dim: int
    epochs: dict[str, float | None] = field(default_factory=dict)
    batch_size: int | None = None
    hamuco_batch_size: int | None = None
    max_test_samples: int | None = None
    loader_workers: int = 0
    encoder_width: float = 1.0
    validate_every_steps: int | None = None
    max_val_samples: int | None = 512
    schedule: str = "original"
    lr_scale: float = 1.0
    hamuco_lr_scale: float = 1.0
    warmup_steps: int = 0
    render_downsample: int = 1
    render_samples: int | None = None


PROFILE_SETTINGS: dict[str, SuiteSettings] = {
    "smoke": SuiteSettings(
        profile="smoke", image_size=64, encoder="resnet18", hidden=64, hourglass_width=32,
        hourglass_stacks=2, heatmap_size=16, hamuco_image_size=64, hamuco_encoder="resnet18",
        hamuco_token_dim=64,
        epochs={"s2hand_shape": 2, "s2hand_kp": 2, "s2hand_finetune": 1, "s2hand_e2e": 2,
                "supervised": 2, "hamuco": 1},
        batch_size=8, hamuco_batch_size=2, max_test_samples=None, loader_workers=0,
        encoder_width=0.5, validate_every_steps=10, max_val_samples=64, schedule="cosine",
        lr_scale=2.0, warmup_steps=5, render_downsample=2,
    ),
    "quick": SuiteSettings(
        profile="quick", image_size=64, encoder="resnet18", hidden=256, hourglass_width=32,
        hourglass_stacks=2, heatmap_size=16, hamuco_image_size=64, hamuco_encoder="resnet18",
        hamuco_token_dim=128,
        epochs={"s2hand_shape": 4, "s2hand_kp": 2, "s2hand_finetune": 1, "s2hand_e2e": 1,
                "supervised": 3, "hamuco": 2},
        batch_size=32, hamuco_batch_size=4, max_test_samples=None, loader_workers=0,
        encoder_width=0.5, validate_every_steps=250, max_val_samples=512, schedule="cosine",
        lr_scale=2.0, warmup_steps=100, render_downsample=2, render_samples=12,
    ),
    "full": SuiteSettings(
        profile="full", image_size=224, encoder="efficientnet_b3", hidden=512,
        hourglass_width=256, hourglass_stacks=2, heatmap_size=56, hamuco_image_size=256,
        hamuco_encoder="resnet18", hamuco_token_dim=256,
        epochs={}, batch_size=None, hamuco_batch_size=None, max_test_samples=None,
        loader_workers=8,
    ),
}


def suite_settings(profile: str) -> SuiteSettings:
    """The :class:`SuiteSettings` of ``profile`` (smoke, quick or full)."""
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile must be one of {sorted(PROFILE_SETTINGS)}, got {profile!r}")
    return PROFILE_SETTINGS[profile]


def training_config(stage: str, settings: SuiteSettings, **updates: Any) -> ExperimentConfig:
    """The trainer config of a suite stage: the original preset, resized for the profile.

    Epochs and batch size come from ``settings``; learning-rate milestones keep their
    position relative to the run's length. ``updates`` are dotted overrides
    (``{"optim.lr": 1e-4}`` as ``**{"optim.lr": 1e-4}``).
    """
    if stage not in SUITE_STAGES:
        raise ValueError(f"stage must be one of {sorted(SUITE_STAGES)}, got {stage!r}")
    preset = SUITE_STAGES[stage]
    config = stage_config(preset, "full")
    full_epochs = stage_tree(preset, "full")["train"]["epochs"]
    changes: dict[str, Any] = {"name": f"{stage}-{settings.profile}",
                               "train.num_workers": settings.loader_workers,
                               "train.validate_every_steps": settings.validate_every_steps}
    epochs = settings.epochs.get(stage)
    if epochs is not None:
        changes["train.epochs"] = epochs
        milestones = config.schedule.milestones
        changes["schedule.milestones"] = [m * epochs / full_epochs for m in milestones]
        changes["train.checkpoint_every_steps"] = 200
        changes["train.log_every_steps"] = 5
    if settings.schedule == "cosine":
        changes.update({"schedule.name": "cosine", "schedule.milestones": [],
                        "schedule.warmup_steps": settings.warmup_steps})
    elif settings.schedule != "original":
        raise ValueError(f"schedule must be 'original' or 'cosine', got {settings.schedule!r}")
    scale = settings.hamuco_lr_scale if stage == "hamuco" else settings.lr_scale
    if scale != 1.0:
        changes["optim.lr"] = config.optim.lr * scale
    batch = settings.hamuco_batch_size if stage == "hamuco" else settings.batch_size
    if batch is not None:
        changes["train.batch_size"] = batch
    changes.update(updates)
    return override(config, changes)
