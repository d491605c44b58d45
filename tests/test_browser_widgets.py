"""Real browser: the experiment notebook's papermill output in JupyterLab, its explorers used in headless Chromium.

A JupyterLab server on a random local port (with a token) serves a temporary folder holding a tiny real grid of
runs and the papermill output of `nbs/experiment.ipynb` for one of them. Chromium opens that notebook: the
explorers show from the widget state papermill saved, before any cell runs. Then it runs every cell from
JupyterLab's Run menu (the run is read back, not redone; widgets need a live kernel to react), moves the round
slider with the keyboard, changes the strategy and the compared strategy and the architecture selection, and
checks that the views changed in the page. Screenshots of both explorers go to a scratch folder
(ARCHDAL_SCREENSHOTS=reports/screenshots refreshes the README's; ARCHDAL_SCREENSHOT_DATA=mnist5k trains the
grid on mnist5k with the default training, as the README's screenshots are, in about six minutes).

The browser is Debian's Chromium (`/usr/bin/chromium`), never one downloaded by playwright. `make test` installs it
when it is missing (`make chromium`); this test tries the same once and is skipped only when it is still absent.
"""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import papermill
import pytest
from browser_support import CHROMIUM_ARGS, SCREENSHOTS, chromium, free_port
from playwright.sync_api import expect, sync_playwright

from archdal.loop import ExperimentConfig, run_experiment

REPO = Path(__file__).resolve().parents[1]
TINY = dict(dataset="digits", budget=10, rounds=2, n_init_per_class=2, epochs=3, min_steps=0, patience=2, progress=False, device="cpu")
if os.environ.get("ARCHDAL_SCREENSHOT_DATA"):  # the README's screenshots: real training on a real dataset
    TINY = dict(dataset=os.environ["ARCHDAL_SCREENSHOT_DATA"], budget=20, rounds=2, n_init_per_class=2, progress=False, device="cpu")
BLOB = re.compile("^blob:")  # ipywidgets shows Image bytes as a blob: URL
TIMEOUT_MS = 180_000  # kernel start (torch import), five chart renders and the PNG transfers, on a busy machine


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A JupyterLab server on a folder with a tiny grid of runs and the explorers notebook: (base url, token, folder)."
    browser = chromium()
    root = tmp_path_factory.mktemp("lab")
    for arch, strategy, seed in (("cnn", "entropy", 1), ("cnn", "random", 0), ("cnn", "random", 1), ("mlp", "entropy", 0),
                                 ("mlp", "entropy", 1), ("mlp", "random", 0), ("mlp", "random", 1)):
        run_experiment(ExperimentConfig(**TINY, arch=arch, strategy=strategy, seed=seed, out_dir=str(root / "runs")))
    run_experiment(ExperimentConfig(**TINY, arch="depth_dropout", strategy="entropy", seed=0, out_dir=str(root / "runs")))
    # the fifth run through the experiment notebook, as a user runs it: its output is the notebook Chromium opens
    papermill.execute_notebook(str(REPO / "nbs" / "experiment.ipynb"), str(root / "explorers.ipynb"), cwd=str(root),
                               parameters={**TINY, "arch": "cnn", "strategy": "entropy", "seed": 0, "out_dir": str(root / "runs")},
                               progress_bar=False)
    assert "widgets" in nbformat.read(root / "explorers.ipynb", as_version=4).metadata  # papermill saved the widget state
    home = root.parent / f"{root.name}-jupyter"  # settings and runtime files of this server only
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    notebook_settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)  # every cell in the page, also those scrolled out of view
    (notebook_settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    widget_settings = home / "settings" / "@jupyter-widgets" / "jupyterlab-manager"
    widget_settings.mkdir(parents=True)  # JupyterLab's default, said explicitly: show and save the widgets' state
    (widget_settings / "plugin.jupyterlab-settings").write_text('{"saveState": true}')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "JUPYTER_DATA_DIR": str(home / "data"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # as `make experiment` does: trust the output notebook papermill wrote, so JupyterLab renders its widgets
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(root / "explorers.ipynb")], env=env, check=True,
                   capture_output=True)
    port, token = free_port(), secrets.token_hex(16)
    log = open(home / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                               "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5): break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(home / 'server.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        # Start the notebook's kernel before the page opens, so its start-up is not on the page's clock (JupyterLab
        # attaches to it; when JupyterLab replaces it anyway, `settle` and `run_all_cells` wait that out)
        request = urllib.request.Request(
            f"{url}/api/sessions", method="POST", headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            data=json.dumps({"path": "explorers.ipynb", "name": "explorers.ipynb", "type": "notebook",
                             "kernel": {"name": "python3"}}).encode())
        with urllib.request.urlopen(request, timeout=60) as response: assert response.status == 201
        yield dict(url=url, token=token, root=root, browser=browser)
    finally:
        server.terminate()
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired: server.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def kernel_of_notebook(lab) -> str | None:
    "Id of the kernel of the notebook's session on the server (None while it has none)."
    request = urllib.request.Request(f"{lab['url']}/api/sessions", headers={"Authorization": f"token {lab['token']}"})
    with urllib.request.urlopen(request, timeout=30) as response: sessions = json.load(response)
    return next(((s.get("kernel") or {}).get("id") for s in sessions if s["path"] == "explorers.ipynb"), None)


def accept_dialogs(page) -> None:
    "Accept any dialog JupyterLab shows (its Select Kernel dialog preselects the notebook's own kernel)."
    accept = page.locator(".jp-Dialog button.jp-mod-accept")
    if accept.count() and accept.first.is_visible(): accept.first.click()


def settle(page, lab, quiet_s: float = 3.0) -> str:
    """Wait until the notebook's kernel is idle and has stayed the same for `quiet_s`. Right after a notebook opens,
    JupyterLab sometimes replaces the kernel it just connected to (a new kernel, the old one shut down) and a run
    started in between is dropped with a Select Kernel dialog; this waits that out."""
    deadline, last, since = time.monotonic() + TIMEOUT_MS / 1000, None, time.monotonic()
    while time.monotonic() < deadline:
        accept_dialogs(page)
        kernel = kernel_of_notebook(lab)
        status = page.evaluate("document.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status')")
        if kernel != last: last, since = kernel, time.monotonic()
        elif kernel and status == "idle" and time.monotonic() - since >= quiet_s: return kernel
        page.wait_for_timeout(250)
    raise AssertionError(f"the notebook's kernel did not settle (last {last}, status {status})")


def menu(page, top: str, item: str) -> None:
    "Choose `item` of the menu bar's `top` menu."
    page.locator(".lm-MenuBar-item", has_text=top).first.click()
    page.locator(".lm-Menu-item", has_text=item).first.click()


def run_all_cells(page, lab, attempts: int = 3) -> None:
    """Edit → Clear Outputs of All Cells (so no prompt keeps papermill's count), then Run → Run All Cells until
    every code cell has run on one kernel (retrying if JupyterLab swapped the kernel meanwhile)."""
    for _ in range(attempts):
        kernel = settle(page, lab)
        menu(page, "Edit", "Clear Outputs of All Cells")
        page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].every(p => !/\\d/.test(p.innerText))")
        menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if page.locator(".jp-Dialog").count() or kernel_of_notebook(lab) != kernel: break
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            if all(re.search(r"\[\d+\]", text) for text in prompts) and kernel_of_notebook(lab) == kernel: return
            page.wait_for_timeout(250)
    raise AssertionError(f"Run All Cells did not run every cell in {attempts} attempts "
                         f"(prompts: {page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()})")


def test_explorers_in_jupyterlab(lab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=lab["browser"], args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2600})  # tall: each explorer fits whole
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{lab['url']}/lab?token={lab['token']}")
            page.locator(".jp-DirListing-item", has_text="explorers.ipynb").dblclick()  # open it as a user does
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
            # before any cell runs, the explorers show from the saved widget state: the run papermill just made
            expect(page.locator(".archdal-query-title").first).to_contain_text("cnn · entropy · seed 0", timeout=TIMEOUT_MS)
            run_all_cells(page, lab)

            # QueryExplorer: rendered, then one step of the round slider by keyboard changes title, table and images
            title = page.locator(".archdal-query-title")
            expect(title).to_contain_text("round 0 of 2", timeout=TIMEOUT_MS)
            images, table = page.locator("img.archdal-query-images"), page.locator(".archdal-query-histogram")
            expect(images).to_have_attribute("src", BLOB)
            expect(page.locator("img.archdal-query-projection")).to_have_attribute("src", BLOB)
            before = dict(src=images.get_attribute("src"), table=table.inner_text(), title=title.inner_text())
            assert "initial set" in before["title"] and "20" in before["table"]
            handle = page.locator(".archdal-query-round .noUi-handle")
            handle.focus()
            handle.press("ArrowRight")
            expect(title).to_contain_text("round 1 of 2")
            expect(title).to_contain_text("chosen by entropy with the model of round 0")
            page.wait_for_function("src => document.querySelector('img.archdal-query-images').src !== src", arg=before["src"])
            assert table.inner_text() != before["table"]  # the title changes last, so the table has changed already
            expect(page.locator("img.archdal-query-scores")).to_be_visible()
            # another strategy, same round: the title names it and the images change; then compare it with entropy
            entropy_src = images.get_attribute("src")
            page.locator(".archdal-query-strategy select").select_option("random")
            expect(title).to_contain_text("cnn · random · seed 0 — round 1 of 2")
            page.wait_for_function("src => document.querySelector('img.archdal-query-images').src !== src", arg=entropy_src)
            page.locator(".archdal-query-compare select").select_option("entropy")
            expect(page.locator(".archdal-query-comparison")).to_contain_text("also random's")
            expect(page.locator("img.archdal-query-compare-images")).to_have_attribute("src", BLOB)
            page.wait_for_timeout(500)  # let the new images decode before the screenshot
            page.locator(".archdal-query-explorer").screenshot(path=str(SCREENSHOTS / "query_explorer.png"))

            # ArchExplorer: all selected has a one-seed run, so no penalty matrix; keeping cnn and mlp draws one per architecture
            message = page.locator(".archdal-arch-penalty-message")
            expect(message).to_contain_text("these have 1: depth_dropout × entropy")
            expect(page.locator(".archdal-arch-summary")).to_contain_text("layer_probs")
            penalty = page.locator("img.archdal-arch-penalty")
            expect(penalty).to_be_hidden()
            page.locator(".archdal-arch-archs select").select_option(["cnn", "mlp"])
            expect(page.locator(".archdal-arch-summary")).to_contain_text("No architecture-summary field changes")
            expect(penalty).to_be_visible()
            expect(penalty).to_have_attribute("src", BLOB)
            expect(message).to_contain_text("Few seeds")
            expect(page.locator("img.archdal-arch-ranks")).to_have_attribute("src", BLOB)
            expect(page.locator(".archdal-arch-message")).to_contain_text("8 runs: 2 strategies × 2 architectures, seeds [0, 1]")
            page.wait_for_timeout(500)
            page.locator(".archdal-arch-explorer").screenshot(path=str(SCREENSHOTS / "arch_explorer.png"))
        except Exception:
            page.screenshot(path=str(lab["root"] / "failure.png"))
            print(f"the page when the test failed: {lab['root'] / 'failure.png'}")
            raise
        finally:
            browser.close()
    for name in ("query_explorer", "arch_explorer"):
        assert (SCREENSHOTS / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
