"""Tests of the shared trainer: configs, optimiser/schedule, sampler, NaN guard, checkpoints,
exact resume, logs, partial weight loading and the stage presets. All on CPU, a few seconds."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from hand_lib.train import (
    PROFILES,
    STAGES,
    CheckpointError,
    ConfigError,
    ExperimentConfig,
    OptimConfig,
    ResumableBatchSampler,
    ScheduleConfig,
    Trainer,
    TrainingDiverged,
    build_optimizer,
    build_scheduler,
    dump_config,
    freeze,
    latest_checkpoint,
    load_checkpoint,
    load_config,
    load_weights,
    move_to_device,
    override,
    save_checkpoint,
    seed_everything,
    stage_config,
)
from hand_lib.train import checkpoint as checkpoint_module
from hand_lib.train.guard import BadStepGuard

# --------------------------------------------------------------------------- helpers


class NoisyRegression(Dataset):
    """y = sum(x); each fetch adds noise from the *global* torch RNG (like augmentation)."""

    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = self.x[i] + 0.01 * torch.randn(4)
        return {"x": x, "y": self.x[i].sum()}


class RegressionTask(nn.Module):
    """A tiny task with dropout (global RNG) and two weighted loss terms."""

    def __init__(self, nan_steps: frozenset[int] = frozenset(), crash_at: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))
        self.nan_steps = nan_steps
        self.crash_at = crash_at

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        if step == self.crash_at:
            raise KeyboardInterrupt("simulated kill")
        pred = self.net(batch["x"]).squeeze(-1)
        mse = ((pred - batch["y"]) ** 2).mean()
        if step in self.nan_steps:
            mse = mse * float("nan")
        return {"mse": mse, "weight_l2": 1e-3 * self.net[0].weight.pow(2).sum()}

    def validation_step(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"mse": ((self.net(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()}


def small_config(**updates: object) -> ExperimentConfig:
    base = {
        "train.epochs": 3, "train.batch_size": 4, "train.checkpoint_every_steps": 7,
        "train.log_every_steps": 1, "train.progress_bar": False, "train.grad_clip_norm": 5.0,
        "schedule.name": "multistep", "schedule.milestones": [1.5], "schedule.warmup_steps": 3,
        "optim.name": "adamw", "optim.lr": 1e-2, "optim.weight_decay": 1e-2,
    }
    base.update(updates)
    return override(ExperimentConfig(), base)


def train(out: Path, cfg: ExperimentConfig, make_task=RegressionTask, seed: int | None = None,
          **kw):
    """Seed, build the task (so every run starts from the same weights), fit, close."""
    seed_everything(cfg.train.seed if seed is None else seed)
    task = make_task()
    trainer = Trainer(task, NoisyRegression(), cfg, out, val_data=NoisyRegression(12), **kw)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    return task, summary


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EncoderConfig:
    name: Literal["resnet18", "resnet50"] = "resnet18"
    channels: tuple[int, ...] = (64, 128)
    pretrained: bool = False


@dataclass(frozen=True)
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dropout: float | None = None


@dataclass(frozen=True)
class TypedExperiment(ExperimentConfig):
    model: ModelConfig = field(default_factory=ModelConfig)


def test_yaml_round_trip_with_caller_typed_and_free_form_sections(tmp_path: Path) -> None:
    cfg = override(TypedExperiment(), {
        "model.encoder.channels": [32, 64, 96], "model.dropout": 0.25,
        "loss.weights": {"keypoint_2d": 1e-3, "laplacian": 0.1}, "data.views": [0, 3],
        "optim.name": "adamw", "train.grad_clip_norm": 1.5,
    })
    assert cfg.model.encoder.channels == (32, 64, 96)  # lists become tuples
    assert cfg.data["views"] == (0, 3)
    path = tmp_path / "cfg.yaml"
    dump_config(cfg, path)
    again = load_config(path, TypedExperiment)
    assert again == cfg and hash(again) == hash(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.loss["weights"]["laplacian"] = 1.0  # type: ignore[index]


def test_unknown_key_names_full_path_and_file(tmp_path: Path) -> None:
    path = tmp_path / "stage.yaml"
    path.write_text("train:\n  epochs: 3\nmodel:\n  encoder:\n    chanels: [1]\n")
    with pytest.raises(ConfigError, match=r"stage\.yaml: model\.encoder\.chanels: unknown key"):
        load_config(path, TypedExperiment)
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key .*epochs"):
        load_config({"train": {"epoch": 3}}, ExperimentConfig)


def test_types_are_checked_not_coerced(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text('train:\n  amp: "False"\n')
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.amp: expected bool, got str 'False'"):
        load_config(path, ExperimentConfig)
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        load_config({"train": {"epochs": 2.0}}, ExperimentConfig)
    with pytest.raises(ConfigError, match="optim.name: expected one of"):
        load_config({"optim": {"name": "AdamW"}}, ExperimentConfig)
    with pytest.raises(ConfigError, match=r"optim\.betas: expected a list of 2 items"):
        load_config({"optim": {"betas": [0.9]}}, ExperimentConfig)
    with pytest.raises(ConfigError, match="optim.lr must be > 0"):
        load_config({"optim": {"lr": 0}}, ExperimentConfig)
    path.write_text("optim:\n  lr: 1e-3\n  eps: 1E-8\n")  # YAML 1.1 would read strings
    cfg = load_config(path, ExperimentConfig)
    assert cfg.optim.lr == 1e-3 and cfg.optim.eps == 1e-8
    path.write_text("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    with pytest.raises(ConfigError, match="duplicate key 'lr' at line 3"):
        load_config(path, ExperimentConfig)


def test_override_validates_and_leaves_the_original_alone() -> None:
    cfg = ExperimentConfig()
    changed = override(cfg, {"train.epochs": 2, "optim.lr": 5e-4, "model.width": 8})
    assert (changed.train.epochs, changed.optim.lr, changed.model["width"]) == (2, 5e-4, 8)
    assert cfg.train.epochs == 1
    with pytest.raises(ConfigError, match=r"<override>: train\.epoch: unknown key"):
        override(cfg, {"train.epoch": 2})
    with pytest.raises(ConfigError, match="train.amp: expected bool"):
        override(cfg, {"train.amp": "no"})


# --------------------------------------------------------------------------- optimiser, schedule


def test_adamw_builds_adamw_with_decoupled_weight_decay() -> None:
    def one_step(name: Literal["adam", "adamw"]) -> float:
        param = nn.Parameter(torch.ones(1))
        opt = build_optimizer([param], OptimConfig(name=name, lr=0.1, weight_decay=0.1))
        param.grad = torch.zeros(1)
        opt.step()
        return float(param.detach())

    param = nn.Parameter(torch.ones(1))
    assert type(build_optimizer([param], OptimConfig(name="adamw"))) is torch.optim.AdamW
    assert type(build_optimizer([param], OptimConfig(name="adam"))) is torch.optim.Adam
    # AdamW shrinks the weight by lr * wd; Adam adds wd * w to the gradient, whose normalised
    # step is a full lr.
    assert one_step("adamw") == pytest.approx(1.0 - 0.1 * 0.1)
    assert one_step("adam") == pytest.approx(1.0 - 0.1, abs=1e-6)


def lrs(schedule: ScheduleConfig, steps_per_epoch: int, total: int, lr: float) -> list[float]:
    opt = build_optimizer([nn.Parameter(torch.zeros(1))], OptimConfig(lr=lr))
    sched = build_scheduler(opt, schedule, steps_per_epoch, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_halves_at_the_milestone_epochs() -> None:
    cfg = stage_config("s2hand_shape")  # 1e-3 halved at epochs 30/60/90
    seq = lrs(cfg.schedule, steps_per_epoch=10, total=1200, lr=cfg.optim.lr)
    assert seq[299] == pytest.approx(1e-3) and seq[300] == pytest.approx(5e-4)
    assert seq[599] == pytest.approx(5e-4) and seq[600] == pytest.approx(2.5e-4)
    assert seq[900] == pytest.approx(1.25e-4) and seq[-1] == pytest.approx(1.25e-4)


def test_cosine_and_warmup() -> None:
    seq = lrs(ScheduleConfig(name="cosine"), steps_per_epoch=10, total=100, lr=3e-4)
    assert seq[0] == pytest.approx(3e-4) and seq[50] == pytest.approx(1.5e-4)
    assert seq[99] == pytest.approx(1.5e-4 * (1 + math.cos(math.pi * 0.99)))
    warm = lrs(ScheduleConfig(name="constant", warmup_steps=4), 10, 8, lr=1.0)
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- sampler, device


def test_sampler_is_deterministic_resumable_and_sharded() -> None:
    sampler = ResumableBatchSampler(23, 4, seed=3, drop_last=False)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, skip_batches=2)
    assert list(sampler) == full[2:] and len(sampler) == len(full) - 2
    sampler.set_epoch(3)
    assert list(sampler) != full
    shards = [ResumableBatchSampler(23, 3, seed=3, rank=r, world_size=2) for r in range(2)]
    seen = []
    for s in shards:
        s.set_epoch(0)
        seen.append([i for b in s for i in b])
    assert len(seen[0]) == len(seen[1]) == 12  # ceil(23 / 2) = 12, 4 full batches of 3
    assert set(seen[0]) | set(seen[1]) == set(range(23))
    with pytest.raises(ValueError, match="no complete batch"):
        ResumableBatchSampler(5, 8)


def test_move_to_device_handles_nested_batches() -> None:
    batch = {"img": torch.zeros(2), "views": [torch.ones(1), (torch.ones(1), "name")], "n": 3}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["views"][1][1] == "name" and moved["n"] == 3
    assert isinstance(moved["views"][1], tuple)


# --------------------------------------------------------------------------- training loop


def test_metrics_csv_columns_and_summary(tmp_path: Path) -> None:
    _, summary = train(tmp_path, small_config())
    rows = read_rows(tmp_path / "metrics.csv")
    assert list(rows[0]) == [
        "step", "epoch", "lr", "mse", "weight_l2", "total", "grad_norm", "bad_step", "seconds"
    ]
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    r = rows[5]
    assert float(r["total"]) == pytest.approx(float(r["mse"]) + float(r["weight_l2"]))
    assert summary.steps == 30 and summary.epochs_completed == 3 and summary.bad_steps == 0
    assert set(summary.final_losses) == {"mse", "weight_l2", "total"}
    assert summary.last_checkpoint == tmp_path / "checkpoints" / "step_00000030.pt"
    assert len(read_rows(tmp_path / "val_metrics.csv")) == 3 and "mse" in summary.val_metrics
    assert load_config(tmp_path / "config.yaml", ExperimentConfig) == small_config()
    # three newest kept: steps 21, 28 and the final 30
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == [
        "step_00000021.pt", "step_00000028.pt", "step_00000030.pt"]


@pytest.mark.parametrize(("mode", "checkpoint_every", "stop_at", "resumed_from"), [
    ("killed mid-epoch", 7, 17, 14),
    ("killed after an epoch's last step, before its validation", 10, 21, 20),
    ("stopped by max_steps", 7, 12, 12),
])
def test_exact_resume(
    tmp_path: Path, mode: str, checkpoint_every: int, stop_at: int, resumed_from: int
) -> None:
    cfg = small_config(**{"train.checkpoint_every_steps": checkpoint_every})
    straight, _ = train(tmp_path / "a", cfg)

    if mode == "stopped by max_steps":
        seed_everything(cfg.train.seed)
        with Trainer(RegressionTask(), NoisyRegression(), cfg, tmp_path / "b",
                     val_data=NoisyRegression(12)) as trainer:
            assert trainer.fit(max_steps=stop_at).stopped_early
    else:
        with pytest.raises(KeyboardInterrupt):  # killed inside step stop_at + 1
            train(tmp_path / "b", cfg, lambda: RegressionTask(crash_at=stop_at))
    last = latest_checkpoint(tmp_path / "b" / "checkpoints")
    assert last is not None and last.name == f"step_{resumed_from:08d}.pt"
    assert len(read_rows(tmp_path / "b" / "metrics.csv")) == stop_at

    # A different initialisation: everything must come from the checkpoint.
    resumed, summary = train(tmp_path / "b", cfg, seed=99, resume=True)
    assert summary.steps == 30 and not summary.stopped_early

    def curve(path: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(path)]

    assert curve(tmp_path / "b" / "metrics.csv") == curve(tmp_path / "a" / "metrics.csv")
    assert curve(tmp_path / "b" / "val_metrics.csv") == curve(tmp_path / "a" / "val_metrics.csv")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


def test_fit_in_parts_equals_one_fit(tmp_path: Path) -> None:
    cfg = small_config()
    straight, whole = train(tmp_path / "a", cfg)
    seed_everything(cfg.train.seed)
    task = RegressionTask()
    with Trainer(task, NoisyRegression(), cfg, tmp_path / "b",
                 val_data=NoisyRegression(12)) as trainer:
        assert trainer.fit(max_steps=12).steps == 12
        assert trainer.fit(max_steps=12).steps == 12  # already there: nothing is drawn
        summary = trainer.fit()
    assert summary.steps == 30 and summary.final_losses == whole.final_losses
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), task.parameters(),
                                                 strict=True))


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    _, summary = train(tmp_path, small_config(**{"train.epochs": 1}), resume=True)
    assert summary.steps == 10


def test_nan_guard_skips_counts_and_logs(tmp_path: Path) -> None:
    cfg = small_config(**{"train.log_every_steps": 5, "train.max_bad_steps": 3})
    task, summary = train(tmp_path, cfg, lambda: RegressionTask(nan_steps=frozenset({3, 4, 11})))
    assert summary.bad_steps == 3 and summary.steps == 30
    rows = read_rows(tmp_path / "metrics.csv")
    bad = [r for r in rows if r["bad_step"] == "1"]
    assert [int(r["step"]) for r in bad] == [4, 5, 12]  # logged although not on the interval
    assert all(math.isnan(float(r["mse"])) for r in bad)
    assert all(math.isfinite(p.sum().item()) for p in task.parameters())


def test_nan_guard_skips_the_update(tmp_path: Path) -> None:
    cfg = small_config(**{"train.epochs": 1})
    task = RegressionTask(nan_steps=frozenset({0}))
    before = {k: v.clone() for k, v in task.state_dict().items()}
    trainer = Trainer(task, NoisyRegression(), cfg, tmp_path)
    trainer._train_step({"x": torch.zeros(4, 4), "y": torch.zeros(4)})
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())
    assert trainer.guard.total == 1 and trainer.optimizer.state == {}


def test_nan_guard_raises_after_consecutive_bad_steps(tmp_path: Path) -> None:
    cfg = small_config(**{"train.max_bad_steps": 4})
    with pytest.raises(TrainingDiverged, match=r"4 consecutive bad steps .* last at step 13 "
                                               r"\(epoch 1\): non-finite loss \[mse=nan"):
        train(tmp_path, cfg, lambda: RegressionTask(nan_steps=frozenset(range(9, 100))))
    assert len([r for r in read_rows(tmp_path / "metrics.csv") if r["bad_step"] == "1"]) == 4


def test_fp16_overflow_is_counted_but_not_divergence() -> None:
    guard = BadStepGuard(max_consecutive=2)
    for step in range(1, 6):
        guard.record(True, step=step, epoch=0, terms={"a": 1.0}, grad_norm=math.inf,
                     overflow=True)
    assert (guard.total, guard.overflows, guard.consecutive) == (5, 5, 0)
    guard.record(True, step=6, epoch=0, terms={"a": 1.0}, grad_norm=math.inf)
    with pytest.raises(TrainingDiverged, match=r"non-finite gradient norm \(inf\)"):
        guard.record(True, step=7, epoch=0, terms={"a": 1.0}, grad_norm=math.inf)


def test_training_step_contract_is_checked(tmp_path: Path) -> None:
    class ReturnsTensor(RegressionTask):
        def training_step(self, batch: dict, step: int):  # type: ignore[override]
            return super().training_step(batch, step)["mse"]

    class ReservedName(RegressionTask):
        def training_step(self, batch: dict, step: int):  # type: ignore[override]
            return {"total": super().training_step(batch, step)["mse"]}

    with pytest.raises(TypeError, match="dict of named scalar loss terms"):
        train(tmp_path / "a", small_config(), ReturnsTensor)
    with pytest.raises(ValueError, match="reserved name 'total'"):
        train(tmp_path / "b", small_config(), ReservedName)
    with pytest.raises(TypeError, match="no training_step"):
        Trainer(nn.Linear(1, 1), NoisyRegression(), small_config(), tmp_path / "c")


def test_gradient_clipping_bounds_the_update(tmp_path: Path) -> None:
    cfg = small_config(**{"train.epochs": 1, "train.grad_clip_norm": 1e-3, "optim.name": "sgd",
                          "optim.momentum": 0.0, "optim.weight_decay": 0.0, "optim.lr": 1.0,
                          "schedule.name": "constant", "schedule.milestones": [],
                          "schedule.warmup_steps": 0})
    task = RegressionTask()
    trainer = Trainer(task, NoisyRegression(), cfg, tmp_path)
    before = torch.cat([p.detach().flatten().clone() for p in task.parameters()])
    row = trainer._train_step({"x": torch.randn(4, 4), "y": torch.full((4,), 50.0)})
    after = torch.cat([p.detach().flatten() for p in task.parameters()])
    assert row is not None and row["grad_norm"] > 1.0  # the logged norm is the unclipped one
    assert float((after - before).norm()) == pytest.approx(1e-3, rel=1e-4)


def test_optimizer_param_groups_hook(tmp_path: Path) -> None:
    class TwoRates(RegressionTask):
        def optimizer_param_groups(self) -> list[dict]:
            return [{"params": self.net[0].parameters(), "lr": 1e-4},
                    {"params": self.net[2].parameters()}]

    task = TwoRates()
    task.net[0].bias.requires_grad_(False)
    trainer = Trainer(task, NoisyRegression(), small_config(), tmp_path)
    groups = trainer.optimizer.param_groups
    assert [len(g["params"]) for g in groups] == [1, 2]  # the frozen bias is left out
    assert groups[0]["lr"] == pytest.approx(1e-4 / 3) and groups[1]["lr"] == pytest.approx(1e-2 / 3)


def test_tensorboard_when_installed_and_quiet_when_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    written: list[tuple[str, int]] = []

    class FakeWriter:
        def __init__(self, log_dir: str) -> None:
            assert log_dir.endswith("tensorboard")

        def add_scalar(self, name: str, value: float, step: int) -> None:
            written.append((name, step))

        def close(self) -> None:
            written.append(("closed", -1))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train(tmp_path / "a", small_config(**{"train.epochs": 1}))
    assert ("train/total", 10) in written and ("val/mse", 10) in written
    assert written[-1] == ("closed", -1)

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with caplog.at_level(logging.INFO, logger="hand_lib.train"):
        train(tmp_path / "b", small_config(**{"train.epochs": 1}))
    assert [r.message for r in caplog.records].count(
        "tensorboard is not installed: metrics go to CSV only") == 1


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "step_00000001.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)

    def crash_midway(obj: object, handle) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000001.pt"]  # no temporary left


def test_checkpoint_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "step_00000005.pt"
    save_checkpoint({"format": "hand_lib.train/1", "model": {}}, path)
    with pytest.raises(CheckpointError, match=r"step_00000005\.pt: checkpoint has no key 'optim"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "step_00000009.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"step_00000009\.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "step_00000009.pt")
    (tmp_path / ".step_00000010.pt.tmp-1").write_bytes(b"")  # an interrupted write
    assert latest_checkpoint(tmp_path).name == "step_00000009.pt"


def test_load_weights_with_prefix_map_and_clear_errors(tmp_path: Path) -> None:
    class Finetune(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shape_net = nn.Linear(3, 2)
            self.keypoint_net = nn.Linear(2, 2)

    source = nn.Module()
    source.hourglass = nn.Linear(2, 2)
    source.other = nn.Linear(1, 1)
    path = tmp_path / "kp.pt"
    save_checkpoint({"model": source.state_dict()}, path)
    target = Finetune()
    loaded = load_weights(target, path, {"hourglass.": "keypoint_net."})
    assert loaded == ["keypoint_net.bias", "keypoint_net.weight"]
    assert torch.equal(target.keypoint_net.weight, source.hourglass.weight)
    with pytest.raises(CheckpointError, match=r"kp\.pt: .*unexpected keys .*shape_net\.other"):
        load_weights(target, path, {"": "shape_net."})
    with pytest.raises(CheckpointError, match=r"kp\.pt: no key starts with"):
        load_weights(target, path, {"encoder.": "shape_net."})
    torch.save({"weight": torch.zeros(2, 3)}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"missing keys .*shape_net\.bias"):
        load_weights(target, tmp_path / "partial.pt", {"": "shape_net."})
    torch.save({"weight": torch.zeros(5, 3), "bias": torch.zeros(5)}, tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch: shape_net\.weight \(5, 3\)"):
        load_weights(target, tmp_path / "wide.pt", {"": "shape_net."})


def test_frozen_modules_are_not_optimised(tmp_path: Path) -> None:
    task = RegressionTask()
    freeze(task.net[0])
    frozen = task.net[0].weight.detach().clone()
    trainer = Trainer(task, NoisyRegression(), small_config(**{"train.epochs": 1}), tmp_path)
    trainer.fit()
    assert len(trainer.params) == 2 and torch.equal(task.net[0].weight, frozen)


# --------------------------------------------------------------------------- presets


def test_stage_presets_follow_the_reference_schedules() -> None:
    shape = stage_config("s2hand_shape")
    assert (shape.train.epochs, shape.train.batch_size, shape.optim.name, shape.optim.lr) == (
        120, 64, "adam", 1e-3)
    assert shape.schedule.milestones == (30, 60, 90) and shape.schedule.gamma == 0.5
    assert stage_config("s2hand_kp").schedule == shape.schedule
    finetune = stage_config("s2hand_finetune")
    assert (finetune.train.epochs, finetune.optim.lr, finetune.schedule.milestones) == (
        60, 2.5e-4, (20, 40))
    assert stage_config("s2hand_e2e").train.epochs == 180
    hamuco = stage_config("hamuco")
    assert (hamuco.optim.name, hamuco.optim.lr, hamuco.schedule.name) == ("adamw", 3e-4, "cosine")
    assert (hamuco.train.epochs, hamuco.train.batch_size, hamuco.data["views"]) == (50, 8, 8)
    quick = stage_config("s2hand_shape", "quick")
    assert quick.train.epochs == 12 and quick.schedule.milestones == (3, 6, 9)
    smoke = stage_config("s2hand_finetune", "smoke")
    assert smoke.train.epochs == 1 and smoke.train.batch_size <= 4
    assert smoke.schedule.milestones == pytest.approx((1 / 3, 2 / 3))


@pytest.mark.parametrize("stage", STAGES)
def test_every_preset_round_trips_through_yaml(stage: str, tmp_path: Path) -> None:
    for profile in PROFILES:
        cfg = stage_config(stage, profile)
        dump_config(cfg, tmp_path / "c.yaml")
        assert load_config(tmp_path / "c.yaml", ExperimentConfig) == cfg
    with pytest.raises(ValueError, match="unknown profile"):
        stage_config(stage, "fast")  # type: ignore[arg-type]



class EpochAwareRegression(NoisyRegression):
    """Records the epochs the trainer announces through ``transform.set_epoch``."""

    class _Transform:
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

    def __init__(self) -> None:
        super().__init__()
        self.transform = self._Transform()


def test_trainer_tells_the_dataset_transform_each_epoch(tmp_path: Path) -> None:
    """Augmentation seeded by (seed, epoch, index) must change between epochs."""
    from torch.utils.data import Subset

    from hand_lib.train.trainer import set_data_epoch

    data = EpochAwareRegression()
    cfg = small_config(**{"train.epochs": 3})
    seed_everything(0)
    with Trainer(RegressionTask(), data, cfg, tmp_path / "run") as trainer:
        trainer.fit()
    assert data.transform.epochs == [0, 1, 2]
    wrapped = EpochAwareRegression()
    set_data_epoch(Subset(wrapped, [0, 1]), 5)  # looks through wrappers
    assert wrapped.transform.epochs == [5]
    set_data_epoch([1, 2, 3], 1)  # nothing to tell: no error


@pytest.mark.parametrize("stop_at", [12, 15])
def test_step_validation_curve_survives_a_kill(tmp_path: Path, stop_at: int) -> None:
    """Validation every N steps gives a learning curve from step 0 (the untrained
    network); a run killed and resumed writes the same curve as an uninterrupted one, whether
    it was killed between checkpoints (12) or just after a validated checkpoint (15)."""
    cfg = small_config(**{"train.validate_every_steps": 5, "train.checkpoint_every_steps": 5})
    train(tmp_path / "a", cfg)
    rows = read_rows(tmp_path / "a" / "val_metrics.csv")
    # every 5 steps; the epoch ends (10, 20, 30) fall on validated steps: not repeated
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20, 25, 30]
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", cfg, lambda: RegressionTask(crash_at=stop_at))
    train(tmp_path / "b", cfg, seed=99, resume=True)

    def curve(path: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(path)]

    assert curve(tmp_path / "b" / "val_metrics.csv") == curve(tmp_path / "a" / "val_metrics.csv")
    assert curve(tmp_path / "b" / "metrics.csv") == curve(tmp_path / "a" / "metrics.csv")
