"""Synthetic HanCo generator throughput: camera images per second at 224x224.

An "image" is one camera view of one frame; each writes three JPEGs (rgb, rgb_merged,
mask_hand) and two JSON files (per-camera MANO fit, visibility), plus the frame's calib, xyz
and shape files. Measured end to end (process start-up, rendering, compositing, encoding,
atomic writes) into a temporary folder, for each worker count, plus a per-stage split in one
process. Also reports images per CPU-second (user + system time of this process and its
workers), which depends much less than wall time on other jobs sharing the machine, and the
load average before and after each run. Prints a table and JSON (``--json PATH`` too).

    python benchmarks/bench_synthetic.py --frames 48 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

from hand_lib.data.synthetic import FrameSynthesizer, SyntheticConfig, generate, write_frame


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stage_split(config: SyntheticConfig, frames: int, root: Path) -> dict[str, float]:
    """Milliseconds per frame (8 views) of synthesis (pose, render, composite, labels) and of
    writing, in this process with one thread."""
    torch.set_num_threads(1)
    synth = FrameSynthesizer(config)
    synth.frame(0, 0)  # warm-up
    items = config.frames()[:frames]
    t_synth = t_write = 0.0
    for seq, frame in items:
        t0 = time.perf_counter()
        data = synth.frame(seq, frame)
        t1 = time.perf_counter()
        write_frame(root, data, config.jpeg_quality)
        t_write += time.perf_counter() - t1
        t_synth += t1 - t0
    return {"synthesize_ms_per_frame": 1e3 * t_synth / len(items),
            "write_ms_per_frame": 1e3 * t_write / len(items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames per run (x8 images)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    # sequences of 6 frames, enough of them for --frames
    n_seq = -(-args.frames // 6)
    config = SyntheticConfig(num_train_sequences=n_seq, num_test_sequences=0,
                             frames_per_sequence=6, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            root = Path(tmp) / f"w{workers}"
            load_before = os.getloadavg()[0]
            cpu0 = _cpu_seconds()
            report = generate(root, config, workers=workers, progress=False, limit=args.frames)
            cpu = _cpu_seconds() - cpu0
            rows.append({"workers": workers, "images": report.images_written,
                         "seconds": report.seconds, "images_per_second": report.images_per_second,
                         "cpu_seconds": cpu, "images_per_cpu_second": report.images_written / cpu,
                         "load_before": load_before, "load_after": os.getloadavg()[0]})
        split = stage_split(config, min(args.frames, 16), Path(tmp) / "split")
    result = {
        "benchmark": "synthetic_generator",
        "image_size": config.image_size,
        "cameras": config.num_cameras,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "torch": torch.__version__,
        "runs": rows,
        **split,
    }
    print(f"{'workers':>8} {'images':>8} {'seconds':>9} {'img/s':>8} {'img/cpu-s':>10} "
          f"{'load':>10}")
    for r in rows:
        print(f"{r['workers']:>8} {r['images']:>8} {r['seconds']:>9.2f} "
              f"{r['images_per_second']:>8.1f} {r['images_per_cpu_second']:>10.1f} "
              f"{r['load_before']:>4.1f}->{r['load_after']:<4.1f}")
    print(f"one process: synthesize {split['synthesize_ms_per_frame']:.1f} ms + write "
          f"{split['write_ms_per_frame']:.1f} ms per frame of {config.num_cameras} views")
    print(json.dumps(result, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
