"""The benchmark scripts still run and write the JSON their RESULTS.md sections cite.

Tiny sizes only: these check that the scripts work end to end, not how fast anything is
(speed goals live in the scripts and benchmarks/RESULTS.md, never in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("dense", [False, True])
def test_bench_mano_pairs_ours_with_smplx(tmp_path, dense):
    pytest.importorskip("smplx")
    result = _run("bench_mano.py", "--device", "cpu", "--batch", "2", "--min-time", "0",
                  *(["--dense-weights"] if dense else []), tmp_path=tmp_path)  # fmt: skip
    (row,) = result["rows"]
    assert row["batch"] == 2 and result["env"]["dense_weights"] is dense
    kinds = ("fwd", "fwd_bwd")
    for kind in kinds:
        assert row[f"ours_{kind}_ms"] > 0 and row[f"smplx_{kind}_ms"] > 0
        assert row[f"speedup_{kind}"] > 0 and row[f"rounds_{kind}"] >= 5
    # with the fused CPU kernel, ours is also timed on the PyTorch skinning path
    two_paths = result["env"]["skinning"] == "fused-cpu"
    assert all((f"speedup_torch_{kind}" in row) is two_paths for kind in kinds)


@pytest.mark.slow
def test_bench_mano_times_the_compiled_layer(tmp_path):
    """--compile adds torch.compile(layer) as a variant timed in the same rounds (the GPU
    session uses it with CUDA graphs)."""
    pytest.importorskip("smplx")
    result = _run("bench_mano.py", "--device", "cpu", "--batch", "2", "--min-time", "0",
                  "--compile", "default", tmp_path=tmp_path)  # fmt: skip
    (row,) = result["rows"]
    assert result["env"]["compile"] == "default"
    for kind in ("fwd", "fwd_bwd"):
        assert row[f"ours_compiled_{kind}_ms"] > 0 and row[f"speedup_compiled_{kind}"] > 0


def test_bench_render_reports_time_and_memory(tmp_path):
    result = _run("bench_render.py", "--device", "cpu", "--batches", "1", "--size", "32",
                  "--min-time", "0", "--threads", "1", tmp_path=tmp_path)  # fmt: skip
    assert result["image_size"] == 32
    rows = {(r["backend"], r["case"], r["batch"]): r for r in result["rows"]}
    assert set(rows) == {("torch", "silhouette", 1), ("torch", "rgb", 1)}
    assert all(r["ms"] > 0 and r["peak_mb"] >= 0 for r in rows.values())
