"""End-to-end text: the experiment notebook on trec6 with the packaged MiniLM (truncated to one layer) and BADGE, as the
README runs it, showing the queried texts; the packages that carry the text data are the ones the Makefile installs. (A
sweep over text architecture sizes x strategies with its report is tests/test_sweep.py's first test.)"""
import json
from pathlib import Path

import nbformat
import papermill

from archdal.text import TEXT_PACKAGES

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "nbs" / "experiment.ipynb"
TINY = dict(dataset="trec6", budget=12, rounds=1, n_init_per_class=2, min_steps=20, pool_subset=200, progress=False,
            device="cpu")


def test_the_makefile_installs_the_packages_the_loaders_read():
    lines = (REPO / "requirements-text-data.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pins == TEXT_PACKAGES
    assert "pip install --no-deps -r requirements-text-data.txt" in (REPO / "Makefile").read_text()


def test_minilm_with_badge_on_trec6_shows_the_queried_texts(tmp_path):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), cwd=str(REPO), progress_bar=False, parameters={
        **TINY, "arch": "minilm", "arch_kwargs": {"layers": 1}, "strategy": "badge", "out_dir": str(tmp_path / "runs")})
    run_dir = tmp_path / "runs" / "trec6" / "minilm-layers1" / "badge" / "seed0"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [row["n_labelled"] for row in history] == [12, 24]
    assert all(0 <= row["test_macro_f1"] <= 1 and row["test_micro_f1"] == row["test_accuracy"] for row in history)
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["optimizer"], config["lr"], config["schedule"], config["batch_size"]) == ("adamw", 2e-4, "linear", 20)
    texts = (run_dir / "queried_texts.html").read_text()
    assert texts.count("<tr>") == 13  # a header and the 12 picks
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(out, as_version=4).cells], ensure_ascii=False)
    assert "12 texts chosen by badge with the round-0 model, from 200 candidates" in outputs
    assert "archdal-texts" in outputs and "?" in texts  # TREC's questions, shown as text
    assert (run_dir / "feature_map.png").read_bytes()[:4] == b"\x89PNG"
    assert "queried_texts.html" in json.loads((run_dir / "manifest.json").read_text())
