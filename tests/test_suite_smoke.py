"""The whole notebook suite, smoke profile, headless (what ``./run_all.sh --profile smoke``
runs): every notebook executes, asserts its claims, and the results table has every row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hand_lib.suite import REPO, run_suite

ROWS = ("mean hand (identity rotation)", "mean hand (best constant rotation)",
        "triangulated pseudo labels", "S2HAND shape", "S2HAND finetune", "S2HAND end-to-end",
        "HaMuCo single-view", "HaMuCo cross-view", "HaMuCo fused", "supervised (upper bound)")


@pytest.mark.slow
def test_smoke_profile_runs_every_notebook(synthetic_smoke_root, tmp_path):
    runs = run_suite("smoke", data_root=str(synthetic_smoke_root), results_root=tmp_path)
    books = sorted(p.name for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))
    assert [r.notebook for r in runs] == books
    failed = [f"{r.notebook}: {r.error}" for r in runs if r.status != "ok"]
    assert not failed, failed
    results = tmp_path / "smoke"
    table = pd.read_csv(results / "results_table.csv", index_col=0)
    assert tuple(table.index) == ROWS
    assert table[["MPJPE", "PA-MPJPE", "N-JE", "AUC"]].notna().all().all()
    for column in ("PA-MPJPE", "MPJPE"):  # every learned and baseline row has its interval
        rows = [r for r in ROWS if r != "triangulated pseudo labels"]
        assert (table.loc[rows, f"{column} lo"] <= table.loc[rows, column]).all()
        assert (table.loc[rows, column] <= table.loc[rows, f"{column} hi"]).all()
    md = (results / "results_table.md").read_text()
    assert all(f"| {row} |" in md for row in ROWS)
    claims = (results / "claims.md").read_text()
    assert "mean hand" in claims and ("holds" in claims or "noise" in claims)
    summary = json.loads((results / "suite_summary.json").read_text())
    assert summary["parameters"]["profile"] == "smoke"
    for figure in ("02_shape_losses", "04_finetune_renders", "07_pck_curves", "07_qualitative",
                   "05_hamuco_error_vs_views", "02_shape_learning_curve"):
        assert (results / "figures" / f"{figure}.png").is_file(), figure
    assert (results / "figures" / "07_hand_viewer.html").is_file()
