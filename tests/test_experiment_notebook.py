"""End-to-end: the experiment notebook under papermill, as the README runs it, on the embedded digits data."""
import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from archdal.loop import ExperimentConfig, run_dir_for

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "nbs" / "experiment.ipynb"
TINY = dict(budget=10, rounds=2, n_init_per_class=2, epochs=3, min_steps=100, patience=2, progress=False, device="cpu")


def parameters_cell() -> dict:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}


def test_parameters_cell_is_exactly_the_config_with_its_defaults():
    "`auto` fields (the dataset's protocol) stay `auto` in the notebook: they are resolved for the dataset run"
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(ExperimentConfig)}
    assert parameters_cell() == defaults


def test_papermill_run_writes_results_and_chart(tmp_path):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={**TINY, "out_dir": str(tmp_path / "runs")},
                               cwd=str(REPO), progress_bar=False)
    run_dir = tmp_path / "runs" / "digits" / "cnn" / "badge" / "seed0"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [row["n_labelled"] for row in history] == [20, 30, 40]
    assert all(0.1 < row["test_accuracy"] <= 1 for row in history)
    queries = np.load(run_dir / "queries.npz")
    assert [len(queries[f"round_{r}"]) for r in range(3)] == [20, 10, 10]
    assert (run_dir / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "vega" in (run_dir / "learning_curve.html").read_text() and "cdn.jsdelivr" not in (run_dir / "learning_curve.html").read_text()
    executed = nbformat.read(out, as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "final test accuracy" in outputs and "image/png" in outputs
    # what was queried and why: static pictures in the output and the run directory, checked to be drawn
    for name in ("queried_images", "query_scores", "feature_map", "confusion"):
        assert_drawn(run_dir / f"{name}.png")
    assert "10 images chosen by badge with the round-1 model" in outputs and "cnn is a fixed network" in outputs
    assert "archdal-class-table" in outputs
    # the explorers, with their widget state saved so JupyterLab shows them on opening
    assert outputs.count("application/vnd.jupyter.widget-view+json") >= 2
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any(w["state"].get("description") == "round" for w in state.values())
    # no frontmatter cell in the output
    assert executed.cells[0].cell_type == "markdown" and "skip_exec" not in json.dumps(executed.cells)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"queried_images.png", "feature_map.png", "records.npz"} <= set(manifest)


def assert_drawn(path: Path) -> None:
    "`path` is a PNG of some size with more than one colour in it (a chart Vega failed on is blank)."
    from PIL import Image
    image = Image.open(path).convert("RGB")
    assert min(image.size) > 60 and len(image.getcolors(maxcolors=1 << 20) or [0, 0]) > 2, (path, image.size)


@pytest.mark.parametrize("arch", ["resnet50", "select:cnn,mlp", "depth_dropout", "bbdropout", "pdarts"])
def test_readme_command_form_for_fixed_and_optimised_architectures(tmp_path, arch):
    "The direct form of the README: papermill's command line with -p arch <name>."
    params = [a for k, v in {**TINY, "rounds": 1, "epochs": 1, "min_steps": 0, "out_dir": str(tmp_path / "runs")}.items()
              for a in ("-p", k, str(v))]
    # pdarts's CPU preset searches at least 150 steps a stage: 10 keep this test quick
    arch_kwargs = {"min_stage_steps": 10} if arch == "pdarts" else {}
    extra = ["-y", "arch_kwargs: {min_stage_steps: 10}"] if arch_kwargs else []
    subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(tmp_path / "out.ipynb"),
                    "-p", "arch", arch, *params, *extra], cwd=REPO, check=True, capture_output=True)
    run_dir = run_dir_for(ExperimentConfig(arch=arch, arch_kwargs=arch_kwargs, out_dir=str(tmp_path / "runs")))
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and all(row["arch_summary"]["n_params"] == row["n_params"] > 0 for row in history)
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells])
    if arch == "resnet50":
        assert history[0]["n_params"] > 20_000_000 and "resnet50 is a fixed network" in outputs
        assert not (run_dir / "arch_summary.png").exists()
    elif arch != "pdarts":  # what these optimisers choose changes from round to round: a chart, drawn (not blank)
        assert_drawn(run_dir / "arch_summary.png")
    if arch == "select:cnn,mlp": assert "selected" in outputs and "ERROR" not in outputs


@pytest.mark.parametrize("bad, named", [({"budget": 0}, "budget=0"), ({"arch": "resnet"}, "arch='resnet'"),
                                        ({"budget": 400, "rounds": 4}, "budget=400 x rounds=4"),
                                        ({"pretrain": "simclrr"}, "pretrain='simclrr': allowed one of")])
def test_bad_parameters_stop_the_notebook_before_any_work(tmp_path, bad, named):
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"),
                                   parameters={**TINY, "out_dir": str(tmp_path / "runs"), **bad},
                                   cwd=str(REPO), progress_bar=False)
    assert caught.value.ename == "ConfigError" and named in caught.value.evalue
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("params, first_line", [
    (["-p", "strateg", "margin"], "'strateg' is not a parameter; did you mean 'strategy'?"),
    (["-p", "budgett", "10"], "'budgett' is not a parameter; did you mean 'budget'?"),
    (["-p", "strategy", "Badge"], "strategy='Badge': allowed one of"),
    (["-p", "arch", "resnet05"], "arch='resnet05': allowed one of"),
])
def test_misspelt_parameters_are_refused_in_one_line_with_a_suggestion(tmp_path, params, first_line):
    "papermill only warns about a parameter the notebook lacks; the notebook itself refuses it, before any work."
    out = tmp_path / "out.ipynb"
    done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), *params,
                           "-p", "out_dir", str(tmp_path / "runs")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode != 0
    error = next(o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if o.output_type == "error")
    assert error.ename == "ConfigError" and error.evalue.startswith(first_line), error.evalue
    assert len(error.traceback) == 1 and error.traceback[0].startswith(f"ConfigError: {first_line}")
    if "resnet05" in params or "Badge" in params: assert "did you mean" in error.evalue.splitlines()[0]
    assert not (tmp_path / "runs").exists()


def test_a_folder_named_archdal_in_the_working_directory_is_named_before_any_work(tmp_path):
    (tmp_path / "archdal").mkdir()
    done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(tmp_path / "out.ipynb"),
                           "-p", "out_dir", str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and "hides the installed archdal package" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "runs").exists()
