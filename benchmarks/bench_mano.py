"""ManoLayer vs smplx.MANO on the same model file: forward and forward+backward.

Prints a table and writes JSON (``--json``). Both layers load the same file (the open hand
model by default, or ``--mano PATH``), use axis-angle input with the mean pose added
(``flat_hand_mean=False``), float32, and are timed in the same process on the same inputs.

    python benchmarks/bench_mano.py --device cpu --batch 1 64 1024 16384
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
from _timing import paired_ratio, steps_for, time_interleaved

from hand_lib.mano import ManoLayer
from hand_lib.mano.io import OPEN_HAND_RIGHT, resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024, 16384])
    parser.add_argument("--mano", default=None, help="MANO file or folder (default: open hand)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--min-time", type=float, default=3.0, help="seconds per pair of cases (both timed)"
    )
    args = parser.parse_args()

    import smplx  # optional dependency (the 'compare' extra): only the benchmark needs it

    device = torch.device(args.device)
    path = resolve_model_path(args.mano) or OPEN_HAND_RIGHT
    ours = ManoLayer(path).to(device)
    ref = smplx.MANO(str(path), is_rhand=True, use_pca=False, flat_hand_mean=False).to(device)
    gen = torch.Generator().manual_seed(0)

    rows = []
    for batch in args.batch:
        pose = (torch.randn(batch, 16, 3, generator=gen) * 0.3).to(device)
        betas = torch.randn(batch, 10, generator=gen).to(device)
        transl = (torch.randn(batch, 3, generator=gen) * 0.1).to(device)

        def ours_fwd(pose=pose, betas=betas, transl=transl):
            with torch.no_grad():
                return ours(pose, betas, transl).vertices

        def ref_fwd(pose=pose, betas=betas, transl=transl):
            with torch.no_grad():
                return ref(
                    betas=betas,
                    global_orient=pose[:, 0],
                    hand_pose=pose[:, 1:].flatten(1),
                    transl=transl,
                ).vertices

        def ours_fb(pose=pose, betas=betas, transl=transl):
            p, b = pose.clone().requires_grad_(), betas.clone().requires_grad_()
            out = ours(p, b, transl)
            (out.vertices.square().sum() + out.joints.square().sum()).backward()

        def ref_fb(pose=pose, betas=betas, transl=transl):
            p, b = pose.clone().requires_grad_(), betas.clone().requires_grad_()
            out = ref(betas=b, global_orient=p[:, 0], hand_pose=p[:, 1:].flatten(1), transl=transl)
            (out.vertices.square().sum() + out.joints.square().sum()).backward()

        row: dict[str, float] = {"batch": batch}
        for kind, pair in [("fwd", (ours_fwd, ref_fwd)), ("fwd_bwd", (ours_fb, ref_fb))]:
            steps = steps_for(list(pair), device, args.min_time)
            ours_ms, ref_ms = time_interleaved(list(pair), device, steps, warmup=2)
            row[f"ours_{kind}_ms"] = statistics.median(ours_ms)
            row[f"smplx_{kind}_ms"] = statistics.median(ref_ms)
            row[f"speedup_{kind}"] = paired_ratio(ref_ms, ours_ms)
            row[f"rounds_{kind}"] = steps
        rows.append(row)

    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "smplx": getattr(smplx, "__version__", "0.1.28"),
        "model": str(path),
    }
    print(
        f"ManoLayer vs smplx.MANO on {env['device']} ({env['device_name']}, "
        f"{env['threads']} threads, torch {env['torch']}), median ms"
    )
    header = (
        f"{'batch':>6} | {'fwd ours':>9} {'fwd smplx':>9} {'x':>6} | "
        f"{'f+b ours':>9} {'f+b smplx':>9} {'x':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['batch']:>6} | {r['ours_fwd_ms']:9.3f} {r['smplx_fwd_ms']:9.3f} "
            f"{r['speedup_fwd']:6.2f} | {r['ours_fwd_bwd_ms']:9.3f} "
            f"{r['smplx_fwd_bwd_ms']:9.3f} {r['speedup_fwd_bwd']:6.2f}"
        )
    result = {"env": env, "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
