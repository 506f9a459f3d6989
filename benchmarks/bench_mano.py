"""ManoLayer vs smplx.MANO on the same model file: forward and forward+backward.

Prints a table and writes JSON (``--json``). Both layers load the same file (the open hand
model by default, or ``--mano PATH``), use axis-angle input with the mean pose added
(``flat_hand_mean=False``), float32, and are timed in the same process on the same inputs.
On the CPU, when the fused skinning kernel builds (``hand_lib.mano.fused``), ours is also
timed on the PyTorch skinning path in the same rounds (columns "torch").

    python benchmarks/bench_mano.py --device cpu --batch 1 64 1024 16384
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import paired_ratio, steps_for, time_interleaved

from hand_lib.mano import ManoLayer, fused
from hand_lib.mano.io import (
    OPEN_HAND_RIGHT,
    _read_raw,
    _to_array,
    resolve_model_path,
    save_model_file,
)


def dense_weights_copy(path: Path, out: Path) -> Path:
    """The model at ``path`` with weights 0.9 w + 0.1 / J: every entry nonzero, rows still
    summing to 1, the skinning barely changed."""
    # the project's chumpy-free reader, so a real MANO file works too (arrays made plain)
    raw = {k: _to_array(v, k, path) for k, v in _read_raw(path).items()}
    weights = np.asarray(raw["weights"], dtype=np.float64)
    raw["weights"] = 0.9 * weights + 0.1 / weights.shape[1]
    return save_model_file(out, raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024, 16384])
    parser.add_argument("--mano", default=None, help="MANO file or folder (default: open hand)")
    parser.add_argument(
        "--dense-weights",
        action="store_true",
        help="give every vertex a nonzero weight for all 16 joints (both layers load the "
        "changed file): the worst case for the fused kernel, which skips zero weights",
    )
    parser.add_argument(
        "--compile",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"],
        default=None,
        help="also time torch.compile(layer) in this mode (reduce-overhead = CUDA graphs)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--min-time", type=float, default=3.0, help="seconds per pair of cases (both timed)"
    )
    args = parser.parse_args()

    import smplx  # optional dependency (the 'compare' extra): only the benchmark needs it

    device = torch.device(args.device)
    path = resolve_model_path(args.mano) or OPEN_HAND_RIGHT
    if args.dense_weights:
        path = dense_weights_copy(path, Path(tempfile.mkdtemp()) / "dense_weights.pkl")
    ours = ManoLayer(path).to(device)
    ref = smplx.MANO(str(path), is_rhand=True, use_pca=False, flat_hand_mean=False).to(device)
    gen = torch.Generator().manual_seed(0)
    skinning = fused.active_path(device)  # builds the CPU kernel now, outside the timings
    two_paths = skinning != "torch"
    compiled = None
    if args.compile:
        mode = None if args.compile == "default" else args.compile
        compiled = torch.compile(ours, mode=mode, dynamic=False)
    # extra variants of ours, timed in the same rounds: "torch" = the PyTorch skinning path
    # when the default is the fused kernel, "compiled" = torch.compile(layer)
    extras = (["torch"] if two_paths else []) + (["compiled"] if compiled is not None else [])

    rows = []
    for batch in args.batch:
        pose = (torch.randn(batch, 16, 3, generator=gen) * 0.3).to(device)
        betas = torch.randn(batch, 10, generator=gen).to(device)
        transl = (torch.randn(batch, 3, generator=gen) * 0.1).to(device)

        def ours_fwd(layer=ours, pose=pose, betas=betas, transl=transl):
            with torch.no_grad():
                return layer(pose, betas, transl).vertices

        def ref_fwd(pose=pose, betas=betas, transl=transl):
            with torch.no_grad():
                return ref(
                    betas=betas,
                    global_orient=pose[:, 0],
                    hand_pose=pose[:, 1:].flatten(1),
                    transl=transl,
                ).vertices

        def ours_fb(layer=ours, pose=pose, betas=betas, transl=transl):
            p, b = pose.clone().requires_grad_(), betas.clone().requires_grad_()
            out = layer(p, b, transl)
            (out.vertices.square().sum() + out.joints.square().sum()).backward()

        def ref_fb(pose=pose, betas=betas, transl=transl):
            p, b = pose.clone().requires_grad_(), betas.clone().requires_grad_()
            out = ref(betas=b, global_orient=p[:, 0], hand_pose=p[:, 1:].flatten(1), transl=transl)
            (out.vertices.square().sum() + out.joints.square().sum()).backward()

        def torch_path(fn):
            def call():
                with fused.forced("off"):
                    return fn()

            return call

        row: dict[str, float] = {"batch": batch}
        for kind, ours_fn, ref_fn in [("fwd", ours_fwd, ref_fwd), ("fwd_bwd", ours_fb, ref_fb)]:
            # ours (default path) and smplx, then the extra variants, called in turn
            cases = {"ours": ours_fn, "smplx": ref_fn}
            if two_paths:
                cases["torch"] = torch_path(ours_fn)
            if compiled is not None:
                cases["compiled"] = functools.partial(ours_fn, layer=compiled)
                for _ in range(3):  # compile (and, reduce-overhead, record the graphs) first
                    cases["compiled"]()
            steps = steps_for(list(cases.values()), device, args.min_time)
            samples = dict(
                zip(cases, time_interleaved(list(cases.values()), device, steps, warmup=2),
                    strict=True)
            )  # fmt: skip
            ref_ms = samples["smplx"]
            row[f"ours_{kind}_ms"] = statistics.median(samples["ours"])
            row[f"smplx_{kind}_ms"] = statistics.median(ref_ms)
            row[f"speedup_{kind}"] = paired_ratio(ref_ms, samples["ours"])
            row[f"rounds_{kind}"] = steps
            for name in extras:
                row[f"ours_{name}_{kind}_ms"] = statistics.median(samples[name])
                row[f"speedup_{name}_{kind}"] = paired_ratio(ref_ms, samples[name])
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
        "skinning": skinning,
        "dense_weights": args.dense_weights,
        "compile": args.compile,
    }
    notes = {
        "torch": "ours on the PyTorch skinning path",
        "compiled": f"torch.compile({args.compile})",
    }
    print(
        f"ManoLayer vs smplx.MANO on {env['device']} ({env['device_name']}, "
        f"{env['threads']} threads, torch {env['torch']}, skinning: {skinning}), median ms; "
        "x = smplx / ours" + "".join(f"; '{name}' = {notes[name]}" for name in extras)
    )
    extra = "".join(f" {name:>9} {'x':>6}" for name in extras)
    header = (
        f"{'batch':>6} | {'fwd ours':>9} {'fwd smplx':>9} {'x':>6}{extra} | "
        f"{'f+b ours':>9} {'f+b smplx':>9} {'x':>6}{extra}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        cells = []
        for kind in ("fwd", "fwd_bwd"):
            cell = (
                f"{r[f'ours_{kind}_ms']:9.3f} {r[f'smplx_{kind}_ms']:9.3f} "
                f"{r[f'speedup_{kind}']:6.2f}"
            )
            for name in extras:
                cell += f" {r[f'ours_{name}_{kind}_ms']:9.3f} {r[f'speedup_{name}_{kind}']:6.2f}"
            cells.append(cell)
        print(f"{r['batch']:>6} | " + " | ".join(cells))
    result = {"env": env, "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
