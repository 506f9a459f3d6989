"""The widgets' logic without a browser: state -> model output -> figure data, selectors ->
views, checkpoints -> predictions and errors, and the live/static decision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_lib.geometry.rotations import matrix_to_axis_angle
from hand_lib.viz import frontend
from hand_lib.viz.explorer import ManoExplorer, euler_matrix, flexion_axes
from hand_lib.viz.figures import camera_centres, camera_frusta, finger_chains

# --------------------------------------------------------------------------- frontend


def test_interactive_explicit_env_and_auto(monkeypatch):
    monkeypatch.delenv(frontend.ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/90_explore.ipynb")
    assert frontend.resolve_interactive(True) is True
    assert frontend.resolve_interactive(False) is False
    # pytest is no kernel: static even with the server's session variable
    assert frontend.resolve_interactive(None) is False
    monkeypatch.setattr(frontend, "in_kernel", lambda: True)
    assert frontend.resolve_interactive(None) is True
    monkeypatch.delenv("JPY_SESSION_NAME")  # a kernel started by papermill / nbclient
    assert frontend.resolve_interactive(None) is False
    monkeypatch.setenv(frontend.ENV_OVERRIDE, "1")
    assert frontend.resolve_interactive(None) is True
    monkeypatch.setenv(frontend.ENV_OVERRIDE, "0")
    assert frontend.resolve_interactive(None) is False
    assert frontend.resolve_interactive(True) is True  # an explicit argument wins
    monkeypatch.setenv(frontend.ENV_OVERRIDE, "maybe")
    with pytest.raises(ValueError, match=frontend.ENV_OVERRIDE):
        frontend.resolve_interactive(None)


def test_viz_package_loads_the_widgets_on_first_use():
    import subprocess
    import sys

    code = ("import sys, hand_lib.viz.figures as f; import hand_lib.viz as v; "
            "print('hand_lib.viz.inspector' in sys.modules, "
            "v.resolve_interactive(False))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert out == ["False", "False"]


# --------------------------------------------------------------------------- MANO explorer


@pytest.fixture(scope="module")
def explorer() -> ManoExplorer:
    return ManoExplorer(num_pca=6)


def test_explorer_pca_and_shape_sliders_give_the_layer_output(explorer):
    out = explorer.set(pca={0: 1.5, 3: -0.7}, betas={0: 1.0, 2: -0.5},
                       flexion_deg=(0.0,) * 5, rotation_deg=(0.0, 0.0, 0.0))  # fmt: skip
    coeffs = torch.tensor([[1.5, 0.0, 0.0, -0.7, 0.0, 0.0]], dtype=torch.float64)
    betas = torch.zeros(1, 10, dtype=torch.float64)
    betas[0, 0], betas[0, 2] = 1.0, -0.5
    ref = explorer.layer(coeffs, betas, pose_type="pca")
    assert torch.allclose(out.vertices, ref.vertices, atol=1e-10)
    assert torch.allclose(out.keypoints, ref.keypoints, atol=1e-10)
    fig = explorer.figure
    v, k = out.vertices[0].numpy(), out.keypoints[0].numpy()
    assert np.allclose(np.array(fig.data[0].x), v[:, 0])
    assert np.allclose(np.array(fig.data[0].z), v[:, 2])
    for trace, chain in zip(fig.data[1:6], finger_chains(), strict=True):
        assert np.allclose(np.array(trace.y), k[chain, 1])
    explorer.set(pca=(0.0,) * 6, betas=(0.0,) * 10)


def test_explorer_rotation_slider_is_the_global_orientation(explorer):
    out = explorer.set(rotation_deg=(30.0, -50.0, 120.0))
    aa = matrix_to_axis_angle(euler_matrix((30.0, -50.0, 120.0)))[None]
    ref = explorer.layer(torch.zeros(1, 6, dtype=torch.float64), pose_type="pca",
                         global_orient=aa)  # fmt: skip
    assert torch.allclose(out.vertices, ref.vertices, atol=1e-9)
    explorer.set(rotation_deg=(0.0, 0.0, 0.0))


def test_flexion_axes_curl_each_digit_towards_the_palm(explorer):
    axes = flexion_axes(explorer.layer)
    assert np.allclose(axes[0], 0.0)
    assert np.allclose(np.linalg.norm(axes[1:], axis=1), 1.0)
    # the open hand's docstring: finger flexion is a positive rotation about +z
    for j in (1, 4, 7, 10):
        assert axes[j] @ np.array([0.0, 0.0, 1.0]) > 0.9
    rest = explorer.set(flexion_deg=(0.0,) * 5).keypoints[0].clone()
    for digit, tip in enumerate((4, 8, 12, 16, 20)):
        flexed = explorer.set(flexion_deg={digit: 60.0}).keypoints[0]
        moved = (flexed - rest).norm(dim=1)
        assert moved[tip] > 0.02, digit  # the tip moves centimetres...
        others = [t for t in (4, 8, 12, 16, 20) if t != tip]
        assert float(moved[others].max()) < 1e-9  # ...and no other digit moves
        # flexion curls the digit (its tip comes closer to the wrist), extension opens it
        extended = explorer.set(flexion_deg={digit: -20.0}).keypoints[0]
        reach = [float((k[tip] - k[0]).norm()) for k in (flexed, rest, extended)]
        assert reach[0] < reach[1] - 0.01 and reach[2] > reach[1] + 0.005, (digit, reach)
        explorer.set(flexion_deg=(0.0,) * 5)


def test_flexion_axes_of_the_left_hand_are_mirrored():
    from hand_lib.mano import ManoLayer

    right = flexion_axes(ManoLayer(side="right"))
    left = flexion_axes(ManoLayer(side="left"))
    # the left hand is the right one mirrored in x: axial vectors map to -diag(-1, 1, 1) a
    assert np.allclose(left, right * np.array([1.0, -1.0, -1.0]), atol=1e-6)


def test_explorer_widget_sliders_drive_the_figure(explorer):
    import ipywidgets

    box = explorer.widget()
    assert isinstance(box, ipywidgets.HBox)
    explorer.sliders["pca"][1].value = 2.0
    assert explorer.state.pca[1] == 2.0
    assert np.allclose(np.array(explorer.figure.data[0].x),
                       explorer.output.vertices[0, :, 0].numpy())  # fmt: skip
    explorer.sliders["flexion_deg"][2].value = 45.0
    assert explorer.state.flexion_deg[2] == 45.0
    explorer.set(pca=(0.0,) * 6, flexion_deg=(0.0,) * 5)


def test_mano_explorer_static_figure():
    from matplotlib.figure import Figure

    from hand_lib.viz import mano_explorer

    fig = mano_explorer(interactive=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 4


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def tiny_hanco(tmp_path_factory):
    """1 training and 1 test sequence of 2 frames, 8 views, with simulated pseudo labels."""
    from hand_lib.data.synthetic import SyntheticConfig, generate
    from hand_lib.pseudo.hanco_labels import label_hanco_simulated

    root = tmp_path_factory.mktemp("hanco")
    generate(root, SyntheticConfig(num_train_sequences=1, num_test_sequences=1,
                                   frames_per_sequence=2), workers=1, progress=False)
    label_hanco_simulated(root, progress=False)
    return root


def test_camera_geometry_helpers():
    K = torch.tensor([[[200.0, 0, 111.5], [0, 200.0, 111.5], [0, 0, 1]]])
    R = euler_matrix((10.0, 20.0, 30.0)).float()
    t = torch.tensor([0.01, -0.02, 0.5])
    M = torch.eye(4)[None].clone()
    M[0, :3, :3], M[0, :3, 3] = R, t
    centre = camera_centres(M)[0]
    assert np.allclose(R.double().numpy() @ centre + t.double().numpy(), 0.0, atol=1e-6)
    frusta = camera_frusta(K, M, (224, 224), depth_m=0.2)
    assert np.allclose(frusta[0, 0], centre)
    corner_cam = R.double().numpy() @ frusta[0, 1] + t.double().numpy()
    assert np.isclose(corner_cam[2], 0.2)
    uv = K[0].double().numpy() @ corner_cam
    assert np.allclose(uv[:2] / uv[2], [-0.5, -0.5], atol=1e-4)


def test_dataset_browser_shows_the_selected_view(tiny_hanco):
    from hand_lib.data import HanCo
    from hand_lib.viz import DatasetBrowser

    browser = DatasetBrowser(tiny_hanco)
    assert browser.splits == ["train", "test"]
    assert browser.sequences("test") == [1200] and browser.frames("test", 1200) == [0, 1]
    view = browser.select("test", 1200, 1, 5)
    ref = HanCo(tiny_hanco, "test", mode="multi", image_dir="rgb_merged")[1]
    assert (view.seq, view.frame, view.cam) == (1200, 1, 5)
    assert np.allclose(view.joints_2d, ref["joints_2d"][5].numpy(), atol=1e-5)
    assert np.allclose(view.pseudo_conf, ref["pseudo_conf"][5].numpy())
    fig = browser.image_figure
    image = np.array(fig.data[0].z)
    expected = (ref["image"][5].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(image, expected)
    pseudo = fig.data[-1]
    assert np.allclose(np.array(pseudo.x), view.pseudo_2d[:, 0])
    assert np.allclose(np.array(pseudo.marker.color), view.pseudo_conf)
    assert "cam 5" in fig.layout.title.text
    assert view.vertices_world is not None  # the synthetic set has MANO fits
    mesh = browser.rig_figure.data[3]
    assert np.allclose(np.array(mesh.x), view.vertices_world[:, 0])
    # a sequence the split lacks falls back to the split's first
    assert browser.select("train", 1200).seq == 0


def test_dataset_browser_widget_and_static(tiny_hanco):
    from matplotlib.figure import Figure

    from hand_lib.viz import DatasetBrowser, dataset_browser

    browser = DatasetBrowser(tiny_hanco)
    browser.widget()
    browser.controls["cam"].value = 7
    assert browser.view.cam == 7
    browser.controls["split"].value = "test"
    assert (browser.view.split, browser.view.seq) == ("test", 1200)
    assert browser.controls["seq"].options == (1200,)
    fig = dataset_browser(tiny_hanco, interactive=False)
    assert isinstance(fig, Figure)


# --------------------------------------------------------------------------- predictions


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    """A trainer-format file (``model`` entry) of a seeded s2hand_shape task, smoke size."""
    from hand_lib.experiments import build_task, suite_settings

    results = tmp_path_factory.mktemp("results")
    torch.manual_seed(3)
    task = build_task("s2hand_shape", suite_settings("smoke"))
    ckpt_dir = results / "runs" / "s2hand_shape" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    torch.save({"format": "hand_lib.train/1", "model": task.state_dict(), "step": 7},
               ckpt_dir / "step_00000007.pt")  # fmt: skip
    (results / "runs" / "not_a_stage").mkdir()
    return results, task.eval()


def test_inspector_predictions_are_the_checkpoints(tiny_hanco, smoke_checkpoint):
    from hand_lib.viz import PredictionInspector
    from hand_lib.viz.inspector import UNTRAINED, find_checkpoints

    results, task = smoke_checkpoint
    found = find_checkpoints(results)
    assert list(found) == ["s2hand_shape step 7"]
    inspector = PredictionInspector(tiny_hanco, "smoke", results)
    assert list(inspector.checkpoints) == ["s2hand_shape step 7", UNTRAINED]
    res = inspector.inspect("s2hand_shape step 7", "image", 1)
    sample = inspector.datasets["image"][1]
    with torch.no_grad():
        ref = task.predict({"image": sample["image"][None], "K": sample["K"][None]})
    assert np.allclose(res.pred_joints, ref["joints"].numpy(), atol=1e-5)
    assert np.allclose(res.pred_2d, ref["joints_2d"].numpy(), atol=1e-3)
    assert res.images.shape == (1, 64, 64, 3) and res.overlays.shape == res.images.shape
    assert not np.array_equal(res.overlays, res.images)  # the mesh is drawn somewhere
    gt = sample["joints_cam"].numpy()
    rel = (res.pred_joints[0] - res.pred_joints[0, 9]) - (gt - gt[9])
    assert np.allclose(res.error_root_mm[0], 1000 * np.linalg.norm(rel, axis=1), atol=1e-3)
    assert np.all(res.error_pa_mm <= res.error_root_mm.max() + 1e-6)
    frame = inspector.inspect("s2hand_shape step 7", "frame", 0)
    assert frame.images.shape[0] == 8 and frame.error_pa_mm.shape == (8, 21)
    untrained = inspector.inspect(UNTRAINED, "image", 0)
    assert "UNTRAINED" in untrained.note
    fig = inspector.figure(frame)
    assert sum(t.type == "image" for t in fig.data) == 8


def test_inspector_joint_errors_vanish_for_a_similar_copy():
    from hand_lib.viz.inspector import joint_errors

    gt = np.random.default_rng(0).normal(scale=0.05, size=(2, 21, 3))
    root, pa = joint_errors(gt + 0.3, gt)
    assert np.allclose(root, 0.0, atol=1e-9) and np.allclose(pa, 0.0, atol=1e-6)
    root, pa = joint_errors(2.0 * gt, gt)
    assert root.max() > 1.0 and np.allclose(pa, 0.0, atol=1e-6)


def test_inspector_names_a_checkpoint_of_another_size(tiny_hanco, smoke_checkpoint):
    from hand_lib.viz import PredictionInspector

    results, _ = smoke_checkpoint
    inspector = PredictionInspector(tiny_hanco, "quick", results)
    with pytest.raises(ValueError, match="quick profile's s2hand_shape network"):
        inspector.inspect("s2hand_shape step 7")


def test_inspector_widget_and_static(tiny_hanco, smoke_checkpoint):
    import ipywidgets
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    from hand_lib.viz import PredictionInspector, prediction_inspector

    results, _ = smoke_checkpoint
    inspector = PredictionInspector(tiny_hanco, "smoke", results)
    box = inspector.widget()
    assert isinstance(box.children[-1].children[0], go.FigureWidget)
    inspector.controls["mode"].value = "frame"
    assert inspector.last.mode == "frame" and len(inspector.last.cams) == 8
    assert inspector.controls["index"].max == inspector.num_samples("frame") - 1
    assert isinstance(box, ipywidgets.VBox)
    fig = prediction_inspector(tiny_hanco, "smoke", results, interactive=False)
    assert isinstance(fig, Figure)


def test_widgets_work_without_pseudo_labels(tiny_hanco, tmp_path):
    """A dataset without rgb_2D_keypoints (real HanCo before labelling): the browser shows
    the ground truth only and the inspector crops around the ground-truth keypoints."""
    import shutil

    from hand_lib.viz import DatasetBrowser, PredictionInspector

    root = tmp_path / "unlabelled"
    shutil.copytree(tiny_hanco, root, ignore=shutil.ignore_patterns("rgb_2D_keypoints"))
    browser = DatasetBrowser(root)
    view = browser.select("test", 1200, 0, 2)
    assert not browser.has_pseudo and not view.has_pseudo and np.isnan(view.pseudo_error_px)
    assert np.isnan(np.array(browser.image_figure.data[-1].x, dtype=float)).all()
    inspector = PredictionInspector(root, "smoke")
    assert inspector.datasets["image"].transform.box_from == "joints_2d"
    result = inspector.inspect(mode="image", index=0)
    assert np.isfinite(result.error_root_mm).all()
