"""End-to-end sweeps: the archdal-sweep command on a 2 x 2 x 2 grid with a report and a re-run that does nothing,
and a sweep where one cell fails at run time and another cell's worker process is killed mid-run."""
import fcntl
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import nbformat
import pandas as pd
import pytest

import dataclasses

from archdal.core import RunDir, read_config, read_history
from archdal.loop import run_experiment
from archdal.sweep import cell_finished, make_cells, run_cell, run_sweep

REPO = Path(__file__).resolve().parents[1]
SWEEP = Path(sys.executable).with_name("archdal-sweep")
TINY = dict(dataset="digits", rounds=1, budget=5, n_init_per_class=2, epochs=2, min_steps=0, device="cpu")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def sweep_command(*args, cwd):
    started = time.perf_counter()
    done = subprocess.run([str(SWEEP), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    return done, time.perf_counter() - started


def test_cli_grid_with_report_then_rerun_does_nothing(tmp_path):
    fixed = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    done, _ = sweep_command("--grid", "strategy=random,margin", "--grid", "arch=cnn,mlp", "--grid", "seed=0,1", *fixed,
                            "--set", "out_dir=runs", "--report", "report.ipynb", "--summary", "summary.csv", "--quiet",
                            cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 done, 0 skipped, 0 failed" in done.stdout
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 8 and (summary.status == "done").all() and summary.seconds.gt(0).all()
    assert summary[["strategy", "arch", "seed"]].drop_duplicates().shape[0] == 8
    for run_dir in map(Path, summary.run_dir):
        assert run_dir.is_relative_to(tmp_path / "runs" / "digits")
        assert len(read_history(RunDir(run_dir))) == 2 and not (run_dir / "failed.json").exists()
        assert json.loads((run_dir / "config.json").read_text())["environment"]["threads"] == 1  # no oversubscription
        executed = nbformat.read(run_dir / "experiment.ipynb", as_version=4)
        assert "final test accuracy" in json.dumps([c.get("outputs", []) for c in executed.cells])
    assert (tmp_path / "report.ipynb").exists() and (tmp_path / "report" / "penalty.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(tmp_path / "report" / "auc.csv")) == 8
    histories = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("history.jsonl")}

    # the same grid again, from a YAML file: every cell is skipped, no cluster is started
    (tmp_path / "sweep.yaml").write_text(
        "grid:\n  strategy: [random, margin]\n  arch: [cnn, mlp]\n  seed: [0, 1]\n"
        "fixed:\n" + "".join(f"  {k}: {v}\n" for k, v in {**TINY, "out_dir": "runs"}.items()))
    again, seconds = sweep_command("--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 done, 8 skipped, 0 failed" in again.stdout and seconds < 30, (again.stdout, seconds)
    assert {p: p.stat().st_mtime_ns for p in histories} == histories


def test_cli_invalid_cells_run_nothing(tmp_path):
    done, _ = sweep_command("--grid", "strategy=random,bogus", "--grid", "seed=0,1", "--set", "budget=0",
                            "--set", "out_dir=runs", cwd=tmp_path)
    assert done.returncode == 2 and "nothing was run" in done.stderr
    assert "cell 3 (strategy='bogus', seed=1): strategy='bogus'" in done.stderr
    assert "cell 0 (strategy='random', seed=0): budget=0: allowed an integer in [1, 1,000,000]" in done.stderr
    assert not (tmp_path / "runs").exists()


def kill_worker_once(marker: str, **cell):
    """A runner whose first call for a cell with n_init_per_class=2 kills its own worker process (SIGKILL) while the
    experiment's kernel holds the run directory's lock, i.e. mid-run; `marker` makes the retry run normally."""
    config = cell["config"]
    if config["n_init_per_class"] == 2 and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        lock = Path(config["out_dir"]).joinpath("n_init_per_class=2", config["dataset"], config["arch"],
                                                config["strategy"], f"seed{config['seed']}", ".lock")

        def kill_when_running():
            while True:
                if lock.exists():
                    with open(lock) as handle:
                        try: fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        except BlockingIOError: os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.02)
        threading.Thread(target=kill_when_running, daemon=True).start()
    return run_cell(**cell)


@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory):
    "Two cells: n_init_per_class=3 fails at run time (its run directory holds a run with another lr); the other's worker is killed."
    tmp = tmp_path_factory.mktemp("faults")
    marker = tmp / "killed"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    grid, fixed = {"n_init_per_class": [3, 2]}, {**{k: v for k, v in TINY.items() if k != "n_init_per_class"}, "strategy": "random",
                                                 "out_dir": str(tmp / "runs")}
    conflicting = make_cells(grid, fixed)[0].config
    run_experiment(dataclasses.replace(conflicting, lr=0.05, progress=False))  # the cell will meet RunConflict
    summary = run_sweep(grid, fixed, workers=2, progress=False, runner=functools.partial(kill_worker_once, str(marker)))
    return summary.set_index("n_init_per_class"), marker


def test_a_failing_cell_is_recorded_and_the_others_go_on(faulty_sweep):
    summary, _ = faulty_sweep
    assert summary.status.to_dict() == {3: "failed", 2: "done"}
    failed = summary.loc[3]
    assert failed.error.startswith("RunConflict: ") and "lr: saved 0.05, now 0.03" in failed.error, failed.error
    record = json.loads((Path(failed.run_dir) / "failed.json").read_text())
    assert record["cell"] == "cell 0 (n_init_per_class=3)" and record["error"] == failed.error
    executed = nbformat.read(record["notebook"], as_version=4)  # the executed notebook shows the traceback
    assert "RunConflict" in json.dumps([c.get("outputs", []) for c in executed.cells])
    assert read_config(RunDir(failed.run_dir))["lr"] == 0.05  # the other run is kept as it was


def test_a_killed_workers_cell_is_retried_and_completes(faulty_sweep):
    summary, marker = faulty_sweep
    assert marker.exists(), "the worker was not killed"
    done = summary.loc[2]
    assert done.status == "done" and len(read_history(RunDir(done.run_dir))) == 2
    assert not (Path(done.run_dir) / "failed.json").exists()
    killed_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError): os.kill(killed_pid, 0)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_killed_sweep_rerun_completes_every_cell_once_with_all_its_outputs(tmp_path, how):
    "Kill archdal-sweep (SIGKILL: with its workers and kernels; SIGTERM: the command alone) once a cell is complete."
    fixed = {**TINY, "rounds": 2, "strategy": "random", "out_dir": "runs"}
    args = ["--grid", "seed=0,1,2,3", *[a for k, v in fixed.items() for a in ("--set", f"{k}={v}")], "--workers", "2", "--quiet"]
    cells = make_cells({"seed": [0, 1, 2, 3]}, {**fixed, "out_dir": str(tmp_path / "runs")})
    process = subprocess.Popen([str(SWEEP), *args], cwd=tmp_path, env=ENV, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not any(cell_finished(c) for c in cells):
        assert process.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    if how == "SIGKILL": os.killpg(process.pid, signal.SIGKILL)
    else: os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    complete = {c.index: (c.run_dir / "history.jsonl").stat().st_mtime_ns for c in cells if cell_finished(c)}
    assert 1 <= len(complete) < 4, complete
    again, _ = sweep_command(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{4 - len(complete)} done, {len(complete)} skipped, 0 failed" in again.stdout, again.stdout
    for cell in cells:
        assert cell_finished(cell) and len(read_history(RunDir(cell.run_dir))) == 3
        assert "final test accuracy" in (cell.run_dir / "experiment.ipynb").read_text()
        assert not list(cell.run_dir.glob(".*.partial.ipynb")) and not list(cell.run_dir.glob(".*.tmp"))
        if cell.index in complete:  # finished before the kill: not run again
            assert (cell.run_dir / "history.jsonl").stat().st_mtime_ns == complete[cell.index]


def test_a_grid_over_architecture_sizes_is_one_sweep_one_out_dir_one_report(tmp_path):
    "Size variants are architectures of their own: cnn at depth 1 and 2 in one out_dir, two rows of the report."
    fixed = [a for k, v in {**TINY, "strategy": "random"}.items() for a in ("--set", f"{k}={v}")]
    done, _ = sweep_command("--grid", "arch_kwargs={depth: 1},{depth: 2}", *fixed, "--set", "out_dir=runs",
                            "--report", "report.ipynb", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "digits").iterdir()) == ["cnn-depth1", "cnn-depth2"]
    auc = pd.read_csv(tmp_path / "report" / "auc.csv")
    assert sorted(auc.arch) == ["cnn-depth1", "cnn-depth2"]
