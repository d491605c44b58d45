"""Faults a long grid of runs meets: killed processes, damaged or unwritable files, two writers, bad parameters."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from archdal.core import RunDir, RunDiskFull, read_history, read_queries
from archdal.loop import ExperimentConfig, run_dir_for, run_experiment

REPO = Path(__file__).resolve().parents[1]
# long enough rounds (no early stopping) that a kill lands inside a round
SLOW = dict(budget=15, rounds=3, n_init_per_class=3, epochs=80, min_steps=0, patience=80, progress=False, device="cpu")
TIMING = ("fit_seconds", "query_seconds")


def comparable(run_dir):
    "History without timings, and the queries, of a run directory."
    rows = [{k: v for k, v in row.items() if k not in TIMING} for row in read_history(RunDir(run_dir))]
    return json.dumps(rows), {r: q.tolist() for r, q in read_queries(RunDir(run_dir)).items()}


def start_in_subprocess(config: ExperimentConfig, on_go: bool = False) -> subprocess.Popen:
    """A process running `config`; with `on_go`, one that imports archdal, prints 'ready' and waits for a line on its
    standard input before it starts (so that a test can start it at a moment of its choosing, without the seconds of
    importing torch in between)."""
    code = ("from archdal.loop import ExperimentConfig, run_experiment\n"
            + ("import sys; print('ready', flush=True); sys.stdin.readline()\n" if on_go else "")
            + f"run_experiment(ExperimentConfig(**{config.to_dict()!r}))")
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, start_new_session=True,
                            stdin=subprocess.PIPE if on_go else None, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_rounds(run_dir: Path, n: int, process: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "history.jsonl").exists() and len(read_history(RunDir(run_dir))) >= n: return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise TimeoutError(f"{run_dir} did not reach {n} rounds")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    config = ExperimentConfig(**SLOW, out_dir=str(tmp_path_factory.mktemp("reference")))
    run_experiment(config)
    return comparable(run_dir_for(config))


@pytest.mark.parametrize("finished_rounds", [1, 2])
def test_sigkill_mid_round_then_resume_matches_an_uninterrupted_run(tmp_path, uninterrupted, finished_rounds):
    config = ExperimentConfig(**SLOW, out_dir=str(tmp_path))
    run_dir = run_dir_for(config)
    process = start_in_subprocess(config)
    wait_for_rounds(run_dir, finished_rounds, process)
    time.sleep(0.1)  # into the next round's training
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(read_history(RunDir(run_dir)))
    assert 1 <= finished < SLOW["rounds"] + 1, "the kill did not land inside the run"
    run_experiment(config)
    assert comparable(run_dir) == uninterrupted


def test_papermill_run_killed_then_rerun_resumes(tmp_path, uninterrupted):
    out_dir = tmp_path / "runs"
    params = [a for k, v in {**SLOW, "out_dir": str(out_dir)}.items() for a in ("-p", k, str(v))]
    command = [sys.executable, "-m", "papermill", "nbs/experiment.ipynb", str(tmp_path / "out.ipynb"), *params]
    run_dir = run_dir_for(ExperimentConfig(**SLOW, out_dir=str(out_dir)))
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_rounds(run_dir, 1, process)
    os.killpg(process.pid, signal.SIGKILL)  # papermill and its kernel
    process.wait()
    assert len(read_history(RunDir(run_dir))) < SLOW["rounds"] + 1
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    assert comparable(run_dir) == uninterrupted


def test_disk_full_while_writing_a_round_keeps_the_previous_state(tmp_path, monkeypatch, uninterrupted):
    config = ExperimentConfig(**SLOW, out_dir=str(tmp_path))
    run_dir = run_dir_for(config)
    real_write, checkpoints = RunDir.write, []
    def write_then_disk_full(self, name, data):
        if name == "checkpoint.pt":
            checkpoints.append(name)
            if len(checkpoints) == 2:  # round 1's checkpoint: the disk fills up while it is written
                with mock.patch("os.fsync", side_effect=OSError(errno.ENOSPC, "No space left on device")):
                    return real_write(self, name, data)
        return real_write(self, name, data)
    monkeypatch.setattr(RunDir, "write", write_then_disk_full)
    with pytest.raises(RunDiskFull, match=f"left on the device for {run_dir / 'checkpoint.pt'}"):
        run_experiment(config)
    monkeypatch.undo()
    assert [row["round"] for row in read_history(RunDir(run_dir))] == [0]
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "checkpoint.pt", "config.json", "history.jsonl",
                                                         "manifest.json", "queries.npz", "records.npz"]
    run_experiment(config)  # the round-0 checkpoint is intact: the run resumes from round 1
    assert comparable(run_dir) == uninterrupted


def test_two_processes_on_the_same_run_never_clobber(tmp_path, uninterrupted):
    config = ExperimentConfig(**SLOW, out_dir=str(tmp_path))
    second = start_in_subprocess(config, on_go=True)  # imported before the first starts: it asks for the run mid-way
    assert second.stdout.readline() == b"ready\n"
    first = start_in_subprocess(config)
    wait_for_rounds(run_dir_for(config), 1, first)
    _, second_err = second.communicate(b"go\n", timeout=120)
    assert second.returncode != 0 and b"RunInUse" in second_err and b"is being written by pid" in second_err
    assert first.wait(timeout=300) == 0
    assert comparable(run_dir_for(config)) == uninterrupted


def test_two_processes_with_different_seeds_share_out_dir(tmp_path):
    configs = [ExperimentConfig(**{**SLOW, "rounds": 1, "epochs": 5}, seed=s, out_dir=str(tmp_path)) for s in (0, 1)]
    processes = [start_in_subprocess(c) for c in configs]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    histories = [read_history(RunDir(run_dir_for(c))) for c in configs]
    assert all(len(h) == 2 for h in histories) and histories[0] != histories[1]


def test_same_seed_is_bit_identical_and_other_seeds_differ(tmp_path, uninterrupted):
    config = ExperimentConfig(**SLOW, out_dir=str(tmp_path / "a"))
    run_experiment(config)
    assert comparable(run_dir_for(config)) == uninterrupted
    other = ExperimentConfig(**{**SLOW, "seed": 1}, out_dir=str(tmp_path / "b"))
    run_experiment(other)
    history, queries = comparable(run_dir_for(other))
    assert history != uninterrupted[0] and queries[0] != uninterrupted[1][0]
