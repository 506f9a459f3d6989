"""Schedule presets of the original methods (``full``) and scaled-down CPU profiles.

Numbers from REFERENCE.md sections 4-5 (S2HAND, HaMuCo):

=================  ======  ===========  ======================  ==========================
stage              epochs  optimiser    lr schedule             batch
=================  ======  ===========  ======================  ==========================
s2hand_shape       120     Adam 1e-3    x0.5 at 30/60/90        64
s2hand_kp          120     Adam 1e-3    x0.5 at 30/60/90        64
s2hand_finetune    60      Adam 2.5e-4  x0.5 at 20/40           64
s2hand_e2e         180     Adam 1e-3    x0.5 at 30/60/90 (*)    64
hamuco             50      AdamW 3e-4   cosine                  8 samples x 8 views
=================  ======  ===========  ======================  ==========================

(*) REFERENCE gives only the length of the end-to-end run; its lr and milestones are assumed
equal to the shape stage's. HaMuCo's weight decay is not given either: AdamW's usual 1e-2.

``quick`` divides the epochs by 10 (at least 1) and ``smoke`` runs one epoch; both scale the
milestones in proportion (fractional epochs are allowed) and shrink batch sizes and log and
checkpoint intervals for a CPU. ``loss.weights`` lists the stage's terms with the weights of
:mod:`hand_lib.losses.weights` (field names as there); the ``model``/``data`` sections hold the
few facts the model and data code need.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, fields
from typing import Any, Literal

from hand_lib.losses.weights import HaMuCoLossWeights, S2HandLossWeights
from hand_lib.train.config import ExperimentConfig
from hand_lib.train.config_io import load_config

Profile = Literal["full", "quick", "smoke"]

_S2HAND_TERMS = {
    "s2hand_shape": ("keypoint_2d", "bone_direction", "scale_anchor", "angle_prior"),
    "s2hand_kp": ("heatmap_integral",),
    "s2hand_finetune": (
        "keypoint_2d", "bone_direction", "scale_anchor", "angle_prior", "shape_regularizer",
        "laplacian", "heatmap_integral", "keypoint_consistency", "photometric", "mean_colour",
        "texture_outlier",
    ),
    "s2hand_e2e": tuple(f.name for f in fields(S2HandLossWeights)),
}
_S2HAND_PARTS = {
    "s2hand_shape": ("shape",),
    "s2hand_kp": ("keypoint",),
    "s2hand_finetune": ("shape", "keypoint", "texture"),
    "s2hand_e2e": ("shape", "keypoint", "texture"),
}

STAGES = ("s2hand_shape", "s2hand_kp", "s2hand_finetune", "s2hand_e2e", "hamuco")
PROFILES: tuple[Profile, ...] = ("full", "quick", "smoke")


def _s2hand(stage: str) -> dict[str, Any]:
    epochs, lr, milestones = {
        "s2hand_shape": (120, 1e-3, [30, 60, 90]),
        "s2hand_kp": (120, 1e-3, [30, 60, 90]),
        "s2hand_finetune": (60, 2.5e-4, [20, 40]),
        "s2hand_e2e": (180, 1e-3, [30, 60, 90]),
    }[stage]
    return {
        "name": stage,
        "optim": {"name": "adam", "lr": lr, "weight_decay": 0.0},
        "schedule": {"name": "multistep", "milestones": milestones, "gamma": 0.5},
        "train": {"epochs": epochs, "batch_size": 64, "num_workers": 8,
                  "checkpoint_every_steps": 2000, "log_every_steps": 50},
        "model": {
            "method": "s2hand", "parts": list(_S2HAND_PARTS[stage]),
            "image_size": 224, "heatmap_size": 64, "pose_pca_components": 30,
            # The fine-tuning stage starts from the two first stages' weights.
            "init_from": ["s2hand_shape", "s2hand_kp"] if stage == "s2hand_finetune" else [],
        },
        "loss": {"weights": {t: getattr(S2HandLossWeights(), t) for t in _S2HAND_TERMS[stage]}},
        "data": {"image_size": 224},
    }


def _hamuco() -> dict[str, Any]:
    return {
        "name": "hamuco",
        "optim": {"name": "adamw", "lr": 3e-4, "weight_decay": 1e-2},
        "schedule": {"name": "cosine"},
        "train": {"epochs": 50, "batch_size": 8, "num_workers": 8,
                  "checkpoint_every_steps": 2000, "log_every_steps": 50},
        "model": {"method": "hamuco", "backbone": "resnet18", "image_size": 256,
                  "interaction_layers": 2, "attention_heads": 4},
        "loss": {"weights": asdict(HaMuCoLossWeights())},
        "data": {"views": 8, "image_size": 256, "rotation_deg": 180.0, "colour_jitter": True},
    }


def _scale(tree: dict[str, Any], profile: Profile) -> dict[str, Any]:
    tree = copy.deepcopy(tree)
    train = tree["train"]
    old_epochs = train["epochs"]
    if profile == "quick":
        train.update(epochs=max(1, old_epochs // 10), batch_size=min(train["batch_size"], 16),
                     num_workers=2, checkpoint_every_steps=200, log_every_steps=10)
    else:
        train.update(epochs=1, batch_size=min(train["batch_size"], 2), num_workers=0,
                     checkpoint_every_steps=20, log_every_steps=1)
    if "views" in tree["data"] and profile == "smoke":
        tree["data"]["views"] = 2
    milestones = tree["schedule"].get("milestones", [])
    tree["schedule"]["milestones"] = [m * train["epochs"] / old_epochs for m in milestones]
    tree["name"] = f"{tree['name']}-{profile}"
    return tree


def stage_tree(method_stage: str, profile: Profile = "full") -> dict[str, Any]:
    """The preset as a plain dict (before validation); see :func:`stage_config`."""
    if method_stage not in STAGES:
        raise ValueError(f"unknown stage {method_stage!r}; known: {', '.join(STAGES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    tree = _hamuco() if method_stage == "hamuco" else _s2hand(method_stage)
    return tree if profile == "full" else _scale(tree, profile)


def stage_config(method_stage: str, profile: Profile = "full") -> ExperimentConfig:
    """The frozen config of a training stage.

    Args:
        method_stage: one of :data:`STAGES`.
        profile: ``full`` (the original schedule), ``quick`` or ``smoke``.
    """
    return load_config(stage_tree(method_stage, profile), ExperimentConfig)
