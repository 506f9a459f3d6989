"""The one training loop, for every S2HAND stage and for HaMuCo.

The trainer knows nothing about hands. A *task* is an ``nn.Module`` with::

    def training_step(self, batch, step: int) -> dict[str, Tensor]:
        '''Named, already weighted, scalar loss terms; the trainer sums them into ``total``.'''

    def validation_step(self, batch) -> dict[str, Tensor]:   # optional
        '''Named scalar metrics of one batch; averaged over batches.'''

    def optimizer_param_groups(self) -> list[dict]:           # optional
        '''torch param groups, e.g. a smaller lr for a pretrained encoder; frozen
        (requires_grad False) parameters are dropped from them.'''

Per step: move the batch to the device, forward under autocast (CUDA only), sum the terms,
check the total is finite on every rank, backward (scaled for float16), unscale, compute the
global gradient norm, skip the step if it is not finite, clip, step the optimiser, step the
lr schedule (once per step, skipped steps included: the lr is a function of the global step),
log, checkpoint. See ``hand_lib.train.config.TrainConfig`` for every knob.

Exact resume: the shuffling order is a function of (seed, epoch), the checkpoint stores the
position inside the epoch and every RNG state, and the data loader never draws from the global
RNGs, so a killed and resumed run reproduces the uninterrupted run bit for bit (on CPU, and on
GPU up to cuDNN/atomics nondeterminism). With ``num_workers > 0`` a dataset that augments with
the global RNG gets per-worker seeds fixed per epoch but not per sample; seed augmentation
from the sample index and epoch to keep resume exact with workers.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from hand_lib.train.checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from hand_lib.train.config import ExperimentConfig
from hand_lib.train.config_io import config_to_dict, dump_config
from hand_lib.train.device import move_to_device, resolve_device
from hand_lib.train.distributed import (
    any_across_ranks,
    barrier,
    gather_objects,
    init_distributed,
    mean_across_ranks,
    shutdown_distributed,
)
from hand_lib.train.guard import BadStepGuard
from hand_lib.train.metrics_log import CsvLog, TensorBoardLog
from hand_lib.train.optim import build_optimizer, build_scheduler
from hand_lib.train.rng import capture_rng_state, restore_rng_state, seed_everything
from hand_lib.train.sampler import ResumableBatchSampler

log = logging.getLogger("hand_lib.train")

RESERVED_COLUMNS = frozenset({"step", "epoch", "lr", "total", "grad_norm", "bad_step", "seconds"})


@runtime_checkable
class TrainTask(Protocol):
    """What the trainer needs from a model: an ``nn.Module`` with this method (see the module
    docstring for the optional ``validation_step`` and ``optimizer_param_groups``)."""

    def training_step(self, batch: Any, step: int) -> Mapping[str, torch.Tensor]:
        """Named, already weighted, scalar loss terms of one batch (0-based global ``step``)."""
        ...


@dataclass(frozen=True)
class TrainSummary:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        steps: optimisation steps completed (including earlier runs when resumed).
        epochs_completed: full epochs completed.
        bad_steps: steps skipped by the NaN/inf guard, over the whole run.
        overflow_steps: of those, float16 loss-scale overflows (GPU AMP only).
        wall_seconds: training wall time, over the whole run.
        final_losses: the terms and ``total`` of the last logged step (rank mean).
        val_metrics: the last validation metrics (empty without validation).
        last_checkpoint: the checkpoint written last, or None.
        stopped_early: True if ``max_steps`` stopped the run before the last epoch ended.
    """

    steps: int
    epochs_completed: int
    bad_steps: int
    wall_seconds: float
    overflow_steps: int = 0
    final_losses: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)
    last_checkpoint: Path | None = None
    stopped_early: bool = False


@dataclass
class _Position:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_before: float = 0.0


class _StepModule(nn.Module):
    """Routes ``forward`` to ``task.training_step`` so DistributedDataParallel sees a forward
    call (it prepares its gradient all-reduce there)."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any, step: int) -> Any:
        return self.task.training_step(batch, step)


def _check_terms(terms: Any) -> dict[str, torch.Tensor]:
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(
            "training_step must return a non-empty dict of named scalar loss terms, "
            f"got {type(terms).__name__}"
        )
    for name, value in terms.items():
        if name in RESERVED_COLUMNS:
            raise ValueError(f"training_step returned the reserved name {name!r}: rename the term")
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise TypeError(f"training_step term {name!r} must be a scalar tensor, got {shape}")
    return dict(terms)


def set_data_epoch(dataset: Any, epoch: int) -> None:
    """Tell a dataset (or its ``transform``, e.g. :class:`hand_lib.data.HandCrop`) which
    epoch starts, so augmentation seeded by ``(seed, epoch, index)`` changes between epochs
    and stays exactly reproducible on resume. Wrappers (``Subset``) are looked through."""
    while dataset is not None:
        for owner in (dataset, getattr(dataset, "transform", None)):
            if callable(getattr(owner, "set_epoch", None)):
                owner.set_epoch(epoch)
                return
        dataset = getattr(dataset, "dataset", None)


class Trainer:
    """Trains ``task`` on ``train_data`` as ``config`` says, writing into ``out_dir``.

    Args:
        task: an ``nn.Module`` with ``training_step`` (and optionally ``validation_step``).
        train_data: a map-style dataset; batches are made with ``collate_fn``.
        config: an :class:`ExperimentConfig` (or a subclass); only ``optim``, ``schedule``
            and ``train`` are read.
        out_dir: ``metrics.csv``, ``val_metrics.csv``, ``config.yaml``, ``checkpoints/`` and
            ``tensorboard/`` go here (rank 0 writes them).
        device: None picks ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU.
        val_data: optional validation dataset.
        collate_fn: DataLoader collate function (default: torch's).
        resume: False starts fresh; True continues from the newest checkpoint in
            ``out_dir/checkpoints`` (or starts fresh, with an info message, if there is none);
            a path continues from that checkpoint.

    Launched by ``torchrun`` (RANK/WORLD_SIZE set), it joins the process group (NCCL on CUDA,
    gloo on CPU), wraps the task in DistributedDataParallel and shards every epoch.

    The constructor seeds the global RNGs with ``train.seed + rank`` (call
    :func:`~hand_lib.train.rng.seed_everything` yourself *before* building the model for a
    reproducible initialisation), then restores them from the checkpoint when resuming.
    """

    def __init__(
        self,
        task: nn.Module,
        train_data: Dataset,
        config: ExperimentConfig,
        out_dir: str | Path,
        *,
        device: str | torch.device | None = None,
        val_data: Dataset | None = None,
        collate_fn: Any = None,
        resume: bool | str | Path = False,
    ) -> None:
        if not isinstance(task, TrainTask):
            raise TypeError(f"{type(task).__name__} has no training_step(batch, step) method")
        self.config = config
        self.out_dir = Path(out_dir)
        self.train_data = train_data
        self.val_data = val_data
        self.collate_fn = collate_fn
        tc = config.train

        wants_cuda = resolve_device(device).type == "cuda"
        self.dist = init_distributed(wants_cuda)
        self.device = resolve_device(device, self.dist.local_rank)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(tc.seed + self.dist.rank)

        self.task = task.to(self.device)
        groups_hook = getattr(task, "optimizer_param_groups", None)
        groups = list(groups_hook()) if callable(groups_hook) else [{"params": task.parameters()}]
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
        self.params = [p for g in groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{type(task).__name__} has no trainable parameter")
        self.optimizer = build_optimizer(groups, config.optim)
        self.sampler = ResumableBatchSampler(
            len(train_data), tc.batch_size, shuffle=tc.shuffle, seed=tc.seed,
            drop_last=tc.drop_last, rank=self.dist.rank, world_size=self.dist.world_size,
        )
        self.steps_per_epoch = self.sampler.batches_per_epoch
        self.total_steps = tc.epochs * self.steps_per_epoch
        self.scheduler = build_scheduler(
            self.optimizer, config.schedule, self.steps_per_epoch, self.total_steps
        )

        self.amp_enabled = tc.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if tc.amp_dtype == "float16" else torch.bfloat16
        if tc.amp and not self.amp_enabled:
            log.info("train.amp is on but the device is %s: training in float32", self.device)
        use_scaler = self.amp_enabled and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

        self.step_module: nn.Module = _StepModule(task)
        if self.dist.enabled:
            self.step_module = DistributedDataParallel(
                self.step_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=tc.find_unused_parameters,
            )

        self.guard = BadStepGuard(tc.max_bad_steps)
        self.position = _Position()
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.last_checkpoint: Path | None = None
        self._saved_step = -1
        self._validated_step = -1
        self._run_start: float | None = None
        self.csv: CsvLog | None = None
        self.val_csv: CsvLog | None = None
        self.tensorboard: TensorBoardLog | None = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.csv = CsvLog(self.out_dir / "metrics.csv")
            self.val_csv = CsvLog(self.out_dir / "val_metrics.csv")
        if resume:
            self._resume(resume)
        if self.dist.is_main:
            dump_config(config, self.out_dir / "config.yaml")
            if tc.tensorboard:
                self.tensorboard = TensorBoardLog.open(self.out_dir / "tensorboard")

    # ------------------------------------------------------------------ public

    def fit(self, max_steps: int | None = None) -> TrainSummary:
        """Train to the end of the last epoch, or until ``max_steps`` steps in total.

        Writes a checkpoint every ``train.checkpoint_every_steps`` steps and when it stops.

        Raises:
            TrainingDiverged: after ``train.max_bad_steps`` consecutive non-finite steps.
        """
        tc = self.config.train
        pos = self.position
        self._run_start = time.perf_counter()
        final_losses: dict[str, float] = {}
        val_metrics: dict[str, float] = {}
        stopped_early = False
        if tc.validate_every_steps and pos.step == 0 and self._validated_step != 0:
            val_metrics = self.validate() or val_metrics  # the untrained network
        while pos.epoch < tc.epochs and not stopped_early:
            if max_steps is not None and pos.step >= max_steps:
                stopped_early = True
                break
            self.sampler.set_epoch(pos.epoch, pos.batch_in_epoch)
            set_data_epoch(self.train_data, pos.epoch)
            self.task.train()
            bar = tqdm(
                total=self.steps_per_epoch, initial=pos.batch_in_epoch, leave=False,
                desc=f"epoch {pos.epoch + 1}/{tc.epochs}", dynamic_ncols=True,
                disable=not (self.dist.is_main and tc.progress_bar),
            )
            for batch in self._train_loader(pos.epoch):
                logged = self._train_step(batch)
                bar.update(1)
                if logged is not None:
                    final_losses = {k: v for k, v in logged.items() if k not in RESERVED_COLUMNS}
                    final_losses["total"] = logged["total"]
                    bar.set_postfix(total=f"{logged['total']:.4g}", lr=f"{logged['lr']:.3g}")
                if tc.validate_every_steps and pos.step % tc.validate_every_steps == 0:
                    val_metrics = self.validate() or val_metrics
                if pos.step % tc.checkpoint_every_steps == 0:
                    self.save()
                if max_steps is not None and pos.step >= max_steps:
                    stopped_early = pos.step < self.total_steps
                    break
            bar.close()
            if pos.batch_in_epoch == self.steps_per_epoch:
                if ((pos.epoch + 1) % tc.validate_every_epochs == 0
                        and self._validated_step != pos.step):
                    val_metrics = self.validate() or val_metrics
                pos.epoch += 1
                pos.batch_in_epoch = 0
        if self._saved_step != pos.step:
            self.save()
        barrier(self.dist)
        pos.elapsed_before, self._run_start = self._elapsed(), None
        return TrainSummary(
            steps=pos.step, epochs_completed=pos.epoch, bad_steps=self.guard.total,
            overflow_steps=self.guard.overflows,
            wall_seconds=pos.elapsed_before, final_losses=final_losses, val_metrics=val_metrics,
            last_checkpoint=self.last_checkpoint, stopped_early=stopped_early,
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Average ``task.validation_step`` over ``val_data`` (sharded across ranks) and log
        it to ``val_metrics.csv``. Returns {} without validation data or method."""
        if self.val_data is None or not callable(getattr(self.task, "validation_step", None)):
            return {}
        tc = self.config.train
        ranks = self.dist
        shard = Subset(self.val_data, range(ranks.rank, len(self.val_data), ranks.world_size))
        loader = DataLoader(
            shard, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers,
            collate_fn=self.collate_fn, pin_memory=self.device.type == "cuda",
        )
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        self.task.eval()
        try:
            for batch in loader:
                with self._autocast():
                    metrics = self.task.validation_step(move_to_device(batch, self.device))
                for name, value in metrics.items():
                    # a per-sample vector counts each sample, a scalar counts as one batch
                    value = value.detach().float()
                    sums[name] = sums.get(name, 0.0) + float(value.sum())
                    counts[name] = counts.get(name, 0) + value.numel()
        finally:
            self.task.train()
        merged: dict[str, float] = {}
        merged_counts: dict[str, int] = {}
        for rank_sums, rank_counts in gather_objects((sums, counts), self.dist):
            for name, value in rank_sums.items():
                merged[name] = merged.get(name, 0.0) + value
                merged_counts[name] = merged_counts.get(name, 0) + rank_counts[name]
        result = {k: v / max(merged_counts[k], 1) for k, v in merged.items()}
        self._validated_step = self.position.step
        if self.dist.is_main and result:
            row = {"step": self.position.step, "epoch": self.position.epoch,
                   "seconds": round(self._elapsed(), 3), **result}
            assert self.val_csv is not None
            self.val_csv.append(row)
            if self.tensorboard is not None:
                self.tensorboard.scalars(result, self.position.step, prefix="val/")
        return result

    def save(self) -> Path | None:
        """Write a checkpoint of the current position (rank 0 writes; all ranks must call)."""
        pos = self.position
        rng_states = gather_objects(capture_rng_state(), self.dist)
        path = None
        if self.dist.is_main:
            payload = {
                "format": CHECKPOINT_FORMAT,
                "model": self.task.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "step": pos.step,
                "epoch": pos.epoch,
                "batch_in_epoch": pos.batch_in_epoch,
                "world_size": self.dist.world_size,
                "rng": rng_states,
                "guard": self.guard.state_dict(),
                "elapsed_s": self._elapsed(),
                "config": config_to_dict(self.config),
            }
            path = save_checkpoint(payload, checkpoint_path(self.checkpoint_dir, pos.step))
            prune_checkpoints(self.checkpoint_dir, self.config.train.keep_checkpoints)
            self.last_checkpoint = path
        self._saved_step = pos.step
        barrier(self.dist)
        return path

    def close(self) -> None:
        """Close TensorBoard and leave the process group if this trainer joined it."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        shutdown_distributed(self.dist)

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _elapsed(self) -> float:
        start = self._run_start
        running = time.perf_counter() - start if start is not None else 0.0
        return self.position.elapsed_before + running

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            device_type=self.device.type, dtype=self.amp_dtype, enabled=self.amp_enabled
        )

    def _train_loader(self, epoch: int) -> DataLoader:
        tc = self.config.train
        # A private generator: creating the iterator must not draw from the global RNG, or a
        # resumed run (which creates it mid-epoch) would diverge from an uninterrupted one.
        generator = torch.Generator()
        generator.manual_seed(((tc.seed * 1_000_003 + epoch) * 4096 + self.dist.rank) % 2**63)
        return DataLoader(
            self.train_data, batch_sampler=self.sampler, num_workers=tc.num_workers,
            collate_fn=self.collate_fn, pin_memory=self.device.type == "cuda",
            generator=generator,
        )

    def _train_step(self, batch: Any) -> dict[str, float] | None:
        """One optimisation step; returns the logged row, or None if the step was not logged."""
        tc = self.config.train
        pos = self.position
        lr = self.optimizer.param_groups[0]["lr"]
        batch = move_to_device(batch, self.device)
        with self._autocast():
            terms = _check_terms(self.step_module(batch, pos.step))
        total = torch.stack([t.float().reshape(()) for t in terms.values()]).sum()
        bad = any_across_ranks(not bool(torch.isfinite(total.detach())), self.dist, self.device)
        grad_norm = float("nan")
        overflow = False
        if not bad:
            if self.scaler is not None:
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                total.backward()
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
            grad_norm = float(norm)
            # Gradients are all-reduced under DDP, so every rank sees the same norm here.
            bad = not torch.isfinite(norm).item()
            overflow = bad and self.scaler is not None and self.scaler.get_scale() >= 1.0
            if not bad:
                if tc.grad_clip_norm is not None:
                    torch.nn.utils.clip_grads_with_norm_(self.params, tc.grad_clip_norm, norm)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                else:
                    self.optimizer.step()
            if self.scaler is not None:
                self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # A skipped first step makes torch warn that the scheduler stepped before the
            # optimiser; stepping it anyway is deliberate (the lr follows the global step).
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        pos.step += 1
        pos.batch_in_epoch += 1

        is_last = pos.step == self.total_steps
        row = None
        if bad or is_last or pos.step % tc.log_every_steps == 0:
            values = {name: float(t.detach().float()) for name, t in terms.items()}
            values["total"] = float(total.detach())
            values = mean_across_ranks(values, self.dist, self.device)
            row = {"step": pos.step, "epoch": pos.epoch, "lr": lr, **values,
                   "grad_norm": grad_norm, "bad_step": int(bad),
                   "seconds": round(self._elapsed(), 3)}
            if self.csv is not None:
                self.csv.append(row)
            if self.tensorboard is not None:
                self.tensorboard.scalars({**values, "lr": lr, "grad_norm": grad_norm},
                                         pos.step, prefix="train/")
        hint = f"Last checkpoint: {self.last_checkpoint}." if self.last_checkpoint else ""
        self.guard.record(
            bad, step=pos.step, epoch=pos.epoch, grad_norm=grad_norm, overflow=overflow, hint=hint,
            terms=({k: float(v) for k, v in row.items() if k not in RESERVED_COLUMNS}
                   if row is not None else {}),
        )
        return row

    def _resume(self, resume: bool | str | Path) -> None:
        path = latest_checkpoint(self.checkpoint_dir) if resume is True else Path(resume)
        if path is None:
            log.info("resume: no checkpoint in %s, starting from scratch", self.checkpoint_dir)
            return
        payload = load_checkpoint(path, map_location="cpu")
        if payload["batch_in_epoch"] > self.steps_per_epoch:
            raise ValueError(
                f"{path}: the checkpoint is {payload['batch_in_epoch']} batches into an epoch, "
                f"but an epoch now has {self.steps_per_epoch} (dataset or batch size changed)"
            )
        self.task.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler is not None and payload["scaler"] is not None:
            self.scaler.load_state_dict(payload["scaler"])
        self.guard.load_state_dict(payload["guard"])
        self.position = _Position(
            step=payload["step"], epoch=payload["epoch"],
            batch_in_epoch=payload["batch_in_epoch"], elapsed_before=payload["elapsed_s"],
        )
        rng_states = payload["rng"]
        if payload["world_size"] == self.dist.world_size:
            restore_rng_state(rng_states[self.dist.rank])
        else:
            log.warning(
                "resume: %s was written by %d process(es), this run has %d: the data order "
                "and RNG streams differ from an uninterrupted run",
                path, payload["world_size"], self.dist.world_size,
            )
            restore_rng_state(rng_states[0])
        changed = _diff(payload["config"], config_to_dict(self.config))
        if changed:
            log.warning("resume: config differs from %s: %s", path, "; ".join(changed))
        if self.csv is not None and self.val_csv is not None:
            dropped = self.csv.truncate_after(self.position.step)
            # A checkpoint on an epoch's last step precedes that epoch's validation, which the
            # resumed run repeats: drop its row too.
            step = self.position.step
            at_epoch_end = self.position.batch_in_epoch == self.steps_per_epoch
            every = self.config.train.validate_every_steps
            if every and step % every == 0:  # validated before this checkpoint: keep it
                self.val_csv.truncate_after(step)
                self._validated_step = step
            else:
                self.val_csv.truncate_after(step - 1 if at_epoch_end else step)
            if dropped:
                log.info("resume: dropped %d metric rows logged after the checkpoint", dropped)
        self._saved_step = self.position.step
        self.last_checkpoint = path
        log.info("resumed from %s at step %d", path, self.position.step)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
