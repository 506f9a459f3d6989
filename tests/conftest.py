"""Shared fixtures. Tests write every data file they need; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from hand_lib.mano.joints import MANO_PARENTS


def random_mano_arrays(seed: int = 0, num_vertices: int = 120) -> dict:
    """A small random model with MANO's keys and MANO-like magnitudes (not a hand).

    Used to test file I/O and the layer's arithmetic independently of the open hand model.
    """
    rng = np.random.default_rng(seed)
    V, J = num_vertices, 16
    v_template = rng.normal(scale=0.05, size=(V, 3))
    J_regressor = rng.random((J, V)) * (rng.random((J, V)) < 0.1)
    J_regressor[:, 0] += 1e-3
    J_regressor /= J_regressor.sum(1, keepdims=True)
    weights = rng.random((V, J)) ** 4
    weights /= weights.sum(1, keepdims=True)
    kintree = np.stack([np.array(MANO_PARENTS, dtype=np.int64) % (2**32), np.arange(J)])
    return {
        "v_template": v_template,
        "f": rng.integers(0, V, size=(2 * V - 4, 3)).astype(np.uint32),
        "J_regressor": scipy.sparse.csc_matrix(J_regressor),
        "kintree_table": kintree,
        "weights": weights,
        "shapedirs": rng.normal(scale=0.005, size=(V, 3, 10)),
        "posedirs": rng.normal(scale=0.002, size=(V, 3, 135)),
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0] * 0.5,
        "hands_mean": rng.normal(scale=0.2, size=45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "tip_vertex_ids": np.array([3, 10, 20, 30, 40], dtype=np.int64),
    }


@pytest.fixture
def random_model_arrays() -> dict:
    return random_mano_arrays()


@pytest.fixture(scope="session")
def synthetic_smoke_root(tmp_path_factory) -> Path:
    """The smoke-profile synthetic HanCo set with simulated pseudo labels (made once)."""
    from hand_lib.data.synthetic import ensure_synthetic_hanco
    from hand_lib.pseudo.hanco_labels import label_hanco_simulated

    root = ensure_synthetic_hanco(tmp_path_factory.mktemp("data") / "synthetic_smoke",
                                  profile="smoke", workers=2, progress=False)
    label_hanco_simulated(root, seed=0, progress=False)
    return root


@pytest.fixture(scope="session", autouse=True)
def _crop_cache_dir(tmp_path_factory) -> None:
    """Crop caches of the tests go to a temporary folder, not the checkout's data/cache."""
    import os

    if "HAND_LIB_CACHE_DIR" not in os.environ:
        os.environ["HAND_LIB_CACHE_DIR"] = str(tmp_path_factory.mktemp("crop_cache"))
