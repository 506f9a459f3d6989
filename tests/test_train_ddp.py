"""DDP test: ``torchrun --nproc_per_node 2`` on CPU (gloo) trains a tiny model through the
shared trainer, stops after 5 steps and resumes to 8. Both ranks must end with identical
parameters, equal to a single process training on the union of their batches; a NaN on one
rank must make both skip the step; only rank 0 writes logs and checkpoints."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hand_lib

REPO_ROOT = Path(hand_lib.__file__).resolve().parent.parent

SCRIPT = '''
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from hand_lib.train import ExperimentConfig, Trainer, override, seed_everything


class Task(nn.Module):
    def __init__(self, nan_on_rank: int | None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.nan_on_rank = nan_on_rank

    def training_step(self, batch, step):
        x, y = batch
        mse = ((self.net(x).squeeze(-1) - y) ** 2).mean()
        rank = int(__import__("os").environ.get("RANK", "0"))
        if step == 2 and self.nan_on_rank in (rank, -1):
            mse = mse * float("nan")
        return {"mse": mse}

    def validation_step(self, batch):
        x, y = batch
        return {"mse": ((self.net(x).squeeze(-1) - y) ** 2).mean()}


def run(out: Path, batch_size: int, nan_on_rank: int, max_steps: int = 0,
        resume: bool = False) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(1))
    cfg = override(ExperimentConfig(), {
        "train.epochs": 2, "train.batch_size": batch_size, "train.checkpoint_every_steps": 3,
        "train.log_every_steps": 1, "train.progress_bar": False, "optim.lr": 1e-2,
    })
    seed_everything(0)
    task = Task(nan_on_rank)
    val_data = TensorDataset(x[:11], x[:11].sum(1))
    with Trainer(task, data, cfg, out, val_data=val_data, resume=resume) as trainer:
        summary = trainer.fit(max_steps=max_steps or None)
        rank = trainer.dist.rank
    result = {"state": task.state_dict(), "bad_steps": summary.bad_steps,
              "steps": summary.steps, "val": summary.val_metrics}
    torch.save(result, out.parent / f"result_{out.name}_rank{rank}.pt")


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
        sys.argv[5] == "resume")
'''


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    # Stop after 5 of the 8 steps (the NaN of step 3 is in this part), then resume.
    for args in (["5", "fresh"], ["0", "resume"]):
        ddp = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             "2", str(script), str(tmp_path / "ddp"), "4", "1", *args],
            env=env, capture_output=True, text=True, timeout=240,
        )
        assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    # The same data seen by one process in batches of 8 (= the two ranks' batches of 4),
    # with the NaN on the whole batch of step 2.
    runpy.run_path(str(script), run_name="ddp_train")["run"](tmp_path / "single", 8, -1)

    ranks = [torch.load(tmp_path / f"result_ddp_rank{r}.pt") for r in range(2)]
    reference = torch.load(tmp_path / "result_single_rank0.pt")
    for rank in ranks:
        # Both ranks skipped step 3; the count survived the resume.
        assert rank["steps"] == 8 and rank["bad_steps"] == 1
        for name, value in rank["state"].items():
            assert torch.equal(value, ranks[0]["state"][name]), name
            torch.testing.assert_close(value, reference["state"][name], rtol=1e-5, atol=1e-6)
    # Only rank 0 wrote: one set of logs and checkpoints, no per-rank copies.
    written = sorted(p.relative_to(tmp_path / "ddp").as_posix()
                     for p in (tmp_path / "ddp").rglob("*"))
    assert written == ["checkpoints", "checkpoints/step_00000005.pt",
                       "checkpoints/step_00000006.pt", "checkpoints/step_00000008.pt",
                       "config.yaml", "metrics.csv", "val_metrics.csv"], written
    log = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert len(log) == 1 + 8 and log[3].split(",")[-2] == "1"  # step 3 logged as bad
    # Validation is sharded (6 + 5 samples, batches of 4: 2 + 2 batches) and merged over ranks.
    assert ranks[0]["val"] == ranks[1]["val"] and set(ranks[0]["val"]) == {"mse"}
