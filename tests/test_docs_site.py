"""The documentation site, built from the notebooks and read in a real browser with the network closed.

`docs/build.py` (what `make docs` runs) builds the site into _docs/; `python -m http.server` serves it on a free local
port; headless Debian Chromium (`/usr/bin/chromium`, driven by playwright, never a browser playwright downloads) opens
every page with every request to another host aborted, as on a machine with no network. Checked:
no console error and no failed request on any page, every image (the charts) decoded, each public function and class
of archdal (its modules' `__all__`) has a show_doc entry on its module's page, every internal link (pages, files and
#anchors) resolves, search finds an API name. Screenshots of the home, strategies and experiment (its learning-curve
chart) pages go to reports/screenshots/docs_*.png.
"""
import importlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
from browser_support import CHROMIUM_ARGS, SCREENSHOTS, chromium, free_port
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "_docs"
MODULE_PAGE = re.compile(r"^\d+[a-zA-Z0-9]*_")  # nbdev's page name: 00_data.ipynb -> data.html
SEARCHED = "stochastic_top_k"  # a function of archdal.strategies, typed into the site's search box


def module_pages() -> dict[str, str]:
    "archdal module -> its page, from each notebook's `#| default_exp`."
    pages = {}
    for nb in sorted((REPO / "nbs").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            m = re.search(r"^\s*#\|\s*default_exp\s+(\S+)", "".join(cell["source"]), re.M)
            if cell["cell_type"] == "code" and m:
                pages[f"archdal.{m.group(1)}"] = MODULE_PAGE.sub("", nb.stem.lower()) + ".html"
                break
    return pages


@pytest.fixture(scope="module")
def site():
    "Build the site, serve it on localhost: (base url, seconds the build took)."
    browser = chromium()
    started = time.perf_counter()
    build = subprocess.run([sys.executable, str(REPO / "docs" / "build.py")], cwd=REPO, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    seconds = time.perf_counter() - started
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(SITE)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).close()
                break
            except OSError: time.sleep(0.1)
        yield base, browser, seconds
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def visited(site):
    "Every page of the site opened in Chromium: {page: what it logged, failed, linked and showed}."
    base, browser, _ = site
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html"))
    found = {}
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=browser, args=CHROMIUM_ARGS)
        context = chrome.new_context(viewport={"width": 1360, "height": 900})
        outside = []

        def only_local(route):  # the network is closed: anything not on this server is refused and recorded
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()
        context.route("**/*", only_local)
        page = context.new_page()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in pages:
            log = {"console": [], "failed": [], "outside": []}
            page.on("console", on_console := lambda m, log=log: m.type == "error" and log["console"].append(m.text))
            page.on("pageerror", on_error := lambda e, log=log: log["console"].append(str(e)))
            page.on("requestfailed", on_failed := lambda r, log=log: log["failed"].append(f"{r.url} {r.failure}"))
            page.on("response", on_response := lambda r, log=log: r.status >= 400 and log["failed"].append(f"{r.url} {r.status}"))
            outside.clear()
            response = page.goto(base + name, wait_until="networkidle")
            log["status"] = response.status
            page.evaluate("""() => Promise.race([new Promise(done => setTimeout(done, 10000)),
                Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))])""")
            log.update(page.evaluate("""() => ({
                links: [...document.querySelectorAll('a[href]')].map(a => a.href),
                ids: [...document.querySelectorAll('[id]')].map(e => e.id),
                api: [...document.querySelectorAll('.sd-name')].map(h => [h.id, h.firstChild.textContent.trim()]),
                images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
                text: document.querySelector('article').innerText,
            })"""))
            log["outside"] = list(outside)
            if name == "index.html":
                page.screenshot(path=str(SCREENSHOTS / "docs_home.png"))
                page.keyboard.press("s")  # Material's search shortcut; the index is served with the site
                page.keyboard.type(SEARCHED)
                page.locator(".md-search-result__item").first.wait_for(timeout=15_000)
                log["search"] = page.locator(".md-search-result__item").all_inner_texts()
                page.keyboard.press("Escape")
            if name == "strategies.html":
                page.screenshot(path=str(SCREENSHOTS / "docs_strategies.png"))
            if name == "experiment.html" and page.locator("img.nb-image").count():
                page.locator("img.nb-image").first.evaluate("i => i.scrollIntoView({block: 'center'})")
                page.wait_for_timeout(500)  # the header's title swap
                page.screenshot(path=str(SCREENSHOTS / "docs_experiment.png"))
            for event, handler in [("console", on_console), ("pageerror", on_error), ("requestfailed", on_failed),
                                   ("response", on_response)]:
                page.remove_listener(event, handler)
            found[name] = log
        chrome.close()
    return found


def test_site_builds_with_its_search_index(site):
    "The build's seconds are printed, not asserted: speed is a benchmark's to judge, and CI machines are shared."
    _, _, seconds = site
    print(f"the docs build took {seconds:.0f} s")
    assert (SITE / "index.html").exists() and (SITE / "search" / "search_index.json").exists()


def test_every_page_loads_cleanly_offline(visited):
    expected = {"index.html", "experiment.html", "report.html", *module_pages().values()}
    assert expected <= set(visited), f"pages missing from the site: {sorted(expected - set(visited))}"
    for name, log in visited.items():
        assert log["status"] == 200, name
        assert not log["console"], f"{name}: console errors {log['console']}"
        assert not log["failed"], f"{name}: failed requests {log['failed']}"
        assert not log["outside"], f"{name}: requests to the internet {log['outside']}"
        broken = [src for src, ok in log["images"] if not ok]
        assert not broken, f"{name}: images that did not load {broken}"


def test_experiment_page_shows_its_outputs(visited):
    log = visited["experiment.html"]
    charts = [src for src, ok in log["images"] if ok and src.endswith(".png")]
    assert charts, "the learning-curve chart of the executed experiment (reports/experiment.ipynb) is missing"
    assert "final test accuracy" in log["text"] and "images chosen by badge with the round-7 model" in log["text"]


def test_report_page_shows_its_outputs_when_executed(visited):
    "The report page shows the executed reports/report.ipynb when there is one (else the notebook's code alone)."
    if not (REPO / "reports" / "report.ipynb").exists(): pytest.skip("no executed reports/report.ipynb")
    charts = [src for src, ok in visited["report.html"]["images"] if ok and src.endswith(".png")]
    assert charts, "the charts of the executed report are missing"


def test_every_public_name_has_an_api_entry(visited):
    missing = {}
    for module, page in module_pages().items():
        mod = importlib.import_module(module)
        entries = {text for _, text in visited[page]["api"]} | {i for i, _ in visited[page]["api"]}
        public = [n for n in getattr(mod, "__all__", []) if callable(getattr(mod, n))]
        assert public, f"{module} exports no function or class"
        lost = [n for n in public if n not in entries and n.lower() not in entries]
        if lost: missing[f"{module} ({page})"] = lost
    assert not missing, f"public functions/classes without an API entry: {missing}"


def test_internal_links_resolve(site, visited):
    base, _, _ = site
    targets = {}
    for name, log in visited.items():
        for href in log["links"]:
            if href.startswith(base): targets.setdefault(href, name)
    assert len(targets) > len(visited)
    status = {}
    for href, source in sorted(targets.items()):
        url, fragment = urldefrag(href)
        if url not in status:
            try:
                with urllib.request.urlopen(url, timeout=10) as r: status[url] = r.status
            except urllib.error.HTTPError as e: status[url] = e.code
        assert status[url] == 200, f"{source}: link to {href} gives {status[url]}"
        page = url.removeprefix(base) or "index.html"
        if fragment and page in visited:
            assert fragment in visited[page]["ids"], f"{source}: link to {href}: no #{fragment} on {page}"


def test_search_finds_api_names(visited):
    import archdal.strategies
    assert SEARCHED in archdal.strategies.__all__
    assert any(SEARCHED in item for item in visited["index.html"]["search"]), visited["index.html"]["search"]
