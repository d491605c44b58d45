"""End-to-end: the report notebook under papermill, on a tiny real grid of runs (2 archs x 2 strategies x 2 seeds)."""
import ast
import json
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

from archdal.loop import ExperimentConfig, run_experiment

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "nbs" / "report.ipynb"
TINY = dict(dataset="digits", budget=10, rounds=2, n_init_per_class=2, epochs=3, min_steps=0, patience=2, progress=False, device="cpu")
CHARTS = ("learning_curves", "auc", "strategy_rank_by_arch", "penalty", "penalty_by_arch")
TABLES = ("runs", "learning_curves", "auc", "ranks", "paired_tests", "penalty_matrix", "penalty_matrix_by_dataset_arch",
          "variance_explained")


def test_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}
    assert params == {"runs_dir": "reports/runs", "out_dir": "reports/report", "alpha": 0.05}


def test_report_on_a_small_grid(tmp_path):
    runs_dir, out_dir = tmp_path / "runs", tmp_path / "report"
    for arch in ("cnn", "mlp"):
        for strategy in ("entropy", "random"):
            for seed in (0, 1):
                run_experiment(ExperimentConfig(**TINY, arch=arch, strategy=strategy, seed=seed, out_dir=str(runs_dir)))
    executed = tmp_path / "report.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters={"runs_dir": str(runs_dir), "out_dir": str(out_dir)},
                               cwd=str(REPO), progress_bar=False)
    for name in CHARTS:
        assert (out_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (out_dir / f"{name}.svg").read_text()[:500]
        html = (out_dir / f"{name}.html").read_text()
        assert "vega" in html and "cdn.jsdelivr" not in html
    assert sorted(p.stem for p in out_dir.glob("*.csv")) == sorted(TABLES)
    penalty = pd.read_csv(out_dir / "penalty_matrix.csv", index_col=0)
    assert penalty.shape == (2, 2) and list(penalty.index) == list(penalty.columns) == ["entropy", "random"]
    assert ((penalty >= 0) & (penalty <= 1)).all().all() and (penalty.to_numpy().diagonal() == 0).all()
    assert pd.read_csv(out_dir / "penalty_matrix_by_dataset_arch.csv").shape == (4, 5)  # dataset, arch, strategy + 2
    overview = pd.read_csv(out_dir / "runs.csv")
    assert len(overview) == 4 and (overview.seeds == 2).all() and (overview.last_labels == 40).all()
    assert len(pd.read_csv(out_dir / "auc.csv")) == 8
    variance = pd.read_csv(out_dir / "variance_explained.csv")
    assert len(variance) == 8 and variance.groupby("metric").share.sum().round(9).eq(1).all()
    outputs = json.dumps([c.get("outputs", []) for c in nbformat.read(executed, as_version=4).cells], ensure_ascii=False)
    assert outputs.count("image/png") == 5 and "0 unfinished" in outputs
    assert "Few seeds: Only 2 seeds per architecture × strategy" in outputs  # two seeds: the t-tests have no power
    assert nbformat.read(executed, as_version=4).cells[0].cell_type == "markdown"  # no frontmatter cell


def test_no_runs_is_a_clear_error(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "report.ipynb"),
                                   parameters={"runs_dir": str(tmp_path / "runs"), "out_dir": str(tmp_path / "report")},
                                   cwd=str(REPO), progress_bar=False)
    assert caught.value.ename == "FileNotFoundError" and "no runs found" in caught.value.evalue
