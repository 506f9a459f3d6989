"""Seed variation of the suite's trained methods: the noise band between runs.

Trains the chosen stages of a profile once per seed (the initialisation, the data order and
the augmentation change with the seed; the data and its pseudo labels do not), evaluates each
on the test split and prints, per method and metric, the mean over seeds, the standard
deviation and the range, beside the mean hand's row. The bootstrap intervals of a single run
(notebooks 02-06) cover the test sequences' sampling; this covers the training's.

    python benchmarks/seeds_study.py --profile quick --seeds 0 1 2 --json seeds_quick.json
    python benchmarks/seeds_study.py --profile smoke --stages supervised s2hand_shape

Each seed trains into ``<runs>/seed<k>/<stage>`` (default ``data/seeds_study/<profile>``)
and resumes there, so an interrupted study continues. The data root is the suite's
(``hand_lib.data.overview.multiview_root``: generated and labelled when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

STAGES = ("supervised", "s2hand_shape", "hamuco")


def train_and_evaluate(stage: str, root: Path, runs: Path, settings: Any, seed: int
                       ) -> dict[str, dict[str, float]]:
    """Rows (method -> metrics) of one stage trained with one seed."""
    from hand_lib.experiments.hamuco import evaluate_hamuco, train_hamuco
    from hand_lib.experiments.s2hand import evaluate_s2hand, train_s2hand_stage

    if stage == "hamuco":
        run = train_hamuco(root, runs, settings, seed=seed)
        rows = evaluate_hamuco(run, root, settings)
        return {f"HaMuCo {k.replace('_', '-')}": v for k, v in rows.items()
                if k in ("single_view", "cross_view", "fused")}
    run = train_s2hand_stage(stage, root, runs, settings, seed=seed)
    row, _ = evaluate_s2hand(run.task, root, settings)
    return {stage: row}


def summarise(per_seed: list[dict[str, dict[str, float]]], metrics: list[str]) -> pd.DataFrame:
    """(method, metric) -> mean, std (ddof 1), min, max over seeds."""
    records = []
    for method in per_seed[0]:
        for metric in metrics:
            values = np.array([rows[method][metric] for rows in per_seed], dtype=float)
            records.append({"method": method, "metric": metric, "seeds": len(values),
                            "mean": values.mean(),
                            "std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                            "min": values.min(), "max": values.max()})
    return pd.DataFrame.from_records(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--runs", default="", help="parent of the seed folders")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", default="", help="write the rows and the summary here")
    args = parser.parse_args()
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds must be distinct, got {args.seeds}")
    if args.threads:
        torch.set_num_threads(args.threads)

    from hand_lib.data.overview import multiview_root
    from hand_lib.experiments import suite_settings
    from hand_lib.experiments.baselines import MEAN_HAND_ROWS, mean_hand_rows

    settings = suite_settings(args.profile)
    root = multiview_root("synthetic", args.profile, "", progress=False)
    runs = Path(args.runs or Path("data") / "seeds_study" / args.profile)
    baseline, _ = mean_hand_rows(root, settings.image_size)
    metrics = ["PA-MPJPE", "MPJPE", "N-JE"]
    per_seed, seconds = [], []
    for seed in args.seeds:
        started = time.perf_counter()
        rows: dict[str, dict[str, float]] = {}
        for stage in args.stages:
            rows.update(train_and_evaluate(stage, root, runs / f"seed{seed}", settings, seed))
        per_seed.append(rows)
        seconds.append(time.perf_counter() - started)
        print(f"seed {seed}: {seconds[-1]:.0f} s; " + "; ".join(
            f"{m} PA {r['PA-MPJPE']:.2f} MPJPE {r['MPJPE']:.2f}" for m, r in rows.items()),
            flush=True)
    table = summarise(per_seed, metrics)
    mean_hand = baseline[MEAN_HAND_ROWS[1]]
    print(f"\nprofile {args.profile}, seeds {args.seeds}, test split; mean hand (best constant "
          "rotation): " + ", ".join(f"{m} {mean_hand[m]:.2f}" for m in metrics))
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if args.json:
        record = {"profile": args.profile, "seeds": args.seeds, "stages": args.stages,
                  "seconds_per_seed": seconds, "mean_hand": {m: mean_hand[m] for m in metrics},
                  "per_seed": per_seed, "summary": table.to_dict(orient="records"),
                  "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                              "threads": torch.get_num_threads(),
                              "load_average": list(os.getloadavg()),
                              "python": sys.version.split()[0]}}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
