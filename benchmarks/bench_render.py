"""Renderer speed and memory: forward + backward of the soft silhouette and of the textured,
lit RGB render of the open hand mesh (778 vertices, 1552 faces) at 224 x 224.

Ours (``hand_lib.render``, backend "torch") always; neural_renderer 1.1.3 in the same run
when it is installed and the device is CUDA. Prints a table and writes JSON (``--json``).

- silhouette: ``MeshRenderer.silhouette`` (ours) / ``mode="silhouettes"`` (neural_renderer),
  loss = mean, gradient w.r.t. the vertices.
- rgb: per-face albedo and S2HAND lighting, loss = mean of the image, gradients w.r.t.
  vertices, albedo and lighting. Ours returns rgb, soft alpha, depth and face ids; for
  neural_renderer only its rgb + alpha call is timed.
- Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` per case; on CPU each case runs in
  a fresh subprocess and reports its peak RSS minus the RSS before the case (``ru_maxrss``).

    python benchmarks/bench_render.py --device cuda --batches 1 32 64 --json out.json
    python benchmarks/bench_render.py --device cpu --batches 1 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch
from _timing import time_call

from hand_lib.mano import ManoLayer
from hand_lib.render import MeshRenderer, RenderSettings

CASES = ("silhouette", "rgb")


def _rss_mb() -> float:
    """Current resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def hand_batch(batch: int, device: torch.device, size: int):
    """Posed open-hand meshes filling a size x size crop, faces, K, albedo and lighting."""
    gen = torch.Generator().manual_seed(0)
    layer = ManoLayer()
    pose = torch.randn(batch, 16, 3, generator=gen) * 0.2
    transl = torch.tensor([0.065, 0.035, 0.6]) + torch.randn(batch, 3, generator=gen) * 0.005
    with torch.no_grad():
        vertices = layer(pose, torch.zeros(batch, 10), transl).vertices
    f = 500.0 * size / 224
    K = torch.tensor([[f, 0.0, (size - 1) / 2], [0.0, f, (size - 1) / 2], [0.0, 0.0, 1.0]])
    faces = layer.faces
    albedo = 0.3 + 0.6 * torch.rand(batch, faces.shape[0], 3, generator=gen)
    lighting = torch.tensor([0.6, 0.5, 1.0, 0.95, 0.9, 1.0, 1.0, 1.0, 0.2, -0.3, -1.0])
    lighting = lighting.expand(batch, 11).clone()
    return (vertices.to(device), faces.to(device), K.expand(batch, 3, 3).contiguous().to(device),
            albedo.to(device), lighting.to(device))


def make_step(backend: str, case: str, batch: int, device: torch.device, size: int):
    """A closure running one forward + backward."""
    vertices, faces, K, albedo, lighting = hand_batch(batch, device, size)
    vertices.requires_grad_(True)
    albedo.requires_grad_(True)
    lighting.requires_grad_(True)
    settings = RenderSettings(image_size=(size, size), background=(1.0, 1.0, 1.0))
    if backend == "torch":
        renderer = MeshRenderer(settings)

        def step():
            if case == "silhouette":
                loss = renderer.silhouette(vertices, faces, K).mean()
            else:
                loss = renderer.render(vertices, faces, K, face_colors=albedo,
                                       lighting=lighting).rgb.mean()
            loss.backward()
    else:
        from hand_lib.render.nr_backend import NeuralRendererBackend

        nr = NeuralRendererBackend(settings)
        faces_b = faces.expand(batch, -1, -1).contiguous()

        def step():
            if case == "silhouette":
                loss = nr.silhouette(vertices, faces_b, K).mean()
            else:
                loss = nr.render_rgb(vertices, faces_b, K, albedo, None, lighting)[0].mean()
            loss.backward()

    return step


def measure(backend: str, case: str, batch: int, device: torch.device, size: int,
            min_time: float) -> dict:
    """Time one case in this process; peak memory as described in the module docstring."""
    rss_before = _rss_mb()
    step = make_step(backend, case, batch, device, size)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    ms = time_call(step, device, min_time, max_reps=100)
    if device.type == "cuda":
        peak_mb, peak_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_allocated"
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_mb, peak_kind = peak_rss - rss_before, "cpu_rss_increase"
    return {"backend": backend, "case": case, "batch": batch, "ms": round(ms, 2),
            "peak_mb": round(peak_mb, 1), "peak_kind": peak_kind}


def measure_isolated(backend: str, case: str, batch: int, args) -> dict:
    """``measure`` in a fresh interpreter (so that ru_maxrss belongs to this case alone)."""
    cmd = [sys.executable, __file__, "--device", args.device, "--size", str(args.size),
           "--min-time", str(args.min_time), "--one", backend, case, str(batch)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def neural_renderer_available(device: torch.device) -> tuple[bool, str]:
    if device.type != "cuda":
        return False, "device is not CUDA"
    try:
        import neural_renderer  # noqa: F401
    except ImportError:
        return False, "neural_renderer is not installed (tools/install_neural_renderer.py)"
    return True, ""


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 64])
    parser.add_argument("--size", type=int, default=224, help="image side, pixels")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "CASE", "BATCH"),
                        help=argparse.SUPPRESS)  # internal: one isolated CPU measurement
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    if args.one:
        backend, case, batch = args.one
        print(json.dumps(measure(backend, case, int(batch), device, args.size, args.min_time)))
        return

    has_nr, why_not = neural_renderer_available(device)
    backends = ["torch"] + (["neural_renderer"] if has_nr else [])
    rows = []
    for batch in args.batches:
        for case in args.cases:
            for backend in backends:
                if device.type == "cpu":
                    row = measure_isolated(backend, case, batch, args)
                else:
                    row = measure(backend, case, batch, device, args.size, args.min_time)
                rows.append(row)
                print(f"  {backend:16s} {case:10s} batch {batch:3d}: {row['ms']:9.2f} ms, "
                      f"peak {row['peak_mb']:8.1f} MiB", file=sys.stderr)

    print(f"\nRenderer fwd+bwd, open hand (778 v, 1552 f), {args.size}x{args.size}, {device}"
          + ("" if has_nr else f"; neural_renderer not measured: {why_not}"))
    header = f"{'case':10s} {'batch':>5s} {'ours ms':>9s} {'ours MiB':>9s}"
    if has_nr:
        header += f" {'NR ms':>9s} {'NR MiB':>9s} {'speed-up':>8s}"
    print(header)
    for batch in args.batches:
        for case in args.cases:
            ours = next(r for r in rows if (r["backend"], r["case"], r["batch"]) ==
                        ("torch", case, batch))
            line = f"{case:10s} {batch:5d} {ours['ms']:9.2f} {ours['peak_mb']:9.1f}"
            if has_nr:
                nr = next(r for r in rows if (r["backend"], r["case"], r["batch"]) ==
                          ("neural_renderer", case, batch))
                line += f" {nr['ms']:9.2f} {nr['peak_mb']:9.1f} {nr['ms'] / ours['ms']:7.2f}x"
            print(line)
    result = {"machine": machine(device), "image_size": args.size,
              "neural_renderer": has_nr or why_not, "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
