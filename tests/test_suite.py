"""The papermill runner: parameters injected, outputs kept, failures named, resume."""

from __future__ import annotations

import json

import nbformat
import pytest

from hand_lib.suite import discover, run_suite


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    params = 'profile = "x"\nresults_dir = ""'
    _notebook(
        d / "00_ok.ipynb",
        [params, "from pathlib import Path\nPath(results_dir, 'marker.txt').write_text(profile)"],
    )
    _notebook(d / "01_fails.ipynb", [params, "x = 1", "raise RuntimeError('boom')"])
    _notebook(d / "02_after.ipynb", [params, "y = 2"])
    return d


def test_runs_in_order_stops_at_failure_and_resumes(notebooks, tmp_path):
    results = tmp_path / "results"
    runs = run_suite("smoke", notebook_dir=notebooks, results_root=results)
    assert [(r.notebook, r.status) for r in runs] == [
        ("00_ok.ipynb", "ok"),
        ("01_fails.ipynb", "failed"),
    ]
    assert "cell 2" in runs[-1].error and "RuntimeError: boom" in runs[-1].error
    # parameters were injected and the notebook's own output was written
    assert (results / "smoke" / "marker.txt").read_text() == "smoke"
    executed = nbformat.read(results / "smoke" / "notebooks" / "00_ok.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert (results / "smoke" / "notebooks" / "01_fails.ipynb").is_file()  # kept, with traceback
    assert not (results / "smoke" / "notebooks" / "02_after.ipynb").exists()
    summary = json.loads((results / "smoke" / "suite_summary.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["ok", "failed"]

    (notebooks / "01_fails.ipynb").unlink()
    runs = run_suite("smoke", start="02", notebook_dir=notebooks, results_root=results)
    assert [(r.notebook, r.status) for r in runs] == [("02_after.ipynb", "ok")]


def test_from_unknown_prefix_is_an_error(notebooks):
    assert [p.name for p in discover(notebooks, "01")] == ["01_fails.ipynb", "02_after.ipynb"]
    with pytest.raises(SystemExit, match="no notebook starts with"):
        discover(notebooks, "09")


def test_bad_profile(notebooks, tmp_path):
    with pytest.raises(ValueError, match="profile must be one of"):
        run_suite("huge", notebook_dir=notebooks, results_root=tmp_path)
