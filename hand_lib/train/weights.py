"""Loading part of a model from another run's checkpoint, and freezing sub-modules.

S2HAND's fine-tuning stage starts from the shape stage's and the keypoint stage's weights;
this is how::

    load_weights(task, "runs/shape/checkpoints/step_00012000.pt", {"shape_net.": "shape_net."})
    load_weights(task, "runs/kp/checkpoints/step_00012000.pt", {"hourglass.": "keypoint_net."})
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from hand_lib.train.errors import CheckpointError


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means a bad or foreign file
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    if isinstance(payload, dict) and "model" in payload and isinstance(payload["model"], dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise CheckpointError(f"{path}: neither a trainer checkpoint nor a state dict")
    return payload


def _preview(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(
    module: nn.Module,
    checkpoint: str | Path,
    prefix_map: Mapping[str, str] | None = None,
    strict: bool = True,
) -> list[str]:
    """Copy parameters and buffers from a checkpoint into (part of) ``module``.

    Args:
        module: the model to fill.
        checkpoint: a trainer checkpoint (its ``model`` entry is used) or a bare state dict.
        prefix_map: ``{source_prefix: target_prefix}``. Only source keys starting with one of
            the source prefixes are loaded, renamed to the target prefix; target keys under
            those target prefixes are expected. None (or ``{"": ""}``) loads everything.
        strict: raise if an expected target key is missing from the checkpoint, or a selected
            source key has no place in ``module``. Shape mismatches always raise.

    Returns:
        The target keys that were loaded.

    Raises:
        CheckpointError: naming the file and the offending keys.
    """
    path = Path(checkpoint)
    source = _read_state_dict(path)
    prefix_map = dict(prefix_map) if prefix_map else {"": ""}
    selected: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        for src, dst in prefix_map.items():
            if key.startswith(src):
                selected[dst + key[len(src):]] = value
                break
    if not selected:
        raise CheckpointError(
            f"{path}: no key starts with any of {sorted(prefix_map)} "
            f"(the checkpoint has: {_preview(sorted(source))})"
        )
    target = module.state_dict()
    expected = [k for k in target if any(k.startswith(dst) for dst in prefix_map.values())]
    missing = sorted(k for k in expected if k not in selected)
    unexpected = sorted(k for k in selected if k not in target)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys (in the model, not in the checkpoint): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys (in the checkpoint, not in the model): "
                         f"{_preview(unexpected)}")
        raise CheckpointError(f"{path}: " + "; ".join(parts))
    loadable = {k: v for k, v in selected.items() if k in target}
    mismatched = [
        f"{k} {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in loadable.items() if v.shape != target[k].shape
    ]
    if mismatched:
        raise CheckpointError(f"{path}: shape mismatch: {_preview(mismatched)}")
    module.load_state_dict(loadable, strict=False)
    return sorted(loadable)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients to every parameter of ``module`` (the trainer then leaves them out of
    the optimiser). Batch-norm statistics still update in train mode: call ``.eval()`` on
    the sub-module in the task's ``train()`` override if they must stay fixed."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module
