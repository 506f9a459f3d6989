"""Real-browser test of the exploration notebook: JupyterLab on a loopback port, headless
Chromium driven by playwright, Run All Cells through the menu, then: no error output, the
plotly widgets rendered, screenshots of the three widgets (into ``results/screenshots/`` with
``HAND_LIB_UPDATE_SCREENSHOTS=1``, else into a temporary folder).

Needs Debian's ``chromium`` (playwright's own browser download cannot work offline): when
``/usr/bin/chromium`` is missing the test installs it with apt-get if it runs as root
(about 45 s, measured), and skips with the reason otherwise. The server (and its kernels) is
stopped at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "90_explore.ipynb"
#: the committed screenshots are refreshed only on request (HAND_LIB_UPDATE_SCREENSHOTS=1), so
#: a test run leaves the working tree as it found it; otherwise they go to a temporary folder
SCREENSHOTS = (
    REPO / "results" / "screenshots"
    if os.environ.get("HAND_LIB_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="hand_lib_screenshots_"))
)
CHROMIUM = Path("/usr/bin/chromium")
#: launch flags for Chromium as root in a sandbox without network: without the background
#: networking ones its start-up connections are refused and it stalls
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]  # fmt: skip
WIDGET_CELLS = {"mano_explorer": "mano_explorer(", "dataset_browser": "dataset_browser(",
                "prediction_inspector": "prediction_inspector("}  # fmt: skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed with apt-get when missing (root only), or skip."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip("needs Debian's chromium at /usr/bin/chromium and apt-get is not available")
    if os.geteuid() != 0:
        pytest.skip("needs Debian's chromium: run `sudo apt-get install -y chromium` "
                    "(the test installs it itself only when it runs as root, as in CI)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    t0 = time.perf_counter()
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"could not install chromium ({' '.join(cmd)} exited "
                        f"{done.returncode}): {done.stderr.strip()[-400:]}")
    print(f"[browser test] installed chromium in {time.perf_counter() - t0:.0f} s")
    if not CHROMIUM.exists():
        pytest.skip("apt-get installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_dataset(root: Path) -> Path:
    from hand_lib.data.synthetic import SyntheticConfig, generate
    from hand_lib.pseudo.hanco_labels import label_hanco_simulated

    generate(root, SyntheticConfig(num_train_sequences=1, num_test_sequences=1,
                                   frames_per_sequence=2), workers=1, progress=False)
    label_hanco_simulated(root, progress=False)
    return root


def _notebook_copy(work: Path, data_root: Path) -> Path:
    """The exploration notebook with its parameters pointed at the test's data (smoke-size
    network, results in the temporary folder)."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = "\n".join([
        'profile = "smoke"', 'data = "synthetic"', f"data_root = {str(data_root)!r}",
        'mano_path = ""', f"results_dir = {str(work / 'results')!r}", 'device = "cpu"',
        "interactive = None",
    ])  # fmt: skip
    out = work / "notebooks" / NOTEBOOK.name
    out.parent.mkdir(parents=True)
    nbformat.write(nb, out)
    return out


def _lab_settings(work: Path) -> dict[str, str]:
    """Environment of a JupyterLab with its own settings: every cell attached to the page
    (no virtual scrolling, so every output can be found and photographed), no news feed."""
    settings = work / "lab-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {"JUPYTERLAB_SETTINGS_DIR": str(work / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(work / "lab-workspaces")}  # fmt: skip


def _api(base: str, token: str, path: str, method: str = "GET") -> int:
    req = urllib.request.Request(f"{base}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def _stop_server(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the kernels and the server down through the API, then make sure the whole
    process group is gone."""
    if proc.poll() is None:
        try:
            _api(base, token, "/api/shutdown", "POST")
            proc.wait(timeout=20)
        except Exception:  # unresponsive server: signals below
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


def test_exploration_notebook_runs_in_jupyterlab(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    chromium = _ensure_chromium()
    data_root = _tiny_dataset(tmp_path / "hanco")
    notebook = _notebook_copy(tmp_path, data_root)
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **_lab_settings(tmp_path), "JUPYTER_TOKEN": token,
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # fmt: skip
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as in a researcher's session
    env.pop("HAND_LIB_INTERACTIVE", None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={notebook.parent}",
           "--ServerApp.shutdown_no_activity_timeout=900"]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited {proc.returncode}:\n"
                            f"{(tmp_path / 'lab.log').read_text()[-3000:]}")
            try:
                if _api(base, token, "/api/status") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyter lab did not answer within 90 s")
            time.sleep(0.5)
        print(f"[browser test] server up in {time.perf_counter() - t0:.1f} s")
        _drive_browser(sync_api, chromium, f"{base}/lab/tree/{notebook.name}?token={token}")
        print(f"[browser test] total {time.perf_counter() - t0:.1f} s")
    finally:
        _stop_server(proc, base, token)
        log.close()
    assert proc.poll() is not None


def _drive_browser(sync_api, chromium: Path, url: str) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   state="attached", timeout=90_000)  # fmt: skip
            _accept_dialogs(page)
            t0 = time.perf_counter()
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has(.lm-Menu-itemLabel:text-is('Run All Cells'))")
            _accept_dialogs(page)
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll(
                        '.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
                    return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
                }""", timeout=240_000)  # fmt: skip
            print(f"[browser test] Run All took {time.perf_counter() - t0:.1f} s")
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot').length >= 4",
                timeout=60_000)  # fmt: skip
            errors = page.eval_on_selector_all(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                "els => els.map(e => e.innerText)")  # fmt: skip
            tracebacks = [e for e in errors if "Traceback" in e or "Error" in e]
            assert not tracebacks, "\n\n".join(tracebacks)[-4000:]
            text = page.inner_text(".jp-Notebook")
            assert "Error displaying widget" not in text and "exploration checks passed" in text
            assert "widgets: live" in text  # JupyterLab's kernel chose live widgets
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            for name, call in WIDGET_CELLS.items():
                cell = cells.filter(has_text=call).first
                output = cell.locator(".jp-Cell-outputWrapper")
                output.scroll_into_view_if_needed()
                assert output.locator(".js-plotly-plot").count() >= 1, name
                page.wait_for_timeout(500)  # let plotly finish drawing
                output.screenshot(path=str(SCREENSHOTS / f"explore_{name}.png"))
            def cell_of(name: str):
                return cells.filter(has_text=WIDGET_CELLS[name]).first

            _move_explorer_slider(page, cell_of("mano_explorer"))
            _inspect_a_frame(page, cell_of("prediction_inspector"))
        finally:
            browser.close()


def _accept_dialogs(page, quiet_ms: int = 3000) -> None:
    """Accept JupyterLab's dialogs (e.g. "Select Kernel" where more than one kernel is
    installed: its default is the notebook's) until none has shown for ``quiet_ms``."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    while True:
        try:
            dialog.first.wait_for(state="visible", timeout=quiet_ms)
        except Exception:  # playwright's TimeoutError: no dialog came
            return
        dialog.first.click()
        page.wait_for_timeout(500)


def _inspect_a_frame(page, cell) -> None:
    """Switch the inspector to a multi-view frame: the figure is rebuilt with eight crops."""
    cell.locator("button:has-text('multi-view frame')").click()
    page.wait_for_function("el => el.querySelectorAll('.js-plotly-plot .imagelayer image')"
                           ".length >= 8", arg=cell.element_handle(), timeout=60_000)
    page.wait_for_timeout(500)
    cell.locator(".jp-Cell-outputWrapper").screenshot(
        path=str(SCREENSHOTS / "explore_prediction_inspector_frame.png"))


def _move_explorer_slider(page, cell) -> None:
    """Drag PC 1 in the live explorer and check that the 3D view is redrawn (the kernel
    answers the slider through the widget comm)."""
    plot = cell.locator(".js-plotly-plot").first
    before = plot.evaluate("el => JSON.stringify(el.data[0].x.slice ? el.data[0].x.slice(0, 5)"
                           " : el.data[0].x)")  # fmt: skip
    handle = cell.locator(".widget-slider .ui-slider-handle, .widget-slider .noUi-handle").first
    handle.click()
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([el, before]) => JSON.stringify(el.data[0].x.slice ? el.data[0].x.slice(0, 5)"
        " : el.data[0].x) !== before", arg=[plot.element_handle(), before], timeout=30_000)
    cell.locator(".jp-Cell-outputWrapper").screenshot(
        path=str(SCREENSHOTS / "explore_mano_explorer_pc1_moved.png"))
