"""The library is generated from the notebooks: exporting again must reproduce archdal/ exactly."""
import filecmp
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
