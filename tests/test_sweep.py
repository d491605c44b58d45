"""End-to-end sweeps: the archdal-sweep command on a grid of strategies x architecture sizes (on texts) with a report and a re-run
that does nothing; a sweep on a cluster of `dask scheduler` and `dask worker` processes, one cell per GPU resource,
where one cell fails at run time and a worker is killed mid-cell, with the cells' round lines in the terminal; and
archdal-sweep itself killed and re-run."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import dataclasses

from archdal.core import RunDir, read_config, read_history
from archdal.loop import ExperimentConfig, run_experiment
from archdal.sweep import cell_finished, make_cells, run_sweep

REPO = Path(__file__).resolve().parents[1]
SWEEP = Path(sys.executable).with_name("archdal-sweep")
DASK = Path(sys.executable).with_name("dask")
TINY = dict(dataset="digits", rounds=1, budget=5, n_init_per_class=2, epochs=2, min_steps=0, device="cpu")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def set_args(fixed: dict) -> list[str]:
    "`--set KEY=VALUE` for each parameter of `fixed`."
    return [a for k, v in fixed.items() for a in ("--set", f"{k}={v}")]


def sweep_command(*args, cwd):
    started = time.perf_counter()
    done = subprocess.run([str(SWEEP), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    return done, time.perf_counter() - started


TEXT = dict(dataset="trec6", arch="textcnn", rounds=1, budget=6, n_init_per_class=2, epochs=2, min_steps=0,
            pool_subset=200, device="cpu")


def test_cli_grid_with_report_then_rerun_does_nothing(tmp_path):
    """Strategies x architecture sizes (the TextCNN with 16 and 32 filters per width: architectures of their own) on texts,
    in one out_dir and one report."""
    done, _ = sweep_command("--grid", "strategy=random,margin", "--grid", "arch_kwargs={width: 16},{width: 32}", "--grid", "seed=0",
                            *set_args(TEXT), "--set", "out_dir=runs", "--report", "report.ipynb", "--summary", "summary.csv",
                            "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 done, 0 skipped, 0 failed" in done.stdout
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 4 and (summary.status == "done").all() and summary.seconds.gt(0).all()
    assert sorted(p.name for p in (tmp_path / "runs" / "trec6").iterdir()) == ["textcnn-width16", "textcnn-width32"]
    for run_dir in map(Path, summary.run_dir):
        assert run_dir.is_relative_to(tmp_path / "runs" / "trec6")
        assert len(read_history(RunDir(run_dir))) == 2 and not (run_dir / "failed.json").exists()
        assert json.loads((run_dir / "config.json").read_text())["environment"]["threads"] == 1  # no oversubscription
        executed = nbformat.read(run_dir / "experiment.ipynb", as_version=4)
        assert "final test accuracy" in json.dumps([c.get("outputs", []) for c in executed.cells])
    # the report over every cell (its statistics, e.g. the penalty matrix from two seeds on, are tests/test_report_notebook.py's)
    assert (tmp_path / "report.ipynb").exists()
    assert (tmp_path / "report" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    auc = pd.read_csv(tmp_path / "report" / "auc.csv")
    assert len(auc) == 4 and sorted(set(auc.arch)) == ["textcnn-width16", "textcnn-width32"] and set(auc.dataset) == {"trec6"}
    assert (tmp_path / "report" / "strategy_rank_by_arch.png").read_bytes()[:4] == b"\x89PNG"
    histories = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("history.jsonl")}

    # the same grid again, from a YAML file: every cell is skipped, no cluster is started
    (tmp_path / "sweep.yaml").write_text(
        "grid:\n  strategy: [random, margin]\n  arch_kwargs: [{width: 16}, {width: 32}]\n  seed: [0]\n"
        "fixed:\n" + "".join(f"  {k}: {v}\n" for k, v in {**TEXT, "out_dir": "runs"}.items()))
    again, _ = sweep_command("--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 done, 4 skipped, 0 failed" in again.stdout, again.stdout
    assert {p: p.stat().st_mtime_ns for p in histories} == histories


def _run_directly(config: dict, **_) -> dict:
    "A sweep runner without papermill (the cell's experiment in the Dask worker's own process), for a cheaper test."
    started = time.perf_counter()
    run_experiment(ExperimentConfig(**config))
    return {"status": "done", "seconds": time.perf_counter() - started, "error": None}


def test_a_sweep_pretrains_each_key_once_and_every_cell_uses_it(tmp_path, monkeypatch):
    "Two cells sharing a pretraining key, at once in two worker processes: one pretrains, the other waits for it and reads it."
    monkeypatch.chdir(tmp_path)
    fixed = {**TINY, "out_dir": "runs", "strategy": "random", "pretrain": "simclr", "freeze_body": True,
             "pretrain_kwargs": {"steps": 5, "batch_size": 32}}
    summary = run_sweep({"lr": [0.03, 0.05]}, fixed, workers=2, runner=_run_directly, progress=False)  # two out_dir levels
    assert summary.status.tolist() == ["done", "done"], summary.error.tolist()
    records = [RunDir(Path(d)).read_json("pretrained.json") for d in summary.run_dir]
    entries = list((tmp_path / "runs" / ".pretrained").rglob("weights.pt"))  # one cache for the cells of every lr
    assert len(entries) == 1 and {r["cache"] for r in records} == {str(entries[0].parent)}
    assert [r["trained_here"] for r in records].count(True) == 1  # pretrained once, by one of the two cells
    assert len({r["sha256"] for r in records}) == 1 and RunDir(entries[0].parent).damaged() == []
    assert all(RunDir(Path(d)).damaged() == [] for d in summary.run_dir)  # pretrained.json sealed in each run


def test_cli_invalid_cells_run_nothing(tmp_path):
    done, _ = sweep_command("--grid", "strategy=random,bogus", "--grid", "seed=0,1", "--set", "budget=0",
                            "--set", "out_dir=runs", cwd=tmp_path)
    assert done.returncode == 2 and "nothing was run" in done.stderr
    assert "cell 3 (strategy='bogus', seed=1): strategy='bogus'" in done.stderr
    assert "cell 0 (strategy='random', seed=0): budget=0: allowed an integer in [1, 1,000,000]" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_resources_in_a_bad_format_run_nothing(tmp_path):
    "Checked before the scheduler is contacted (none listens at port 9)."
    done, _ = sweep_command("--resources", "GPU,MEM=lots", "--scheduler", "tcp://127.0.0.1:9", "--grid", "seed=0,1",
                            "--set", "out_dir=runs", cwd=tmp_path)
    assert done.returncode == 2 and "nothing was run" in done.stderr, done.stderr
    assert "--resources 'GPU,MEM=lots': 'GPU' is not NAME=AMOUNT; allowed e.g. GPU=1 or GPU=1,MEM=16e9" in done.stderr
    assert "'MEM=lots' is not NAME=AMOUNT" in done.stderr and "cannot be reached" not in done.stderr
    assert not (tmp_path / "runs").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_below(root: int) -> list[int]:
    "The descendants of process `root` (Linux /proc), read now."
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError): pass  # ended while read
    below, level = [], {root}
    while level:
        level = {pid for pid, parent in parents.items() if parent in level}
        below += level
    return below


def kernels_below(root: int) -> dict[int, set[str]]:
    "The Jupyter kernels below process `root`, each with the paths of the files it has open."
    kernels = {}
    for pid in processes_below(root):
        try:
            if b"ipykernel" not in Path(f"/proc/{pid}/cmdline").read_bytes(): continue
            kernels[pid] = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError: pass  # ended while read
    return kernels


def kill_trees(processes) -> None:
    "SIGKILL each process's group and every process below it (kernels start sessions of their own)."
    for process in processes:
        below = processes_below(process.pid)
        for kill, pid in [(os.killpg, process.pid), *((os.kill, p) for p in below)]:
            try: kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError): pass
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster_sweep(tmp_path_factory):
    """archdal-sweep on a real cluster of processes: `dask scheduler` and two `dask worker --resources GPU=1` of two
    threads each, in working directories of their own, sharing only out_dir. Three cells, each holding GPU=1: seed=0
    fails at run time (its run directory holds a run with another lr); once it has, the first worker seen running one
    of the others mid-run (its kernel holds the run directory's lock) is killed with its nanny and kernel (SIGKILL),
    which leaves the other worker one cell and the retry to run."""
    tmp = tmp_path_factory.mktemp("cluster")
    fixed = {**TINY, "strategy": "random", "out_dir": str(tmp / "runs")}
    cells = make_cells({"seed": [0, 1, 2]}, fixed)
    address, started, logs = f"tcp://127.0.0.1:{free_port()}", [], {}

    def start(name, *command):
        (tmp / name).mkdir()
        logs[name] = [open(tmp / f"{name}.{stream}", "w") for stream in ("out", "err")]
        started.append(subprocess.Popen([str(c) for c in command], cwd=tmp / name, env=ENV, start_new_session=True,
                                        stdout=logs[name][0], stderr=logs[name][1]))
        return started[-1]
    try:
        start("scheduler", DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")
        workers = {name: start(name, DASK, "worker", address, "--nworkers", "1", "--nthreads", "2", "--resources", "GPU=1",
                               "--no-dashboard", "--name", name, "--local-directory", str(tmp / name))
                   for name in ("w0", "w1")}
        run_experiment(dataclasses.replace(cells[0].config, lr=0.05, progress=False))  # cell 0 will meet RunConflict
        sweep = start("sweep", SWEEP, "--grid", "seed=0,1,2", *set_args(fixed), "--scheduler", address,
                      "--resources", "GPU=1", "--summary", str(tmp / "summary.csv"))
        locks, killed, most = {str(c.run_dir / ".lock"): c for c in cells[1:]}, None, 0
        any_lock = {str(c.run_dir / ".lock") for c in cells}
        deadline = time.monotonic() + 180
        while sweep.poll() is None:
            assert time.monotonic() < deadline, "the sweep did not end"
            for name, worker in workers.items():
                if name == killed: continue
                kernels = kernels_below(worker.pid)
                # kernels running a cell (holding its run directory's lock): a finished cell's kernel may still be
                # shutting down while the worker's next cell starts, and that is not two cells at once
                most = max(most, sum(bool(files & any_lock) for files in kernels.values()))
                running = [locks[f] for files in kernels.values() for f in files if f in locks]
                if killed is None and running and (cells[0].run_dir / "failed.json").exists():
                    kill_trees([worker])
                    killed, cell = name, running[0]
            time.sleep(0.1)
        yield {"returncode": sweep.returncode, "stdout": (tmp / "sweep.out").read_text(), "cells": cells, "most": most,
               "summary": pd.read_csv(tmp / "summary.csv").set_index("seed"), "out_dir": tmp / "runs",
               "killed": (workers[killed], cell) if killed else None}
    finally:
        kill_trees(started)
        for files in logs.values():
            for file in files: file.close()


def test_a_failing_cell_is_recorded_and_the_others_go_on(cluster_sweep):
    summary = cluster_sweep["summary"]
    assert cluster_sweep["returncode"] == 1, cluster_sweep["stdout"]  # a cell failed
    assert summary.status.to_dict() == {0: "failed", 1: "done", 2: "done"}, cluster_sweep["stdout"]
    failed = summary.loc[0]
    assert failed.error.startswith("RunConflict: ") and "lr: saved 0.05, now 0.03" in failed.error, failed.error
    record = json.loads((Path(failed.run_dir) / "failed.json").read_text())
    assert record["cell"] == "cell 0 (seed=0)" and record["error"] == failed.error
    executed = nbformat.read(record["notebook"], as_version=4)  # the executed notebook shows the traceback
    assert "RunConflict" in json.dumps([c.get("outputs", []) for c in executed.cells])
    assert read_config(RunDir(failed.run_dir))["lr"] == 0.05  # the other run is kept as it was


def test_a_killed_workers_cell_is_retried_on_the_other_worker_and_completes_once(cluster_sweep):
    assert cluster_sweep["killed"], "no worker was killed"
    worker, cell = cluster_sweep["killed"]
    with pytest.raises(ProcessLookupError): os.killpg(worker.pid, 0)  # nanny, worker process and all: gone
    assert cluster_sweep["summary"].status[cell.values["seed"]] == "done", cell.label
    assert "2 done, 0 skipped, 1 failed" in cluster_sweep["stdout"], cluster_sweep["stdout"]
    for done in cluster_sweep["cells"][1:]:
        assert cell_finished(done) and not (done.run_dir / "failed.json").exists()
        assert [row["round"] for row in read_history(RunDir(done.run_dir))] == [0, 1]  # every round once
        assert not list(done.run_dir.glob(".*.partial.ipynb"))
    assert len(list(cluster_sweep["out_dir"].rglob("history.jsonl"))) == 3  # one run directory per cell


def test_each_cell_holds_its_gpu_so_a_worker_runs_one_cell_at_a_time(cluster_sweep):
    """The workers have two threads each: without resources={'GPU': 1} one of them could run two of the three cells at
    once (two of its kernels would hold run directories' locks at the same moment)."""
    assert cluster_sweep["most"] == 1, cluster_sweep["most"]


def test_the_round_lines_of_cells_on_remote_workers_reach_the_sweeps_terminal(cluster_sweep):
    out = cluster_sweep["stdout"]
    for cell in cluster_sweep["cells"][1:]:
        for line in (f"{cell.label}: round 0/1: training on 20 labels", f"{cell.label}: round 0/1 done: 20 labels, test accuracy ",
                     f"{cell.label}: round 1/1 done: 25 labels, test accuracy "):
            assert line in out, (line, out)


def test_a_killed_sweep_rerun_completes_every_cell_once_with_all_its_outputs(tmp_path):
    """archdal-sweep stopped with SIGTERM (the command alone) once a cell is complete, started again and killed with
    SIGKILL (with its workers and kernels) once another one is, then started again: every cell once, outputs whole.
    Five cells on two workers: two cells that started together may end within one poll, and one is still left then."""
    fixed, seeds = {**TINY, "strategy": "random", "out_dir": "runs"}, [0, 1, 2, 3, 4]
    args = ["--grid", f"seed={','.join(map(str, seeds))}", *set_args(fixed), "--workers", "2", "--quiet"]
    cells = make_cells({"seed": seeds}, {**fixed, "out_dir": str(tmp_path / "runs")})
    complete = {}  # cell -> mtime of its history when it was found complete
    for how in ("SIGTERM", "SIGKILL"):
        process = subprocess.Popen([str(SWEEP), *args], cwd=tmp_path, env=ENV, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while sum(map(cell_finished, cells)) <= len(complete):
            assert process.poll() is None and time.monotonic() < deadline, f"the sweep ended before it got {how}"
            time.sleep(0.05)
        if how == "SIGKILL": os.killpg(process.pid, signal.SIGKILL)
        else: os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        before, complete = complete, {c.index: (c.run_dir / "history.jsonl").stat().st_mtime_ns for c in cells if cell_finished(c)}
        assert len(before) < len(complete) < len(cells) and all(complete[i] == t for i, t in before.items()), (how, before, complete)
    again, _ = sweep_command(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(cells) - len(complete)} done, {len(complete)} skipped, 0 failed" in again.stdout, again.stdout
    for cell in cells:
        assert cell_finished(cell) and len(read_history(RunDir(cell.run_dir))) == 2
        assert "final test accuracy" in (cell.run_dir / "experiment.ipynb").read_text()
        assert not list(cell.run_dir.glob(".*.partial.ipynb")) and not list(cell.run_dir.glob(".*.tmp"))
        if cell.index in complete:  # finished before a kill: not run again
            assert (cell.run_dir / "history.jsonl").stat().st_mtime_ns == complete[cell.index]
