"""FreiHAND evaluation path of HaMuCo: translation recovery, pred.json export, local scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hand_lib.eval import read_pred_json
from hand_lib.experiments import (
    evaluate_freihand,
    export_freihand_pred_json,
    predict_freihand,
)
from hand_lib.geometry import axis_angle_to_matrix, project_points, solve_translation
from hand_lib.models import HaMuCoConfig, HaMuCoNet
from hand_lib.tasks import HaMuCoTask

SIZE = 64  # network input crop
IMG = 32  # fixture images (FreiHAND's are 224x224)
SMALL = HaMuCoConfig(encoder="resnet18", token_dim=32, embed_dim=16, head_hidden=64,
                     global_grid=2, head_token_dim=8, mlp_ratio=1.0, dropout=0.0,
                     view_mask_prob=0.0)  # fmt: skip


# --------------------------------------------------------------------------- solve_translation


def random_hands(B: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 21, 3) root-relative points (metres), (B, 3) translations, (B, 3, 3) K."""
    gen = torch.Generator().manual_seed(seed)
    rel = 0.04 * torch.randn(B, 21, 3, generator=gen, dtype=torch.float64)
    rel = rel @ axis_angle_to_matrix(torch.randn(B, 3, generator=gen,
                                                 dtype=torch.float64)).transpose(1, 2)
    t = torch.stack([0.1 * torch.randn(B, generator=gen, dtype=torch.float64),
                     0.1 * torch.randn(B, generator=gen, dtype=torch.float64),
                     0.4 + 0.5 * torch.rand(B, generator=gen, dtype=torch.float64)], -1)
    K = torch.tensor([[500.0, 0.0, 112.0], [0.0, 480.0, 100.0], [0.0, 0.0, 1.0]],
                     dtype=torch.float64).repeat(B, 1, 1)
    K[:, 0, 1] = torch.linspace(0.0, 3.0, B, dtype=torch.float64)  # some skew
    return rel, t, K


def test_solve_translation_exact_without_noise() -> None:
    rel, t, K = random_hands(4)
    kps = project_points(rel + t[:, None], K)
    torch.testing.assert_close(solve_translation(rel, kps, K), t, atol=1e-10, rtol=0)
    weights = torch.rand(4, 21, dtype=torch.float64) + 0.1
    weights[:, :10] = 0.0  # ignored points
    kps_bad = kps.clone()
    kps_bad[:, :10] += 50.0  # garbage where the weight is zero
    torch.testing.assert_close(solve_translation(rel, kps_bad, K, weights), t, atol=1e-10, rtol=0)
    # float32 in, float32 out
    t32 = solve_translation(rel.float(), kps.float(), K.float())
    assert t32.dtype == torch.float32
    torch.testing.assert_close(t32, t.float(), atol=1e-4, rtol=0)


def test_solve_translation_degrades_gracefully_with_noise() -> None:
    rel, t, K = random_hands(64, seed=1)
    kps = project_points(rel + t[:, None], K)
    gen = torch.Generator().manual_seed(2)
    errors = []
    for sigma_px in (0.5, 2.0, 8.0):
        noisy = kps + sigma_px * torch.randn(kps.shape, generator=gen, dtype=kps.dtype)
        errors.append((solve_translation(rel, noisy, K) - t).norm(dim=-1).median().item())
    assert errors[0] < 0.005  # half a pixel: under 5 mm
    assert errors[0] < errors[1] < errors[2] < 0.1  # grows with the noise, stays bounded


def test_solve_translation_checks_inputs() -> None:
    rel, t, K = random_hands(2)
    kps = project_points(rel + t[:, None], K)
    with pytest.raises(ValueError, match="points_rel"):
        solve_translation(rel[0], kps, K)
    with pytest.raises(ValueError, match="keypoints_px"):
        solve_translation(rel, kps[:, :5], K)
    with pytest.raises(ValueError, match="K must be"):
        solve_translation(rel, kps, K[0])
    with pytest.raises(ValueError, match="non-negative"):
        solve_translation(rel, kps, K, -torch.ones(2, 21))
    one = torch.zeros(2, 21)
    one[:, 3] = 1.0
    with pytest.raises(ValueError, match="at least two points"):
        solve_translation(rel, kps, K, one)


# --------------------------------------------------------------------------- FreiHAND fixture


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def make_freihand(root: Path, n: int = 2, n_eval: int = 2) -> dict[str, np.ndarray]:
    """A tiny FreiHAND in the real layout; the training split has xyz and verts."""
    rng = np.random.default_rng(0)
    truth = {}
    for split, count in (("training", n), ("evaluation", n_eval)):
        f = 60.0 + 5.0 * np.arange(count)
        K = np.stack([[[fi, 0, (IMG - 1) / 2], [0, fi, (IMG - 1) / 2], [0, 0, 1]] for fi in f])
        xyz = np.array([0.0, 0.0, 0.6]) + rng.uniform(-0.05, 0.05, (count, 21, 3))
        verts = np.array([0.0, 0.0, 0.6]) + rng.uniform(-0.06, 0.06, (count, 778, 3))
        write_json(root / f"{split}_K.json", K.tolist())
        write_json(root / f"{split}_scale.json", rng.uniform(0.02, 0.03, count).tolist())
        if split == "training":
            write_json(root / f"{split}_xyz.json", xyz.tolist())
            write_json(root / f"{split}_verts.json", verts.tolist())
            write_json(root / f"{split}_mano.json", rng.normal(size=(count, 1, 61)).tolist())
        for image_id in range(4 * count if split == "training" else count):
            path = root / split / "rgb" / f"{image_id:08d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (IMG, IMG, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        truth[split] = dict(K=K, xyz=xyz, verts=verts)
    return truth


@pytest.fixture(scope="module")
def freihand_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("FreiHAND_pub_v2")
    make_freihand(root)
    return root


@pytest.fixture(scope="module")
def task() -> HaMuCoTask:
    torch.manual_seed(0)
    return HaMuCoTask(HaMuCoNet(SMALL)).eval()


def test_export_pred_json_round_trips(freihand_root: Path, task: HaMuCoTask,
                                      tmp_path: Path) -> None:
    out = export_freihand_pred_json(task, freihand_root, tmp_path / "sub" / "pred.json",
                                    image_size=SIZE, batch_size=2, expected_count=2)
    xyz, verts = read_pred_json(out)
    assert xyz.shape == (2, 21, 3) and verts.shape == (2, 778, 3)
    assert np.isfinite(xyz).all() and np.isfinite(verts).all()
    # metres, in front of the camera, hand-sized
    assert (xyz[..., 2] > 0.05).all() and (xyz[..., 2] < 5.0).all()
    assert (verts[..., 2] > 0.05).all()
    extent = np.linalg.norm(xyz - xyz.mean(1, keepdims=True), axis=-1).max(1)
    assert ((extent > 0.02) & (extent < 0.5)).all()


def test_predictions_reproject_onto_predicted_keypoints(freihand_root: Path,
                                                        task: HaMuCoTask) -> None:
    pred = predict_freihand(task, freihand_root, "evaluation", image_size=SIZE, batch_size=2,
                            crop_scale=0.8)
    K = torch.tensor(json.loads((freihand_root / "evaluation_K.json").read_text()),
                     dtype=torch.float64)
    reproj = project_points(torch.from_numpy(pred["xyz"]), K)
    err = (reproj - torch.from_numpy(pred["keypoints_2d"])).norm(dim=-1)
    # the weak-perspective 2D keypoints are not an exact perspective view of the 3D joints:
    # agreement within a small fraction of the image, not exactly
    assert err.median() < 0.1 * IMG
    torch.testing.assert_close(torch.from_numpy(pred["xyz"][:, 9]),
                               torch.from_numpy(pred["translation"]), atol=1e-9, rtol=0)
    cross = predict_freihand(task.net, freihand_root, "evaluation", image_size=SIZE,
                             batch_size=2, output="cross", indices=[1])
    assert cross["xyz"].shape == (1, 21, 3) and cross["index"].tolist() == [1]


def test_evaluate_freihand_official_scores(freihand_root: Path, task: HaMuCoTask) -> None:
    scores = evaluate_freihand(task, freihand_root, image_size=SIZE, batch_size=2)
    expected = {"xyz_mean3d", "xyz_auc3d", "xyz_al_mean3d", "xyz_al_auc3d", "mesh_mean3d",
                "mesh_auc3d", "mesh_al_mean3d", "mesh_al_auc3d", "f_score_5", "f_al_score_5",
                "f_score_15", "f_al_score_15", "num_samples"}
    assert set(scores) == expected and scores["num_samples"] == 2
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["xyz_al_mean3d"] <= scores["xyz_mean3d"] + 1e-9  # alignment only helps
    assert 0.0 <= scores["f_al_score_15"] <= 1.0


def test_evaluate_freihand_needs_ground_truth(freihand_root: Path, task: HaMuCoTask) -> None:
    with pytest.raises(FileNotFoundError, match="evaluation_xyz.json"):
        evaluate_freihand(task, freihand_root, split="evaluation", image_size=SIZE)
    with pytest.raises(ValueError, match="output"):
        predict_freihand(task, freihand_root, image_size=SIZE, output="fused")  # type: ignore[arg-type]


def test_pipeline_recovers_ground_truth_from_a_perfect_network(freihand_root: Path) -> None:
    """A network that predicts the truth (root-relative 3D + its 2D in the crop) must score
    zero error: checks the crop, its K, the pixel convention, the translation and the frame."""
    from types import SimpleNamespace

    from hand_lib.experiments.freihand import _dataset
    from hand_lib.models import pixels_to_normalized

    crops = _dataset(freihand_root, "training", SIZE, 0.8, None, load_verts=True)
    net = HaMuCoNet(SMALL).eval()
    calls = iter(range(len(crops)))

    def perfect(images: torch.Tensor, view_mask: torch.Tensor | None = None) -> SimpleNamespace:
        s = crops[next(calls)]  # batch_size=1, unshuffled: the i-th call is sample i
        root = s["joints_cam"][9]
        kps = pixels_to_normalized(project_points(s["joints_cam"].double(), s["K"].double()),
                                   (SIZE, SIZE))
        view = SimpleNamespace(joints_rel=(s["joints_cam"] - root)[None, None],
                               vertices_rel=(s["verts_cam"] - root)[None, None],
                               keypoints_2d=kps[None, None])
        return SimpleNamespace(single_view=view, cross_view=view)

    net.forward = perfect  # type: ignore[method-assign]
    scores = evaluate_freihand(net, freihand_root, image_size=SIZE, batch_size=1, crop_scale=0.8)
    assert scores["xyz_mean3d"] < 1e-3 and scores["mesh_mean3d"] < 1e-3  # cm
    assert scores["f_score_5"] == pytest.approx(1.0)
