"""Hygiene: the library is what the notebooks export, and the notebooks are committed clean."""
import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_archdal_matches_a_fresh_export_of_the_notebooks(tmp_path):
    shutil.copy(REPO / "settings.ini", tmp_path)
    shutil.copytree(REPO / "nbs", tmp_path / "nbs")
    exporter = Path(sys.executable).with_name("nbdev_export")
    subprocess.run([str(exporter)], cwd=tmp_path, check=True, capture_output=True)
    committed = sorted(p.name for p in (REPO / "archdal").glob("*.py"))
    exported = sorted(p.name for p in (tmp_path / "archdal").glob("*.py"))
    assert committed == exported, "archdal/ holds modules that no notebook exports, or misses some"
    stale = [name for name in committed if not filecmp.cmp(REPO / "archdal" / name, tmp_path / "archdal" / name, shallow=False)]
    assert not stale, f"archdal/{stale} differ from the notebooks: run nbdev_export and commit"


def test_notebooks_are_clean(tmp_path):
    "The notebooks are committed as nbdev_clean leaves them, and without outputs (they are the source, not a report)."
    shutil.copy(REPO / "settings.ini", tmp_path)
    shutil.copytree(REPO / "nbs", tmp_path / "nbs")
    cleaner = Path(sys.executable).with_name("nbdev_clean")
    subprocess.run([str(cleaner)], cwd=tmp_path, check=True, capture_output=True)
    notebooks = sorted((REPO / "nbs").glob("*.ipynb"))
    dirty = [p.name for p in notebooks if not filecmp.cmp(p, tmp_path / "nbs" / p.name, shallow=False)]
    assert not dirty, f"nbs/{dirty} are not clean: run nbdev_clean (nbdev_install_hooks makes JupyterLab do it on save)"
    with_outputs = [p.name for p in notebooks if any(c.get("outputs") for c in json.loads(p.read_text())["cells"])]
    assert not with_outputs, f"nbs/{with_outputs} hold outputs: clear them (Edit > Clear Outputs of All Cells) and save"


def test_jupyter_saves_notebooks_clean(tmp_path):
    "settings.ini turns nbdev's Jupyter pre-save hook on: JupyterLab drops execution counts and stray metadata on save."
    import nbformat
    from nbdev.clean import clean_jupyter
    shutil.copy(REPO / "settings.ini", tmp_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", execution_count=3, metadata={"collapsed": True})])
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "x.ipynb")
    clean_jupyter(path=str(tmp_path / "nbs" / "x.ipynb"), model={"type": "notebook", "content": nb})
    assert nb.cells[0].execution_count is None and nb.cells[0].metadata == {}


def test_source_notebooks_reach_git_without_outputs_whatever_jupyter_saved(tmp_path):
    "nbs/.gitattributes and the Makefile's git filter: a notebook saved with its outputs is staged without them."
    import nbformat
    venv = Path(sys.executable).parents[1]
    dry_run = subprocess.run(["make", "-n", "-B", "-C", str(REPO), f"VENV={venv}", f"{venv}/bin/.archdal-installed"],
                             check=True, capture_output=True, text=True).stdout
    install_filter = next(line for line in dry_run.splitlines() if "filter.nbs-clear-outputs.clean" in line)
    git = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    git("init", "-q")
    subprocess.run(install_filter, shell=True, cwd=tmp_path, check=True)  # the Makefile's own command, in this repo
    shutil.copy(REPO / "settings.ini", tmp_path)
    (tmp_path / "nbs").mkdir()
    shutil.copy(REPO / "nbs" / ".gitattributes", tmp_path / "nbs")
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=1, outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)])
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "nbs" / "x.ipynb")
    git("add", "nbs/x.ipynb")
    staged = json.loads(git("show", ":nbs/x.ipynb"))
    assert staged["cells"][0]["outputs"] == [] and staged["cells"][0]["execution_count"] is None
    assert json.loads((tmp_path / "nbs" / "x.ipynb").read_text())["cells"][0]["outputs"]  # the working copy keeps them
    for notebook in sorted((REPO / "nbs").glob("*.ipynb")):  # committed notebooks pass unchanged: no phantom changes
        shutil.copy(notebook, tmp_path / "nbs")
        git("add", f"nbs/{notebook.name}")
        assert git("show", f":nbs/{notebook.name}") == notebook.read_text(), notebook.name


def test_readme_parameter_table_is_generated_from_the_spec():
    "One description per parameter: the README's table is EXPERIMENT_SPEC.markdown_table(), not a copy kept by hand."
    from archdal.loop import EXPERIMENT_SPEC
    readme = (REPO / "README.md").read_text()
    start = "<!-- parameters: generated from archdal.loop.EXPERIMENT_SPEC.markdown_table() -->\n"
    table = readme[readme.index(start) + len(start):readme.index("<!-- /parameters -->")].strip()
    assert table == EXPERIMENT_SPEC.markdown_table(), (
        "README.md's parameter table is stale: replace it with the output of python -c \"from archdal.loop import "
        "EXPERIMENT_SPEC; print(EXPERIMENT_SPEC.markdown_table())\"")
