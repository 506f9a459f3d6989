"""Run the notebook suite headlessly with papermill (what ``./run_all.sh`` calls).

Each notebook in ``notebooks/`` (sorted by name, ``NN_name.ipynb``) is executed with the
suite's parameters injected into its ``parameters`` cell. Executed copies go to
``results/<profile>/notebooks/``; each notebook writes its figures and tables under
``results/<profile>/``. The run stops at the first failure, naming the notebook and the
cell, and keeps everything that finished; ``--from NN`` resumes there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "quick", "full")
DATASETS = ("synthetic", "hanco", "freihand", "ho3d")


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    seconds: float
    status: str  # "ok", "failed", "skipped"
    error: str = ""


def discover(notebook_dir: Path, start: str = "") -> list[Path]:
    """Notebooks in execution order; with ``start`` (e.g. "03"), from the first whose name
    starts with it."""
    books = sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    if start:
        matches = [i for i, p in enumerate(books) if p.name.startswith(start)]
        if not matches:
            names = ", ".join(p.name for p in books) or "none"
            raise SystemExit(f"--from {start}: no notebook starts with it (have: {names})")
        books = books[matches[0] :]
    return books


def parameters_for(profile: str, data: str, data_root: str, mano: str, results: Path) -> dict:
    """Values injected into every notebook's ``parameters`` cell."""
    import torch

    return {
        "profile": profile,
        "data": data,
        "data_root": data_root,
        "mano_path": mano,
        "results_dir": str(results),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def run_suite(
    profile: str = "quick",
    data: str = "synthetic",
    data_root: str = "",
    mano: str = "",
    start: str = "",
    notebook_dir: Path = REPO / "notebooks",
    results_root: Path = REPO / "results",
) -> list[NotebookRun]:
    """Execute the notebooks; returns one record per notebook (the failing one last)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if data not in DATASETS:
        raise ValueError(f"data must be one of {DATASETS}, got {data!r}")
    results = (results_root / profile).resolve()
    out_dir = results / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = parameters_for(profile, data, data_root, mano, results)
    books = discover(notebook_dir, start)
    print(
        f"[suite] profile={profile} data={data} device={params['device']} "
        f"notebooks={len(books)} -> {results}",
        flush=True,
    )
    runs: list[NotebookRun] = []
    for book in books:
        print(f"[suite] {book.name} ...", flush=True)
        t0 = time.perf_counter()
        tmp_out = out_dir / f".{book.stem}.partial.ipynb"
        try:
            papermill.execute_notebook(
                str(book),
                str(tmp_out),
                parameters=params,
                cwd=str(notebook_dir),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
            )
        except PapermillExecutionError as exc:
            seconds = time.perf_counter() - t0
            failed = out_dir / book.name
            os.replace(tmp_out, failed)
            msg = f"{_describe_cell(failed, exc.cell_index)}: {exc.ename}: {exc.evalue}"
            runs.append(NotebookRun(book.name, seconds, "failed", msg))
            print(
                f"[suite] FAILED {book.name} at {msg}\n[suite] the executed notebook with the "
                f"traceback is {failed}; resume with --from {book.name[:2]}",
                flush=True,
            )
            break
        os.replace(tmp_out, out_dir / book.name)
        runs.append(NotebookRun(book.name, time.perf_counter() - t0, "ok"))
        print(f"[suite] {book.name} ok in {runs[-1].seconds:.1f} s", flush=True)
    _write_summary(results, params, runs)
    return runs


def _describe_cell(executed: Path, cell_index: int) -> str:
    """Name the failing cell by its index in the *source* notebook (papermill's index counts
    the injected-parameters cell) and its first line."""
    import nbformat

    cells = nbformat.read(executed, as_version=4).cells
    injected = [
        i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])
    ]
    source_index = cell_index - 1 if injected and cell_index > injected[0] else cell_index
    first_line = (
        cells[cell_index].source.strip().splitlines()[0] if cells[cell_index].source else ""
    )
    return f"cell {source_index} ({first_line[:60]!r})"


def _write_summary(results: Path, params: dict, runs: list[NotebookRun]) -> None:
    lines = ["| notebook | status | seconds |", "|---|---|---:|"]
    lines += [f"| {r.notebook} | {r.status} | {r.seconds:.1f} |" for r in runs]
    total = sum(r.seconds for r in runs)
    lines.append(f"| total | | {total:.1f} |")
    table = "\n".join(lines)
    print("\n" + table)
    (results / "suite_summary.md").write_text(table + "\n")
    payload = {"parameters": params, "runs": [asdict(r) for r in runs]}
    (results / "suite_summary.json").write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=PROFILES)
    parser.add_argument("--data", default="synthetic", choices=DATASETS)
    parser.add_argument("--data-root", default="")
    parser.add_argument("--mano", default="")
    parser.add_argument("--from", dest="start", default="")
    args = parser.parse_args(argv)
    runs = run_suite(args.profile, args.data, args.data_root, args.mano, args.start)
    return 1 if any(r.status == "failed" for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
