"""Training-step throughput of S2HAND (finetune stage) and HaMuCo against their encoder's
own forward + backward (the ceiling), and the data loader's throughput alone.

Prints a table and writes JSON (``--json``). Per method, in the same process, on the same
device and the same images:

- step: one full optimisation step as :class:`hand_lib.train.Trainer` runs it: forward
  (under bf16 autocast with ``--amp`` on CUDA), the sum of the weighted loss terms, the
  finite check, backward, the global gradient norm, the optimiser step (S2HAND finetune:
  Adam 2.5e-4; HaMuCo: AdamW 3e-4, weight decay 1e-2, from the suite's presets), zero_grad.
  Logging, checkpoints and the lr schedule are left out.
- ceiling: the same network's encoder (``task.net.encoder``) forward + backward alone on the
  same image batch (S2HAND: B images; HaMuCo: B x N), loss = mean of the pooled feature.
- ratio = step images/s / ceiling images/s. The goal of the issues is >= 0.60 on a GPU at
  the defaults (S2HAND: batch 64, 224 px, EfficientNet-B3; HaMuCo: 8 samples x 8 views,
  256 px, ResNet-18).
- loader (``--data-root``): HanCo + HandCrop (``hanco_dataset``, training augmentation) in a
  DataLoader with ``--workers`` processes, the same batch and crop size, images/s after the
  first batch; "loader ok" when it exceeds the step's images/s. It is timed alone: on a
  machine with few cores its workers would compete with the step for them.

Step batches are synthetic (random images, plausible keypoints, crop intrinsics and a random
camera rig), so the step and ceiling timings do not depend on the disk. The ceiling and the
step are called in turn (``--warmup`` untimed rounds, then ``--steps`` timed ones), so load
from other jobs hits both alike; images/s come from the median time of each, and the JSON
also gives the ratio of the fastest calls. HaMuCo's loader yields all 8 views of a frame
whatever ``--views`` is; it counts the present ones. Peak memory (CUDA only):
``torch.cuda.max_memory_allocated``, the ceiling's from its first call (before any step), the
step's over the rest of the run.

    python benchmarks/bench_train.py --device cuda --method both --json train.json
    python benchmarks/bench_train.py --device cuda --amp --data-root /data/HanCo --workers 8
    python benchmarks/bench_train.py --device cpu --profile smoke --batch 4 --image-size 64 \\
        --hamuco-batch 2 --views 4 --hamuco-image-size 64 --steps 5 --warmup 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _timing import sync, time_interleaved
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hand_lib.experiments import (
    SuiteSettings,
    build_task,
    hanco_dataset,
    suite_settings,
    training_config,
)
from hand_lib.experiments.hamuco import build_hamuco_task
from hand_lib.train.optim import build_optimizer

METHODS = ("s2hand", "hamuco")
#: the suite stage whose preset (optimiser, grad clipping) each method's step uses
STAGE_OF = {"s2hand": "s2hand_finetune", "hamuco": "hamuco"}


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=amp and device.type == "cuda")  # fmt: skip


def crop_intrinsics(batch_shape: tuple[int, ...], size: int) -> Tensor:
    """(*batch_shape, 3, 3) intrinsics of a size x size hand crop: f = 2.5 S, centred."""
    f = 2.5 * size
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])
    return K.expand(*batch_shape, 3, 3).contiguous()


def random_rig(batch: int, views: int, generator: torch.Generator) -> Tensor:
    """(B, N, 4, 4) world-to-camera extrinsics: random rotations, the hand 0.6 m ahead."""
    q, r = torch.linalg.qr(torch.randn(batch, views, 3, 3, generator=generator))
    R = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]
    R = R * torch.det(R)[..., None, None].sign()  # proper rotations (det +1)
    M = torch.eye(4).repeat(batch, views, 1, 1)
    M[..., :3, :3] = R
    M[..., 2, 3] = 0.6
    return M


def keypoints_in_crop(shape: tuple[int, ...], size: int, generator: torch.Generator) -> Tensor:
    """(*shape, 21, 2) pseudo keypoints, pixels: a hand-sized cloud about the crop centre."""
    return size / 2 + torch.randn(*shape, 21, 2, generator=generator) * size / 8


def s2hand_batch(batch: int, size: int, generator: torch.Generator) -> dict[str, Tensor]:
    """A synthetic single-view batch with the keys of :class:`hand_lib.tasks.S2HandTask`."""
    return {
        "image": torch.rand(batch, 3, size, size, generator=generator),
        "K": crop_intrinsics((batch,), size),
        "pseudo_2d": keypoints_in_crop((batch,), size, generator),
        "pseudo_conf": 0.5 + 0.5 * torch.rand(batch, 21, generator=generator),
    }


def hamuco_batch(batch: int, views: int, size: int,
                 generator: torch.Generator) -> dict[str, Tensor]:  # fmt: skip
    """A synthetic multi-view batch with the keys of :class:`hand_lib.tasks.HaMuCoTask`."""
    return {
        "image": torch.rand(batch, views, 3, size, size, generator=generator),
        "K": crop_intrinsics((batch, views), size),
        "M": random_rig(batch, views, generator),
        "pseudo_2d": keypoints_in_crop((batch, views), size, generator),
        "pseudo_conf": 0.5 + 0.5 * torch.rand(batch, views, 21, generator=generator),
        "pseudo_valid": torch.ones(batch, views, dtype=torch.bool),
        "view_mask": torch.ones(batch, views, dtype=torch.bool),
    }


def method_settings(args: argparse.Namespace) -> SuiteSettings:
    """The profile's sizes with the command line's overrides."""
    settings = suite_settings(args.profile)
    changes: dict[str, Any] = {}
    if args.image_size is not None:
        if args.image_size % 4:
            raise SystemExit(f"--image-size must be a multiple of 4 (the heatmap is a quarter "
                             f"of it), got {args.image_size}")  # fmt: skip
        changes.update(image_size=args.image_size, heatmap_size=args.image_size // 4)
    if args.hamuco_image_size is not None:
        changes["hamuco_image_size"] = args.hamuco_image_size
    if args.encoder is not None:
        changes["encoder"] = args.encoder
    if args.hamuco_encoder is not None:
        changes["hamuco_encoder"] = args.hamuco_encoder
    return dataclasses.replace(settings, **changes)


class StepRunner:
    """One method's training step and encoder ceiling on a fixed batch."""

    def __init__(self, method: str, settings: SuiteSettings, args: argparse.Namespace,
                 device: torch.device, stage: str | None = None) -> None:  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        self.stage = stage or STAGE_OF[method]
        if method == "s2hand":
            self.task: nn.Module = build_task(self.stage, settings)
            self.batch = s2hand_batch(args.batch, settings.image_size, gen)
            self.samples, self.images = args.batch, args.batch
            self.size, self.encoder_name = settings.image_size, settings.encoder
        else:
            self.task = build_hamuco_task(settings)
            self.batch = hamuco_batch(args.hamuco_batch, args.views,
                                      settings.hamuco_image_size, gen)  # fmt: skip
            self.samples = args.hamuco_batch
            self.images = args.hamuco_batch * args.views
            self.size, self.encoder_name = settings.hamuco_image_size, settings.hamuco_encoder
        self.task.to(device).train()
        self.batch = {k: v.to(device) for k, v in self.batch.items()}
        self.encoder_images = self.batch["image"].reshape(-1, 3, self.size, self.size)
        config = training_config(self.stage, settings)
        self.grad_clip_norm = config.train.grad_clip_norm
        self.params = [p for p in self.task.parameters() if p.requires_grad]
        self.optimizer = build_optimizer([{"params": self.params}], config.optim)
        self.optimizer_name = config.optim.name
        self.device, self.amp = device, args.amp
        self.step_index = 0
        self.skipped = 0

    def train_step(self) -> None:
        """Forward, loss sum, backward, optimiser step (as the Trainer, without logging)."""
        with _autocast(self.device, self.amp):
            terms = self.task.training_step(self.batch, self.step_index)
        total = torch.stack([t.float().reshape(()) for t in terms.values()]).sum()
        self.step_index += 1
        if not bool(torch.isfinite(total.detach())):
            self.skipped += 1
        else:
            total.backward()
            grads = [p.grad for p in self.params if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads)
            if bool(torch.isfinite(norm)):
                if self.grad_clip_norm is not None:
                    torch.nn.utils.clip_grads_with_norm_(self.params, self.grad_clip_norm, norm)
                self.optimizer.step()
            else:
                self.skipped += 1
        self.optimizer.zero_grad(set_to_none=True)

    def ceiling_step(self) -> None:
        """The encoder alone: forward + backward on the step's images."""
        encoder = self.task.net.encoder
        with _autocast(self.device, self.amp):
            loss = encoder(self.encoder_images).pooled.float().mean()
        loss.backward()
        encoder.zero_grad(set_to_none=True)


def measure_stages(settings: SuiteSettings, args: argparse.Namespace,
                   device: torch.device) -> dict[str, Any]:
    """S2HAND's shape and finetune steps on the same batch, called in turn: the finetune
    step adds the hourglass, the texture head and the differentiable renderer, and the goal
    is that it costs at most 3x the shape step (training size, the profile's networks)."""
    shape = StepRunner("s2hand", settings, args, device, stage="s2hand_shape")
    finetune = StepRunner("s2hand", settings, args, device, stage="s2hand_finetune")
    finetune.batch = shape.batch
    shape_ms, finetune_ms = time_interleaved([shape.train_step, finetune.train_step], device,
                                             args.steps, args.warmup)
    ratio = statistics.median(finetune_ms) / statistics.median(shape_ms)
    return {"batch": args.batch, "image_size": settings.image_size,
            "shape_ms_median": round(statistics.median(shape_ms), 2),
            "finetune_ms_median": round(statistics.median(finetune_ms), 2),
            "shape_ms": [round(t, 2) for t in shape_ms],
            "finetune_ms": [round(t, 2) for t in finetune_ms],
            "finetune_over_shape": round(ratio, 3), "goal": 3.0}


def _peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_method(method: str, settings: SuiteSettings, args: argparse.Namespace,
                   device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Time the step and the ceiling of one method (ceiling first, then the step)."""
    runner = StepRunner(method, settings, args, device)
    # Peaks: the ceiling's from one call before any step (no optimiser state yet); the
    # step's over all later calls (the interleaved ceiling calls need less than a step).
    _reset_peak(device)
    runner.ceiling_step()
    sync(device)
    ceiling_peak = _peak_mb(device)
    _reset_peak(device)
    ceiling_ms, step_ms = time_interleaved([runner.ceiling_step, runner.train_step], device,
                                           args.steps, args.warmup)  # fmt: skip
    step_peak = _peak_mb(device)
    step_med, ceiling_med = statistics.median(step_ms), statistics.median(ceiling_ms)
    step_ips = runner.images / (step_med / 1e3)
    ceiling_ips = runner.images / (ceiling_med / 1e3)
    best_ratio = min(ceiling_ms) / min(step_ms)
    return {
        "method": method, "stage": STAGE_OF[method], "samples": runner.samples,
        "views": args.views if method == "hamuco" else 1, "images": runner.images,
        "image_size": runner.size, "encoder": runner.encoder_name,
        "optimizer": runner.optimizer_name, "amp": bool(args.amp and device.type == "cuda"),
        "step_ms_median": round(step_med, 2), "step_ms": [round(t, 2) for t in step_ms],
        "ceiling_ms_median": round(ceiling_med, 2),
        "ceiling_ms": [round(t, 2) for t in ceiling_ms],
        "step_images_per_s": round(step_ips, 2), "ceiling_images_per_s": round(ceiling_ips, 2),
        "ratio": round(step_ips / ceiling_ips, 3), "ratio_of_fastest": round(best_ratio, 3),
        "goal_ratio": 0.6,
        "skipped_steps": runner.skipped,
        "step_peak_mb": step_peak, "ceiling_peak_mb": ceiling_peak,
    }  # fmt: skip


def measure_loader(method: str, row: dict[str, Any], args: argparse.Namespace,
                   device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Images/s of HanCo + HandCrop through a DataLoader at the step's batch and crop size."""
    mode = "single" if method == "s2hand" else "multi"
    dataset = hanco_dataset(args.data_root, "train", row["image_size"], mode=mode)
    loader = DataLoader(dataset, batch_size=row["samples"], shuffle=True, drop_last=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0,
                        pin_memory=device.type == "cuda")  # fmt: skip
    if len(loader) == 0:
        raise SystemExit(f"{args.data_root}: {len(dataset)} {mode}-view training samples, "
                         f"fewer than one batch of {row['samples']}")  # fmt: skip
    t_start = time.perf_counter()
    images = batches = 0
    first_s = None
    t0 = None
    while batches < args.loader_batches + 1:
        for batch in loader:
            if first_s is None:  # worker start-up and the first batch are not steady state
                first_s = time.perf_counter() - t_start
                t0 = time.perf_counter()
            else:
                present = batch["view_mask"].sum() if mode == "multi" else len(batch["image"])
                images += int(present)
            batches += 1
            if batches >= args.loader_batches + 1:
                break
    seconds = time.perf_counter() - t0
    ips = images / seconds
    return {"dataset_samples": len(dataset), "workers": args.workers,
            "batches_timed": batches - 1, "first_batch_s": round(first_s, 2),
            "images_per_s": round(ips, 2),
            "exceeds_step": ips > row["step_images_per_s"]}  # fmt: skip


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def _fmt(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'-':>{width}s}" if value is None else f"{value:{width}.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--method", choices=(*METHODS, "both"), default="both")
    parser.add_argument("--profile", choices=("full", "quick", "smoke"), default="full",
                        help="suite profile giving the network sizes (default: the papers')")
    parser.add_argument("--batch", type=int, default=64, help="S2HAND images per step")
    parser.add_argument("--image-size", type=int, default=None,
                        help="S2HAND crop side, px (heatmap = side / 4; default: profile's)")
    parser.add_argument("--encoder", default=None, help="S2HAND encoder (default: profile's)")
    parser.add_argument("--hamuco-batch", type=int, default=8, help="HaMuCo samples per step")
    parser.add_argument("--views", type=int, default=8, help="HaMuCo views per sample")
    parser.add_argument("--hamuco-image-size", type=int, default=None,
                        help="HaMuCo crop side, px (default: profile's)")
    parser.add_argument("--hamuco-encoder", default=None,
                        help="HaMuCo encoder (default: profile's)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per case")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="HanCo-layout dataset: also time the data loader alone")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader processes")
    parser.add_argument("--loader-batches", type=int, default=20,
                        help="loader batches timed after the first")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--stages", action="store_true",
                        help="time S2HAND's shape against its finetune step instead (goal: "
                             "finetune <= 3x shape)")
    args = parser.parse_args()
    for name in ("batch", "hamuco_batch", "views", "steps", "loader_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.workers < 0:
        parser.error("--warmup and --workers must be >= 0")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.amp and device.type != "cuda":
        print("--amp is ignored on CPU (autocast is CUDA only here)", file=sys.stderr)
    settings = method_settings(args)
    methods = METHODS if args.method == "both" else (args.method,)
    if args.stages:
        row = measure_stages(settings, args, device)
        print(f"\nS2HAND step time by stage, {device}, {settings.profile} networks, "
              f"batch {row['batch']}, {row['image_size']} px")
        print(f"{'shape ms':>10s} {'finetune ms':>12s} {'finetune/shape':>15s} {'goal':>6s}")
        print(f"{row['shape_ms_median']:10.1f} {row['finetune_ms_median']:12.1f} "
              f"{row['finetune_over_shape']:15.2f} {'<= 3':>6s}")
        result = {"machine": machine(device), "settings": dataclasses.asdict(settings),
                  "stages": row}
        print(json.dumps(result))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
        return

    rows = []
    for method in methods:
        row = measure_method(method, settings, args, device)
        print(f"  {method:7s} step {row['step_ms_median']:9.2f} ms, ceiling "
              f"{row['ceiling_ms_median']:9.2f} ms", file=sys.stderr)
        if args.data_root is not None:
            row["loader"] = measure_loader(method, row, args, device)
            print(f"  {method:7s} loader {row['loader']['images_per_s']:9.1f} images/s",
                  file=sys.stderr)
        rows.append(row)

    print(f"\nTraining step vs encoder fwd+bwd (ceiling), {device}"
          + (", bf16 autocast" if args.amp and device.type == "cuda" else ", float32")
          + ("" if args.data_root else "; loader not measured (no --data-root)"))
    header = (f"{'method':7s} {'encoder':16s} {'px':>4s} {'batch':>7s} {'step img/s':>11s} "
              f"{'ceil img/s':>11s} {'ratio':>6s} {'step MiB':>9s} {'ceil MiB':>9s}")
    if args.data_root:
        header += f" {'load img/s':>11s} {'ok':>3s}"
    print(header)
    for row in rows:
        batch = str(row["samples"]) + (f"x{row['views']}" if row["method"] == "hamuco" else "")
        line = (f"{row['method']:7s} {row['encoder']:16s} {row['image_size']:4d} {batch:>7s} "
                f"{row['step_images_per_s']:11.1f} {row['ceiling_images_per_s']:11.1f} "
                f"{row['ratio']:6.2f} {_fmt(row['step_peak_mb'], 9)} "
                f"{_fmt(row['ceiling_peak_mb'], 9)}")
        if "loader" in row:
            ok = "yes" if row["loader"]["exceeds_step"] else "no"
            line += f" {row['loader']['images_per_s']:11.1f} {ok:>3s}"
        print(line)
    result = {"machine": machine(device), "settings": dataclasses.asdict(settings),
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "rows": rows}  # fmt: skip
    print(json.dumps(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
