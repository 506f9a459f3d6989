"""Label folders remember what they were computed from, so stale labels are never resumed.

A resumable labeller keeps existing files; without provenance it would also keep labels made
from an older dataset (a synthetic folder upgraded in place) or other parameters, silently.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from hand_lib.pseudo.agreement import AGREEMENT_LABEL_DIR, label_hanco_agreement
from hand_lib.pseudo.hanco_labels import label_hanco_simulated
from hand_lib.pseudo.labels import (
    HANCO_LABEL_DIR,
    label_stamp_matches,
    label_stamp_path,
    read_hanco_label,
)


@pytest.fixture
def root(synthetic_smoke_root, tmp_path):
    """A private copy of the smoke set without labels (train images only)."""
    out = tmp_path / "smoke"
    shutil.copytree(synthetic_smoke_root, out, ignore=shutil.ignore_patterns(
        "rgb_merged", "mask_hand", "rgb_2D_keypoints*"))  # fmt: skip
    return out


def _files(root, label_dir=HANCO_LABEL_DIR):
    return sorted((root / label_dir).rglob("*.json"))


def test_stamp_written_beside_the_folder_and_resume_keeps_files(root):
    first = label_hanco_simulated(root, seed=0, progress=False)
    stamp = label_stamp_path(root / HANCO_LABEL_DIR)
    assert stamp == root / f"{HANCO_LABEL_DIR}.provenance.json" and stamp.is_file()
    recorded = json.loads(stamp.read_text())
    assert recorded["labeller"] == "simulated" and recorded["seed"] == 0
    assert recorded["data"]["generator_version"] >= 2  # the synthetic generator's record
    assert first.written == len(_files(root)) > 0  # the folder holds label files only
    again = label_hanco_simulated(root, seed=0, progress=False)
    assert again.written == 0 and again.skipped_existing == first.written


def test_interrupted_relabelling_does_not_mix_old_and_new(root):
    label_hanco_simulated(root, seed=0, progress=False)
    total = len(_files(root))
    # a relabelling with seed 1 that stopped after one sequence
    label_hanco_simulated(root, seed=1, sequences=[0], progress=False)
    done = len(_files(root))
    assert 0 < done < total
    resumed = label_hanco_simulated(root, seed=1, progress=False)
    assert resumed.skipped_existing == done and resumed.written == total - done
    fresh = root.parent / "fresh"
    shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("rgb_2D_keypoints*"))
    label_hanco_simulated(fresh, seed=1, progress=False)
    for path in _files(root):
        twin = fresh / path.relative_to(root)
        np.testing.assert_array_equal(read_hanco_label(path)[0], read_hanco_label(twin)[0])


def test_other_seed_or_upgraded_data_relabels_everything(root, caplog):
    label_hanco_simulated(root, seed=0, progress=False)
    path = _files(root)[0]
    before = read_hanco_label(path)
    with caplog.at_level(logging.WARNING):
        other = label_hanco_simulated(root, seed=1, progress=False)
    assert other.written == len(_files(root)) and other.skipped_existing == 0
    assert "relabelling every view" in caplog.text
    assert not np.array_equal(read_hanco_label(path)[0], before[0])
    # the stale labels were moved aside with their stamp, not deleted and not mixed in
    aside = root / f"{HANCO_LABEL_DIR}.stale-1"
    old = aside / path.relative_to(root / HANCO_LABEL_DIR)
    np.testing.assert_array_equal(read_hanco_label(old)[0], before[0])
    assert json.loads(label_stamp_path(aside).read_text())["seed"] == 0
    # the dataset changes under the labels (as a generator upgrade in place does)
    meta = root / "synthetic.json"
    record = json.loads(meta.read_text())
    record["generator_version"] += 1
    meta.write_text(json.dumps(record))
    assert label_stamp_matches(root / HANCO_LABEL_DIR, {"anything": 1}) is False
    again = label_hanco_simulated(root, seed=1, progress=False)
    assert again.written == other.written and again.skipped_existing == 0
    assert (root / f"{HANCO_LABEL_DIR}.stale-2").is_dir()  # the next free name
    assert label_hanco_simulated(root, seed=1, progress=False).written == 0


def test_unstamped_labels_are_kept_with_a_warning(root, caplog):
    label_hanco_simulated(root, seed=0, progress=False)
    label_stamp_path(root / HANCO_LABEL_DIR).unlink()  # e.g. labels shipped with HanCo
    path = _files(root)[0]
    before = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        summary = label_hanco_simulated(root, seed=5, progress=False)
    assert summary.written == 0 and path.read_bytes() == before
    assert "without a provenance stamp" in caplog.text
    assert not label_stamp_path(root / HANCO_LABEL_DIR).exists()  # not blessed
    assert label_hanco_simulated(root, seed=5, overwrite=True, progress=False).written > 0
    assert label_stamp_path(root / HANCO_LABEL_DIR).exists()


def test_agreement_labels_follow_their_source(root):
    label_hanco_simulated(root, seed=0, progress=False)
    first = label_hanco_agreement(root, progress=False)
    assert first.written > 0
    assert label_hanco_agreement(root, progress=False).written == 0  # resumed
    stamp = json.loads(label_stamp_path(root / AGREEMENT_LABEL_DIR).read_text())
    assert stamp["source"]["seed"] == 0
    label_hanco_simulated(root, seed=2, progress=False)  # raw labels change
    redo = label_hanco_agreement(root, progress=False)
    assert redo.written == first.written and redo.skipped_existing == 0
    assert label_hanco_agreement(root, mode="filter", progress=False).written == first.written


def test_corrupt_stamp_is_named(root):
    label_hanco_simulated(root, seed=0, progress=False)
    stamp = label_stamp_path(root / HANCO_LABEL_DIR)
    stamp.write_text("{not json")
    with pytest.raises(ValueError, match="provenance.json"):
        label_hanco_simulated(root, seed=0, progress=False)


def test_training_run_refuses_other_labels(root, tmp_path, caplog):
    """A run folder records its data and labels; resuming it on others is refused."""
    from hand_lib.experiments.data import RUN_PROVENANCE, data_provenance, guard_run_data

    label_hanco_simulated(root, seed=0, progress=False)
    run = tmp_path / "runs" / "s2hand_shape"
    first = data_provenance(root)
    assert first["labels"]["seed"] == 0 and first["pseudo_dir"] == HANCO_LABEL_DIR
    guard_run_data(run, first)  # no checkpoint yet: recorded
    assert json.loads((run / RUN_PROVENANCE).read_text()) == json.loads(json.dumps(first))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step_00000010.pt").write_bytes(b"")
    guard_run_data(run, data_provenance(root))  # same data: resumes
    label_hanco_simulated(root, seed=4, progress=False)
    with pytest.raises(RuntimeError, match="other data or pseudo labels"):
        guard_run_data(run, data_provenance(root))
    (run / RUN_PROVENANCE).unlink()  # a run from before the records: warned, resumed
    with caplog.at_level(logging.WARNING):
        guard_run_data(run, data_provenance(root))
    assert "without checking its data" in caplog.text
