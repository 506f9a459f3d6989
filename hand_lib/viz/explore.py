"""What the exploration notebook (``notebooks/90_explore.ipynb``) needs besides the widgets:
the dataset to show."""

from __future__ import annotations

from pathlib import Path

#: the small set made when no dataset is at hand: (train sequences, test sequences, frames)
EXPLORE_SIZE = (1, 1, 2)


def explore_dataset(data: str = "synthetic", data_root: str = "", profile: str = "quick",
                    mano_path: str = "") -> Path:  # fmt: skip
    """The HanCo-layout dataset the exploration notebook browses.

    Args:
        data: the suite's dataset choice. ``"hanco"``: ``data_root`` (must exist). Otherwise
            ``data_root`` when ``data == "synthetic"`` and it is given; else the suite's
            synthetic set of ``profile`` if notebook 00 has made it; else a small synthetic
            set (:data:`EXPLORE_SIZE`, about 2 s to make) at
            ``data/synthetic_hanco/explore``, with simulated pseudo labels.
        data_root: see ``data``. profile: suite profile. mano_path: MANO model for a set
            that has to be made ("" = open hand model).

    Nothing is written into an existing dataset (its pseudo labels are the pipeline's to
    write); without them the widgets show the ground truth only.
    """
    from hand_lib.data.synthetic import DEFAULT_ROOT, SyntheticConfig, generate
    from hand_lib.pseudo.hanco_labels import label_hanco_simulated

    if data == "hanco" or (data == "synthetic" and data_root):
        root = Path(data_root)
        if not (root / "meta.json").is_file():
            raise FileNotFoundError(f"{root} is not a HanCo-layout dataset (no meta.json)")
        return root
    suite_set = DEFAULT_ROOT / profile
    if (suite_set / "meta.json").is_file():
        return suite_set
    root = DEFAULT_ROOT / "explore"
    train, test, frames = EXPLORE_SIZE
    config = SyntheticConfig(num_train_sequences=train, num_test_sequences=test,
                             frames_per_sequence=frames, mano_path=str(mano_path or ""))
    generate(root, config, workers=1, progress=False)
    label_hanco_simulated(root, progress=False)
    return root
