"""Fault injection for archdal's run directories, parameters and sweeps: on demand, not part of CI.

Run it from the repository root with the project's virtualenv (as root for the disk-full category):

    .venv/bin/python bench/faults.py                                   # all categories, default trials: 10-12 min, 2 cores
    .venv/bin/python bench/faults.py --categories damage,disk-full --trials 5
    .venv/bin/python bench/faults.py --categories kill-in-write --only 7   # replay trial 7 of that category
    .venv/bin/python bench/faults.py --seed 3 --out /tmp/faults.md --keep  # other trials; keep the scratch folder

It prints the table "category | trials | failures", then every failure (the trial's spec, what was wrong, a
command that replays it) and writes the same, with the machine and date, to --out (reports/faults.md). Trial i of a
category is drawn from (--seed, category, i) alone, so `--only i` replays it; when a timed fault lands relative to
the run's progress still depends on the machine's speed. Threads are limited to one per process.

The experiments are tiny (digits, cnn, 3 rounds of 10 images, 2 epochs, on the CPU). Uninterrupted reference runs
are made in this process first. Runs that are faulted are forked children in a session of their own (os.fork and
os.setsid: a subprocess that starts in milliseconds because torch and the data are already loaded); papermill and
archdal-sweep run as real commands. A trial PASSES when:

kill-random    a run SIGKILLed at a random instant (once or twice), then rerun to completion, ends with the reference's
               history (fit_seconds and query_seconds aside) and queries, no temp file, and RunDir.verify() passing.
kill-in-write  the same, when the process kills itself inside RunDir.write for one file and call number: before the
               write, after the temp file is written (before os.replace), or after os.replace (before the dir fsync);
               a third of the trials kill the resumed run a second time.
damage         after a truncation or a bit flip of one run file (checkpoint.pt, history.jsonl, queries.npz,
               config.json, manifest.json) of a finished or half-finished run, archdal.analysis.load_runs and a rerun
               each either raise RunFileCorrupt/RunConflict naming that file and leave it byte-identical, or succeed:
               load_runs with the undamaged run's rows, the rerun with the reference's results and verify() passing.
               Any other exception, or success with other results, fails.
disk-full      (root; a tmpfs limited in bytes or in inodes, sized so that it fills at different files) the run raises
               RunDiskFull naming a path on that tmpfs, the files of the finished rounds stay readable and agree with
               the reference, a rerun on the still-full disk behaves the same, and after a remount with room the
               resumed run equals the reference. Skipped, with a note, when not root or mount fails.
concurrent     two processes started together on one run directory: one completes, the other gets RunInUse naming
               the holder's pid, and the result equals the reference; two seeds in one out_dir both complete, each
               with its reference.
bad-params     a bad value (wrong type, out of range, huge, a close-but-wrong name) or a misspelt parameter name, given
               through the Python API, papermill (-p or -y, from the repository root) or archdal-sweep (--set, or
               --grid with a good value first) is refused within 20 s, process start included, by a ConfigError whose
               first line names the parameter (and the suggestion, for did-you-mean values; papermill also for
               misspelt names), papermill shows it as a one-line error output, archdal-sweep exits 2 saying nothing was
               run, and no run directory appears. Numpy scalars through the API must be accepted and config.json must
               hold them as plain JSON. (Misspelt names are not tried through the API: ExperimentConfig is a
               dataclass and Python refuses the keyword itself.)
sweep-kill     archdal-sweep on a 3-cell grid (2 workers), SIGKILLed (its process group) or SIGTERMed a random delay
               after 0, 1 or 2 cells have finished, then rerun: every cell ends cell_finished with all rounds (equal to
               the reference, unless archdal's sources changed on disk meanwhile) and its executed notebook, no .partial or .tmp file remains, and cells that had finished
               before the kill were not rerun. Processes of the killed sweep that outlive it by 3 s are reported as
               notes (and then killed).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _name in THREAD_VARIABLES: os.environ[_name] = "1"  # before torch is imported; inherited by every child

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from archdal.analysis import load_runs  # noqa: E402
from archdal.core import RunDir, read_history, read_queries  # noqa: E402
from archdal.loop import EXPERIMENT_SPEC, VIEWS, ExperimentConfig, run_dir_for, run_experiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SWEEP = shutil.which("archdal-sweep", path=str(Path(sys.executable).parent)) or "archdal-sweep"

# ---------------------------------------------------------------- the tiny experiment

EXPERIMENT = {"dataset": "digits", "arch": "cnn", "strategy": "random", "budget": 10, "rounds": 3,
              "n_init_per_class": 2, "seed": 0, "device": "cpu", "progress": False, "arch_kwargs": {},
              "deterministic": False}
TRAINING = {"epochs": 2, "min_steps": 0, "patience": 1, "batch_size": 32, "mc_samples": 2, "lr": 0.01, "optimizer": "sgd",
            "weight_decay": 5e-4, "dropout": 0.25, "val_fraction": 0.1, "augment": "auto", "warm_start": False,
            "acquisition": "top", "beta": 1.0, "pool_subset": None, "pool_cap": None}
PATH_FIELDS = ("out_dir", "data_root")
SHRINKABLE = re.compile(r"epoch|patience|step|iter|sample|warmup|restart|trial", re.I)  # new training fields: their minimum
CONFIGS = {"random-s0": {"strategy": "random", "seed": 0}, "entropy-s0": {"strategy": "entropy", "seed": 0},
           "random-s1": {"strategy": "random", "seed": 1}}
TIMING = ("fit_seconds", "query_seconds")


def experiment_values(**overrides) -> dict:
    "The tiny experiment's parameters (only fields ExperimentConfig has now; unknown training-like int fields at their minimum)."
    params = EXPERIMENT_SPEC.params
    values = {k: v for k, v in {**EXPERIMENT, **TRAINING}.items() if k in params}
    for name, p in params.items():
        if name in values or name in PATH_FIELDS or p.kind != "int" or p.low is None or not SHRINKABLE.search(name):
            continue
        values[name] = int(p.low) + (1 if p.low_open else 0)
    return {**values, **overrides}


def unset_fields() -> list[str]:
    "ExperimentConfig fields this bench leaves at their defaults (fields added after it was written)."
    return [n for n in EXPERIMENT_SPEC.params if n not in experiment_values() and n not in PATH_FIELDS]


def experiment_config(out_dir: Path, data_root: Path, **overrides) -> ExperimentConfig:
    return ExperimentConfig(**experiment_values(**overrides), out_dir=str(out_dir), data_root=str(data_root))


def comparable(rows: list[dict]) -> list[dict]:
    "History rows without the timings, which differ between identical runs."
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def read_results(run_dir: Path) -> tuple[list[dict], dict[int, list[int]]]:
    "The history (without timings) and the queries (round -> indices) stored in `run_dir`."
    run = RunDir(run_dir)
    return comparable(read_history(run)), {r: np.asarray(v).tolist() for r, v in read_queries(run).items()}


def first_difference(got: list[dict], want: list[dict]) -> str:
    if len(got) != len(want): return f"{len(got)} rounds instead of {len(want)}"
    for number, (a, b) in enumerate(zip(got, want)):
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if keys: return f"round {number}: " + ", ".join(f"{k} {a.get(k)!r} instead of {b.get(k)!r}" for k in keys[:3])
    return "no difference"


def results_problems(run_dir: Path, reference: Reference, prefix: bool = False) -> list[str]:
    "What differs between the results in `run_dir` and `reference` (with `prefix`, a run may hold fewer rounds)."
    try: history, queries = read_results(run_dir)
    except Exception as e: return [f"the run files cannot be read: {type(e).__name__}: {first_line(e)}"]
    want_history, want_queries = reference.history, reference.queries
    if prefix:
        want_history = want_history[:len(history)]
        want_queries = {r: q for r, q in want_queries.items() if r in queries}
    problems = []
    if history != want_history: problems.append(f"history.jsonl differs from the reference: {first_difference(history, want_history)}")
    if queries != want_queries:
        rounds = sorted(r for r in set(queries) | set(want_queries) if queries.get(r) != want_queries.get(r))
        problems.append(f"queries.npz differs from the reference at round(s) {rounds}")
    return problems


def verify_problems(run_dir: Path) -> list[str]:
    "RunDir.verify() of every file in the manifest and of the three views."
    run = RunDir(run_dir)
    try: run.verify(sorted(set(run.manifest()) | set(VIEWS)))
    except Exception as e: return [f"RunDir.verify() fails: {type(e).__name__}: {e}"]
    return []


def leftovers(root: Path, patterns=(RunDir.TEMP_GLOB,)) -> list[str]:
    return sorted(str(p.relative_to(root)) for pattern in patterns for p in Path(root).rglob(pattern))


def finished_run_problems(run_dir: Path, reference: Reference, out_root: Path) -> list[str]:
    "The PASS test of a run that was rerun to completion: the reference's results, no temp file, verify() passing."
    problems = results_problems(run_dir, reference) + verify_problems(run_dir)
    left = leftovers(out_root)
    if left: problems.append(f"temp files remain: {left}")
    return problems


def first_line(error) -> str: return str(error).splitlines()[0] if str(error) else ""


def code_fingerprint() -> str:
    "A digest of archdal's sources on disk: commands (papermill, archdal-sweep) run what is there now, while this "
    "process and its forked children run what was there when it started."
    import archdal
    digest = hashlib.sha256()
    for path in sorted(Path(archdal.__file__).parent.glob("*.py")): digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


STARTING_CODE = code_fingerprint()


@dataclass
class Reference:
    "An uninterrupted run: its results, how long it took here, and every RunDir.write it made (file name, bytes)."
    values: dict
    run_dir: Path
    history: list[dict]
    queries: dict[int, list[int]]
    seconds: float
    writes: list[tuple[str, int]]

    def write_counts(self) -> Counter: return Counter(name for name, _ in self.writes)

# ---------------------------------------------------------------- hooks into RunDir.write (used inside children)


class StopRun(Exception):
    "Raised by a hook to leave a run half-finished (a clean state at a chosen write)."


@contextmanager
def patched_writes(hook: Callable):
    "Route RunDir.write through `hook(name, call_number, write, data)`; call numbers count per file name."
    original = RunDir.write
    calls = Counter()

    def write(self, name, data):
        calls[name] += 1
        return hook(name, calls[name], lambda: original(self, name, data), data)

    RunDir.write = write
    try: yield calls
    finally: RunDir.write = original


def recorder(log: list) -> Callable:
    def hook(name, number, write, data):
        log.append((name, len(data)))
        return write()
    return hook


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_in_write(target: str, call: int, point: str) -> Callable:
    "A hook that SIGKILLs this process at `point` of call number `call` of RunDir.write for `target`."
    def hook(name, number, write, data):
        if (name, number) != (target, call): return write()
        if point == "before": kill_self()
        real_replace = os.replace

        def replace(src, dst):
            if point == "after-temp": kill_self()
            real_replace(src, dst)
            kill_self()  # after-replace: the directory is not fsynced yet

        os.replace = replace
        try: return write()
        finally: os.replace = real_replace
    return hook


def stop_after_write(target: str, call: int) -> Callable:
    def hook(name, number, write, data):
        path = write()
        if (name, number) == (target, call): raise StopRun(f"stopped after writing {target} (call {call})")
        return path
    return hook

# ---------------------------------------------------------------- forked children


@dataclass
class Outcome:
    "How a child ended: ok (its return value), error (the exception), killed (a signal), timeout."
    status: str
    seconds: float
    error: str = ""
    message: str = ""
    value: object = None

    def raised(self, *names: str) -> bool: return self.status == "error" and self.error in names

    def __str__(self):
        if self.status == "error": return f"{self.error}: {self.message}"
        return f"{self.status} after {self.seconds:.1f} s"


class Child:
    "`target()` run in a forked process of its own session; its return value or exception comes back as JSON."

    def __init__(self, target: Callable, log: Path):
        sys.stdout.flush()
        sys.stderr.flush()
        self.started = time.monotonic()
        self._read, write_end = os.pipe()
        self._wait_status = None
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._read)
            _child_main(target, write_end, log)
        os.close(write_end)

    def finished(self) -> bool:
        if self._wait_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid: self._wait_status = status
        return self._wait_status is not None

    def kill(self) -> None:
        try: os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # not yet its own group leader
            try: os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError: pass

    def kill_after(self, seconds: float) -> bool:
        "SIGKILL the child `seconds` after it started; False if it had finished by then."
        time.sleep(max(0.0, self.started + seconds - time.monotonic()))
        if self.finished(): return False
        self.kill()
        return True

    def wait(self, timeout: float) -> Outcome:
        deadline, chunks, timed_out = time.monotonic() + timeout, [], False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                timed_out = True
                break
            ready, _, _ = select.select([self._read], [], [], remaining)
            if ready:
                chunk = os.read(self._read, 1 << 16)
                if not chunk: break
                chunks.append(chunk)
        os.close(self._read)
        if self._wait_status is None: self._wait_status = os.waitpid(self.pid, 0)[1]
        seconds = time.monotonic() - self.started
        if timed_out: return Outcome("timeout", seconds)
        if os.WIFSIGNALED(self._wait_status): return Outcome("killed", seconds, message=f"signal {os.WTERMSIG(self._wait_status)}")
        try: report = json.loads(b"".join(chunks))
        except ValueError: return Outcome("died", seconds, message=f"exit status {os.waitstatus_to_exitcode(self._wait_status)}")
        return Outcome(report["status"], seconds, report.get("error", ""), report.get("message", ""), report.get("value"))


def _child_main(target: Callable, report_fd: int, log: Path) -> None:
    "The forked side of Child: run `target`, report, and leave without running the parent's exit handlers."
    try:
        os.setsid()
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        try: report = {"status": "ok", "value": target()}
        except BaseException as e:  # noqa: BLE001 (every exception is the result)
            report = {"status": "error", "error": type(e).__name__, "message": str(e)}
        os.write(report_fd, json.dumps(report, default=repr).encode())
    finally:
        os._exit(0)

# ---------------------------------------------------------------- processes of commands (papermill, archdal-sweep)


def _proc_stat(pid: int) -> tuple[int, int] | None:
    "(parent pid, start time) of a live process, or None."
    try: text = Path(f"/proc/{pid}/stat").read_text()
    except OSError: return None
    fields = text[text.rindex(")") + 2:].split()
    return (None if fields[0] == "Z" else (int(fields[1]), int(fields[19]))) if len(fields) > 19 else None


class ProcessTree:
    "Every process descended from `root`, recorded by polling /proc, so that those outliving it can be found and killed."

    def __init__(self, root: int, interval: float = 0.3):
        self.seen: dict[int, int] = {}
        stat = _proc_stat(root)
        if stat: self.seen[root] = stat[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)
        self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(interval)

    def scan(self) -> None:
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _proc_stat(int(entry))
                if stat: table[int(entry)] = stat
        grew = True
        while grew:
            grew = False
            for pid, (ppid, start) in table.items():
                if pid not in self.seen and ppid in self.seen:
                    self.seen[pid] = start
                    grew = True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def alive(self) -> list[int]:
        return sorted(pid for pid, start in self.seen.items() if (_proc_stat(pid) or (0, None))[1] == start)

    def kill_alive(self) -> list[int]:
        "SIGKILL each recorded process still alive (checked by start time, so never a reused pid); returns their pids."
        alive = self.alive()
        for pid in alive:
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        return alive


@dataclass
class CommandResult:
    returncode: int | None
    seconds: float
    stdout: str
    stderr: str
    survivors: list[int]


def run_command(argv: list[str], cwd: Path, timeout: float, log: Path) -> CommandResult:
    "Run `argv` in a session of its own; on timeout SIGKILL its group and every process it started."
    started = time.monotonic()
    with open(log.with_suffix(".out"), "w+") as out, open(log.with_suffix(".err"), "w+") as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        tree = ProcessTree(proc.pid)
        try: returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
        seconds = time.monotonic() - started
        tree.stop()
        survivors = tree.kill_alive()
        out.seek(0)
        err.seek(0)
        return CommandResult(returncode, seconds, out.read(), err.read(), survivors)


def _killpg(pgid: int, sig: int) -> None:
    try: os.killpg(pgid, sig)
    except ProcessLookupError: pass

# ---------------------------------------------------------------- the bench: scratch folder, references, templates


@dataclass
class Trial:
    category: str
    index: int
    spec: dict
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    folder: Path | None = None
    timing: str = ""  # where a command's seconds went (papermill)


class Bench:
    "The scratch folder, the reference runs (made once, in this process) and half-finished run templates."

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data_root = workdir / "data"
        self._references: dict[str, Reference] = {}
        self._templates: dict[tuple, Path] = {}

    def folder(self, trial: Trial) -> Path:
        "The trial's own folder, made empty when the trial first asks for it."
        if trial.folder is None:
            trial.folder = self.workdir / f"{trial.category}-{trial.index:03d}"
            shutil.rmtree(trial.folder, ignore_errors=True)
        trial.folder.mkdir(parents=True, exist_ok=True)
        return trial.folder

    def config(self, out_dir: Path, **overrides) -> ExperimentConfig:
        return experiment_config(out_dir, self.data_root, **overrides)

    def start(self, target: Callable, trial: Trial, label: str) -> Child:
        logs = self.folder(trial) / "logs"
        logs.mkdir(exist_ok=True)
        return Child(target, logs / f"{label.replace(' ', '-')}.log")

    def warm_up(self) -> None:
        "One run in this process, so that the references' times (and the forked children) are free of first-use costs."
        run_experiment(self.config(self.workdir / "warm-up", rounds=1))

    def reference(self, key: str | None = None, **values) -> Reference:
        "The reference run of CONFIGS[key] (or of these parameter values), made on first use."
        values = {**CONFIGS[key]} if key else values
        name = json.dumps(experiment_values(**values), sort_keys=True)
        if name not in self._references:
            out = self.workdir / "references" / f"r{len(self._references)}"
            config = self.config(out, **values)
            writes = []
            started = time.perf_counter()
            with patched_writes(recorder(writes)): run_experiment(config)
            seconds = time.perf_counter() - started
            run_dir = run_dir_for(config)
            history, queries = read_results(run_dir)
            self._references[name] = Reference(values, run_dir, history, queries, seconds, writes)
        return self._references[name]

    def template(self, key: str, stop: tuple[str, int] | None) -> Path:
        "An out_dir holding the run CONFIGS[key] finished (stop None) or stopped right after the write `stop`."
        if (key, stop) not in self._templates:
            reference = self.reference(key)
            out = self.workdir / "templates" / f"t{len(self._templates)}"
            if stop is None: shutil.copytree(reference.run_dir.parents[3], out)
            else:
                config = self.config(out, **CONFIGS[key])

                def stopped():
                    with patched_writes(stop_after_write(*stop)): run_experiment(config)

                logs = self.workdir / "templates" / "logs"
                logs.mkdir(parents=True, exist_ok=True)
                outcome = Child(stopped, logs / f"t{len(self._templates)}.log").wait(120)
                if not outcome.raised("StopRun"): raise RuntimeError(f"making the template {key} {stop}: {outcome}")
            self._templates[(key, stop)] = out
        return self._templates[(key, stop)]

# ---------------------------------------------------------------- shared trial steps


def rerun_to_completion(bench: Bench, trial: Trial, config: ExperimentConfig, reference: Reference,
                        out_root: Path) -> None:
    "Rerun `config` in a child; PASS needs it to finish with the reference's results, no temp file, verify() passing."
    outcome = bench.start(lambda: bool(run_experiment(config)), trial, "rerun").wait(180)
    if outcome.status != "ok":
        trial.problems.append(f"the rerun did not complete: {outcome}")
        return
    trial.problems += finished_run_problems(run_dir_for(config), reference, out_root)


def trial_rng(seed: int, category: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{category}:{index}")


def cycled(seed: int, category: str, index: int, items: list):
    "Item `index` of `items` in an order shuffled by (seed, category): every item once before any repeats."
    order = list(items)
    random.Random(f"{seed}:{category}").shuffle(order)
    return order[index % len(order)]

# ---------------------------------------------------------------- 1. kill at random instants


def plan_kill_random(seed: int, index: int) -> dict:
    rng = trial_rng(seed, "kill-random", index)
    kills = 1 if rng.random() < 0.7 else 2
    return {"config": rng.choice(["random-s0", "entropy-s0"]),
            "kill_at": [round(rng.uniform(0.0, 1.1), 3) for _ in range(kills)]}  # fractions of the reference's time


def run_kill_random(bench: Bench, spec: dict, trial: Trial) -> None:
    reference = bench.reference(spec["config"])
    out = bench.folder(trial) / "runs"
    config = bench.config(out, **CONFIGS[spec["config"]])
    for number, fraction in enumerate(spec["kill_at"]):
        child = bench.start(lambda: bool(run_experiment(config)), trial, f"killed-{number}")
        if not child.kill_after(fraction * reference.seconds): trial.notes.append("a run finished before its kill")
        outcome = child.wait(120)
        if outcome.status not in ("ok", "killed"): trial.problems.append(f"run {number} (to be killed) ended {outcome}")
    rerun_to_completion(bench, trial, config, reference, out)

# ---------------------------------------------------------------- 2. kill inside each write

WRITE_FILES = (".lock", "config.json", "checkpoint.pt", "history.jsonl", "queries.npz", "records.npz", "manifest.json")
WRITE_POINTS = ("before", "after-temp", "after-replace")


def plan_kill_in_write(seed: int, index: int) -> dict:
    rng = trial_rng(seed, "kill-in-write", index)
    name, point = cycled(seed, "kill-in-write", index, [(f, p) for f in WRITE_FILES for p in WRITE_POINTS])
    kills = [{"file": name, "call": round(rng.random(), 3), "point": point}]
    if rng.random() < 1 / 3:  # then kill the resumed run as well
        kills.append({"file": rng.choice(WRITE_FILES), "call": round(rng.random(), 3), "point": rng.choice(WRITE_POINTS)})
    return {"config": rng.choice(["random-s0", "entropy-s0"]), "kills": kills}


def run_kill_in_write(bench: Bench, spec: dict, trial: Trial) -> None:
    reference = bench.reference(spec["config"])
    counts = reference.write_counts()
    out = bench.folder(trial) / "runs"
    config = bench.config(out, **CONFIGS[spec["config"]])
    for number, kill in enumerate(spec["kills"]):
        if not counts[kill["file"]]:
            trial.notes.append(f"{kill['file']} is never written by a fresh run")
            continue
        call = 1 + min(int(kill["call"] * counts[kill["file"]]), counts[kill["file"]] - 1)

        def killed(file=kill["file"], call=call, point=kill["point"]):
            with patched_writes(kill_in_write(file, call, point)): return bool(run_experiment(config))

        outcome = bench.start(killed, trial, f"killed-{number}").wait(120)
        where = f"{kill['point']} write {call} of {kill['file']}"
        if outcome.status == "ok": trial.notes.append(f"{where}: not reached (the run finished)")
        elif outcome.status != "killed": trial.problems.append(f"run {number}, to be killed {where}, ended {outcome}")
    rerun_to_completion(bench, trial, config, reference, out)

# ---------------------------------------------------------------- 3. truncation and bit flips

DAMAGE_FILES = ("checkpoint.pt", "history.jsonl", "queries.npz", "config.json", "manifest.json")
DAMAGE_MODES = ("truncate", "bitflip")
ACCEPTED_REFUSALS = ("RunFileCorrupt", "RunConflict")


def plan_damage(seed: int, index: int) -> dict:
    rng = trial_rng(seed, "damage", index)
    name, mode = cycled(seed, "damage", index, [(f, m) for f in DAMAGE_FILES for m in DAMAGE_MODES])
    rounds = EXPERIMENT["rounds"]
    state = rng.choice(["finished", "views-behind", "round-boundary"])
    # views-behind: stopped after the checkpoint of round k-1 (views one round behind); round-boundary: after round k-1
    call = {"finished": None, "views-behind": rng.randint(2, rounds + 1), "round-boundary": rng.randint(1, rounds)}[state]
    return {"config": rng.choice(["random-s0", "entropy-s0"]), "state": state, "call": call, "file": name,
            "mode": mode, "where": round(rng.random(), 4), "bit": rng.randrange(8)}


def damage_file(path: Path, mode: str, where: float, bit: int) -> str:
    "Truncate `path` to a fraction `where` of its size, or flip `bit` of the byte at that fraction; says what it did."
    data = path.read_bytes()
    if mode == "truncate":
        keep = int(where * len(data))
        path.write_bytes(data[:keep])
        return f"truncated from {len(data)} to {keep} bytes"
    position = min(int(where * len(data)), len(data) - 1)
    flipped = bytearray(data)
    flipped[position] ^= 1 << bit
    path.write_bytes(bytes(flipped))
    return (f"bit {bit} of byte {position} of {len(data)} flipped ({data[position]:#04x} -> {flipped[position]:#04x}; "
            f"around it: {data[max(0, position - 12):position + 12]!r})")


def load_runs_records(out_root: Path) -> list[dict]:
    "load_runs on `out_root`, as JSON records without run_dir and timings (comparable between folders)."
    frame = load_runs(out_root)
    records = json.loads(frame.to_json(orient="records"))
    return [{k: v for k, v in r.items() if k != "run_dir" and k not in TIMING} for r in records]


def records_difference(got: list[dict], want: list[dict]) -> str:
    "The first way load_runs records differ: row count, columns, or values."
    if len(got) != len(want): return f"{len(got)} rows instead of {len(want)}"
    for number, (a, b) in enumerate(zip(got, want)):
        if a.keys() != b.keys(): return f"columns {sorted(set(a) ^ set(b))} in one table only"
        keys = [k for k in a if a[k] != b[k]]
        if keys: return f"row {number}: " + ", ".join(f"{k} {a[k]!r} instead of {b[k]!r}" for k in keys[:3])
    return "no difference"


def judge_refusal(outcome: Outcome, what: str, name: str, damaged: Path, damaged_bytes: bytes) -> list[str]:
    "Problems of a step that raised: it must be RunFileCorrupt/RunConflict naming `name`, the file left unchanged."
    problems = []
    if not outcome.raised(*ACCEPTED_REFUSALS): problems.append(f"{what} raised {outcome}")
    elif name not in outcome.message: problems.append(f"{what} raised {outcome.error} without naming {name}: {outcome.message}")
    if not damaged.exists() or damaged.read_bytes() != damaged_bytes:
        problems.append(f"{what} refused the run but modified the damaged {name}")
    return problems


def run_damage(bench: Bench, spec: dict, trial: Trial) -> None:
    reference = bench.reference(spec["config"])
    stop = None if spec["state"] == "finished" else (
        ("checkpoint.pt" if spec["state"] == "views-behind" else "manifest.json"), spec["call"])
    template = bench.template(spec["config"], stop)
    out = bench.folder(trial) / "runs"
    shutil.copytree(template, out)
    config = bench.config(out, **CONFIGS[spec["config"]])
    damaged = run_dir_for(config) / spec["file"]
    trial.notes.append(f"damage: {spec['file']} {damage_file(damaged, spec['mode'], spec['where'], spec['bit'])}")
    damaged_bytes = damaged.read_bytes()

    undamaged = bench.start(lambda: load_runs_records(template), trial, "load-runs-undamaged").wait(60)
    reader = bench.start(lambda: load_runs_records(out), trial, "load-runs").wait(60)
    if reader.status == "ok":
        if reader.value != undamaged.value:
            trial.problems.append(f"load_runs accepted the damaged {spec['file']} and returned other rows than "
                                  f"for the undamaged run: {records_difference(reader.value, undamaged.value)}")
    else: trial.problems += judge_refusal(reader, "load_runs", spec["file"], damaged, damaged_bytes)

    rerun = bench.start(lambda: bool(run_experiment(config)), trial, "rerun").wait(180)
    trial.notes.append(f"{spec['file']} {spec['mode']}: load_runs {reader.error or reader.status}, "
                       f"rerun {rerun.error or rerun.status}")
    if rerun.status != "ok":
        trial.problems += judge_refusal(rerun, "the rerun", spec["file"], damaged, damaged_bytes)
        return
    trial.problems += finished_run_problems(run_dir_for(config), reference, out)
    finished = bench.template(spec["config"], None)
    after = bench.start(lambda: load_runs_records(out), trial, "load-runs-after").wait(60)
    wanted = bench.start(lambda: load_runs_records(finished), trial, "load-runs-reference").wait(60)
    if after.status != "ok": trial.problems.append(f"after the rerun, load_runs raised {after}")
    elif after.value != wanted.value:
        trial.problems.append(f"after the rerun, load_runs returns other rows than for the reference run: "
                              f"{records_difference(after.value, wanted.value)}")
    if damaged.exists() and damaged.read_bytes() == damaged_bytes:
        trial.notes.append(f"the rerun accepted the damaged {spec['file']} as it is")

# ---------------------------------------------------------------- 4. disk full

PAGE = 4096
ROOMY = "size=512m,nr_inodes=100000"


def pages(size: int) -> int: return -(-size // PAGE)


def fill_points(writes: list[tuple[str, int]]) -> list[tuple[int, int, str]]:
    """For each write that a tmpfs of the right size makes the first to fail: (pages every earlier write needs, pages
    this one needs, file name). Old files stay until their replacement is renamed over them."""
    files, peak, points = {".lock": 1}, 1, []  # the lock file holds its holder's pid
    for name, size in writes:
        need = sum(files.values()) - (1 if name == ".lock" else 0) + pages(size)
        if need > peak: points.append((peak, need, name))
        peak = max(peak, need)
        files[name] = max(pages(size), 1 if name == ".lock" else 0)
    return points


# inodes: the tmpfs root, 4 folders, .lock, then one per run file (and one for the temp file being written);
# bytes: a position among the writes that a size can make the first to fail (see fill_points)
DISK_LIMITS = [("inodes", n) for n in range(2, 9)] + [("bytes", round(k / 7, 3)) for k in range(7)]


def plan_disk_full(seed: int, index: int) -> dict:
    rng = trial_rng(seed, "disk-full", index)
    limit, level = cycled(seed, "disk-full", index, DISK_LIMITS)
    return {"config": rng.choice(["random-s0", "entropy-s0"]), "limit": limit, "level": level,
            "slack": round(rng.random(), 4), "retry_full": rng.random() < 0.5}


def mount_options(spec: dict, reference: Reference) -> str:
    if spec["limit"] == "inodes": return f"nr_inodes={spec['level']}"
    points = fill_points(reference.writes)
    low, need, _ = points[min(int(spec["level"] * len(points)), len(points) - 1)]
    return f"size={PAGE * max(1, low + int(spec['slack'] * max(0, need - 1 - low)))}"


def mount_problem(workdir: Path) -> str | None:
    "Why tmpfs cannot be mounted here (None if it can)."
    if os.geteuid() != 0: return "not root: mounting a tmpfs needs root"
    try:
        with tmpfs(workdir / "mount-check", "size=64k"): return None
    except (OSError, subprocess.CalledProcessError) as e:
        return f"mount -t tmpfs failed: {getattr(e, 'stderr', b'') or e}"


@contextmanager
def tmpfs(path: Path, options: str):
    "A tmpfs mounted on `path` with `options` for the block; always unmounted afterwards."
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)
    try: yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def intact_problems(run_dir: Path, reference: Reference) -> list[str]:
    "After a failure: the files of finished rounds must be readable and agree with the reference."
    problems = results_problems(run_dir, reference, prefix=True)
    run = RunDir(run_dir)
    try:
        if run.exists("config.json"): run.read_json("config.json")
        if run.exists("checkpoint.pt"):
            state = torch.load(io.BytesIO(run.read_sealed("checkpoint.pt")), map_location="cpu", weights_only=False)
            rounds = state["next_round"]
            if comparable(state["history"]) != reference.history[:rounds]:
                problems.append(f"checkpoint.pt's history of {rounds} round(s) differs from the reference")
            if run.exists("history.jsonl") and len(read_history(run)) > rounds:
                problems.append("history.jsonl holds more rounds than checkpoint.pt")
    except Exception as e:
        problems.append(f"a file of the finished rounds is unreadable: {type(e).__name__}: {first_line(e)}")
    return problems


def disk_full_problems(outcome: Outcome, mount: Path) -> list[str]:
    if not outcome.raised("RunDiskFull"): return [f"the run on the full disk ended {outcome} instead of RunDiskFull"]
    if str(mount) not in outcome.message: return [f"RunDiskFull does not name a path in {mount}: {outcome.message}"]
    return []


def run_disk_full(bench: Bench, spec: dict, trial: Trial) -> None:
    reference = bench.reference(spec["config"])
    mount = bench.folder(trial) / "mnt"
    options = mount_options(spec, reference)
    trial.notes.append(f"tmpfs {options}")
    with tmpfs(mount, options):
        config = bench.config(mount, **CONFIGS[spec["config"]])
        run_dir = run_dir_for(config)
        attempts = 2 if spec["retry_full"] else 1
        for attempt in range(attempts):
            outcome = bench.start(lambda: bool(run_experiment(config)), trial, f"full-{attempt}").wait(180)
            if outcome.status == "ok":
                trial.notes.append("the disk did not fill")
                break
            trial.problems += disk_full_problems(outcome, mount)
            full_at = re.search(r"for (\S+) \(", outcome.message)
            trial.notes.append(f"attempt {attempt}: {outcome.error} at {Path(full_at[1]).name if full_at else '?'}")
            trial.problems += [f"after attempt {attempt}: {p}" for p in intact_problems(run_dir, reference)]
        remount(mount, ROOMY)
        rerun_to_completion(bench, trial, config, reference, mount)

# ---------------------------------------------------------------- 5. concurrent writers


def plan_concurrent(seed: int, index: int) -> dict:
    rng = trial_rng(seed, "concurrent", index)
    return {"kind": "same-run" if index % 3 != 2 else "two-seeds", "config": rng.choice(["random-s0", "entropy-s0"]),
            "delays": [0.0, round(rng.choice([0.0, rng.uniform(0.0, 0.005), rng.uniform(0.0, 0.05)]), 4)]}


def start_together(bench: Bench, trial: Trial, targets: list[Callable], delays: list[float]) -> tuple[list[Child], list[Outcome]]:
    "Fork one child per target, let them all go at once (each after its delay), wait for them."
    go_read, go_write = os.pipe()

    def gated(target, delay):
        def run():
            os.read(go_read, 1)
            time.sleep(delay)
            began = time.time()
            target()
            return {"pid": os.getpid(), "began": began, "ended": time.time()}
        return run

    children = [bench.start(gated(t, d), trial, f"writer-{i}") for i, (t, d) in enumerate(zip(targets, delays))]
    time.sleep(0.3)
    os.write(go_write, b"x" * len(children))
    os.close(go_read)
    os.close(go_write)
    return children, [child.wait(180) for child in children]


def run_concurrent(bench: Bench, spec: dict, trial: Trial) -> None:
    out = bench.folder(trial) / "runs"
    keys = [spec["config"]] * 2 if spec["kind"] == "same-run" else ["random-s0", "random-s1"]
    configs = [bench.config(out, **CONFIGS[key]) for key in keys]
    references = [bench.reference(key) for key in keys]
    children, outcomes = start_together(bench, trial, [lambda c=c: run_experiment(c) for c in configs], spec["delays"])
    if spec["kind"] == "two-seeds":
        for config, reference, outcome in zip(configs, references, outcomes):
            if outcome.status != "ok": trial.problems.append(f"seed {config.seed} ended {outcome}")
            else: trial.problems += [f"seed {config.seed}: {p}" for p in finished_run_problems(run_dir_for(config), reference, out)]
        return
    trial.notes += [f"writer {i} (pid {child.pid}): {outcome}" for i, (child, outcome) in enumerate(zip(children, outcomes))
                    if outcome.status == "ok" or outcome.raised("RunInUse")]
    completed = [i for i, o in enumerate(outcomes) if o.status == "ok"]
    for i, outcome in enumerate(outcomes):
        holder = children[1 - i].pid
        if outcome.raised("RunInUse"):
            if f"pid {holder}" not in outcome.message:
                trial.problems.append(f"RunInUse does not name the holder (pid {holder}): {outcome.message}")
        elif outcome.status != "ok": trial.problems.append(f"writer {i} (pid {children[i].pid}) ended {outcome}")
    if len(completed) == 2:
        a, b = (outcomes[i].value for i in completed)
        overlap = min(a["ended"], b["ended"]) - max(a["began"], b["began"])
        trial.problems.append(f"both writers completed and neither got RunInUse (their runs overlapped for {overlap:.2f} s)")
    if not completed:
        trial.problems.append("no writer completed")
        return
    trial.problems += finished_run_problems(run_dir_for(configs[0]), references[0], out)

# ---------------------------------------------------------------- 6. bad parameters

CHANNELS = ("api", "papermill", "sweep")
REFUSE_SECONDS = 20.0
FILE_MARK = "<a file>/runs"  # replaced by a path below a regular file
PRESENT_AT_START = {p for p in (ROOT / "digits",) if p.exists()}  # where out_dir='' would put runs (papermill's cwd)


@dataclass(frozen=True)
class BadCase:
    "Parameter values (over the tiny experiment) to be refused naming `names` (and `hint`), or `accept`ed (numpy)."
    id: str
    values: dict
    names: tuple[str, ...] = ()
    hint: str = ""
    accept: bool = False

    @property
    def misspelt(self) -> bool: return any(k not in EXPERIMENT_SPEC.params for k in self.values)


def _refuse(id, values, *names, hint=""): return BadCase(id, values, names or (next(iter(values)),), hint)


BAD_CASES = [
    _refuse("budget-text", {"budget": "10"}), _refuse("budget-float", {"budget": 10.5}),
    _refuse("budget-bool", {"budget": True}), _refuse("budget-zero", {"budget": 0}),
    _refuse("budget-huge", {"budget": 10**7}), _refuse("budget-beyond-pool", {"budget": 800}),
    _refuse("rounds-zero", {"rounds": 0}), _refuse("rounds-huge", {"rounds": 10**6}),
    _refuse("n-init-beyond-classes", {"n_init_per_class": 1000}), _refuse("val-fraction-one", {"val_fraction": 1.0}),
    _refuse("epochs-zero", {"epochs": 0}), _refuse("epochs-huge", {"epochs": 10**7}),
    _refuse("patience-negative", {"patience": -1}), _refuse("lr-zero", {"lr": 0.0}),
    _refuse("lr-nan", {"lr": math.nan}), _refuse("lr-inf", {"lr": math.inf}), _refuse("lr-text", {"lr": "fast"}),
    _refuse("batch-one", {"batch_size": 1}), _refuse("batch-huge", {"batch_size": 10**7}),
    _refuse("dropout-one", {"dropout": 1.0}), _refuse("mc-samples-one", {"mc_samples": 1}),
    _refuse("weight-decay-negative", {"weight_decay": -0.1}), _refuse("beta-negative", {"beta": -1.0}),
    _refuse("seed-negative", {"seed": -1}), _refuse("seed-2**32", {"seed": 2**32}), _refuse("seed-float", {"seed": 1.5}),
    _refuse("pool-cap-zero", {"pool_cap": 0}), _refuse("pool-subset-below-budget", {"pool_subset": 5}),
    _refuse("warm-start-text", {"warm_start": "yes"}),
    _refuse("warm-start-optimiser", {"warm_start": True, "arch": "pdarts"}, "warm_start"),
    _refuse("acquisition-not-scoring", {"acquisition": "power"}), _refuse("acquisition-case", {"acquisition": "Top"}, hint="'top'"),
    _refuse("optimizer-case", {"optimizer": "Adam"}, hint="'adam'"), _refuse("optimizer-unknown", {"optimizer": "rmsprop"}),
    _refuse("strategy-case", {"strategy": "Badge"}, hint="'badge'"), _refuse("strategy-typo", {"strategy": "entrop"}, hint="'entropy'"),
    _refuse("arch-typo", {"arch": "resnet05"}, hint="'resnet50'"), _refuse("arch-case", {"arch": "CNN"}, hint="'cnn'"),
    _refuse("arch-int", {"arch": 42}), _refuse("arch-select-typo", {"arch": "select:cnn,cnnn"}),
    _refuse("dataset-typo", {"dataset": "digitz"}, hint="'digits'"), _refuse("augment-unknown", {"augment": "flip"}),
    _refuse("device-unknown", {"device": "gpu"}), _refuse("device-absent-cuda", {"device": "cuda:7"}),
    _refuse("width-huge", {"arch_kwargs": {"width": 10**5}}, "arch_kwargs", "width"),
    _refuse("K-huge", {"arch": "depth_dropout", "arch_kwargs": {"K": 10**6}}, "arch_kwargs", "K"),
    _refuse("arch-kwarg-typo", {"arch_kwargs": {"widht": 16}}, "arch_kwargs", "widht", hint="'width'"),
    _refuse("mc-without-dropout", {"strategy": "bald", "dropout": 0.0, "arch_kwargs": {"body_dropout": 0.0}}, "strategy"),
    _refuse("arch-kwargs-text", {"arch_kwargs": "width=16"}), _refuse("arch-kwargs-nan", {"arch_kwargs": {"width": math.nan}}),
    _refuse("out-dir-empty", {"out_dir": ""}), _refuse("out-dir-below-file", {"out_dir": FILE_MARK}),
    _refuse("progress-text", {"progress": "no"}), _refuse("deterministic-int", {"deterministic": 1}),
    _refuse("name-strateg", {"strateg": "random"}, hint="'strategy'"), _refuse("name-Epochs", {"Epochs": 2}, hint="'epochs'"),
    _refuse("name-budjet", {"budjet": 10}, hint="'budget'"), _refuse("name-learning_rate", {"learning_rate": 0.1}),
    BadCase("numpy-ints", {"budget": np.int64(10), "rounds": np.int32(2), "seed": np.uint32(0),
                           "n_init_per_class": np.int16(2)}, accept=True),
    BadCase("numpy-floats", {"lr": np.float64(0.01), "dropout": np.float32(0.25), "val_fraction": np.float64(0.1)}, accept=True),
    BadCase("numpy-bool", {"warm_start": np.bool_(True), "rounds": 2}, accept=True),
    BadCase("numpy-arch-kwargs", {"arch_kwargs": {"width": np.int64(8), "depth": np.int64(2)}, "rounds": 2}, accept=True),
    BadCase("numpy-0d-array", {"budget": np.array(10), "pool_subset": np.int64(200), "rounds": 2}, accept=True),
]


def _plain(value):
    if isinstance(value, dict): return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, (np.generic, np.ndarray)) else value


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b): return True
    return type(a) is type(b) and (a == b if not isinstance(a, dict) else a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a))


def sweep_text(value) -> str | None:
    "How --set writes `value` so that archdal-sweep reads it back exactly (None when it cannot)."
    from archdal.sweep import parse_value
    text = value if isinstance(value, str) and _same(parse_value(value), value) else repr(value)
    return text if _same(parse_value(text), value) else None


def channels_of(case: BadCase) -> list[str]:
    "The channels a case can be given through."
    if case.accept: return ["api"]
    found = ["papermill"]
    if not case.misspelt: found.insert(0, "api")
    if all(sweep_text(v) is not None for v in case.values.values()): found.append("sweep")
    return found


CHANNEL_TURNS = ("api", "papermill", "api", "sweep")  # the API is cheap: half the trials


def plan_bad_params(seed: int, index: int) -> dict:
    "Trials take the channels in CHANNEL_TURNS order; each channel goes through its cases shuffled (API: numpy first)."
    rng = trial_rng(seed, "bad-params", index)
    channel = CHANNEL_TURNS[index % len(CHANNEL_TURNS)]
    turn = sum(1 for i in range(index) if CHANNEL_TURNS[i % len(CHANNEL_TURNS)] == channel)
    cases = [c for c in BAD_CASES if channel in channels_of(c)]
    accepted = [c.id for c in cases if c.accept]
    if turn < len(accepted): case = cycled(seed, "bad-params-numpy", turn, accepted)
    else: case = cycled(seed, f"bad-params-{channel}", turn - len(accepted), [c.id for c in cases if not c.accept])
    forms = {"api": [None], "papermill": ["p", "y"], "sweep": ["set", "grid"]}[channel]
    return {"case": case, "channel": channel, "form": rng.choice(forms)}


def case_values(case: BadCase, folder: Path) -> dict:
    "The case's values with FILE_MARK made a real path below a regular file."
    if case.values.get("out_dir") != FILE_MARK: return dict(case.values)
    (folder / "a-file").write_text("not a folder\n")
    return {**case.values, "out_dir": str(folder / "a-file" / "runs")}


def run_files_created(folder: Path, out_dir: str) -> list[str]:
    "Files under `out_dir`, or a run directory where an empty out_dir points (the cwd of the commands)."
    found = [str(p) for p in Path(out_dir).rglob("*") if p.is_file()] if out_dir and Path(out_dir).is_dir() else []
    return found + [str(p) for p in (folder / "digits", ROOT / "digits") if p.exists() and p not in PRESENT_AT_START]


def judge_message(first: str, case: BadCase, channel: str, trial: Trial) -> None:
    missing = [n for n in case.names if n not in first]
    if missing: trial.problems.append(f"the first line does not name {missing}: {first!r}")
    if case.hint and f"did you mean {case.hint}" not in first:
        if case.misspelt and channel == "sweep": trial.notes.append(f"no suggestion {case.hint} in: {first!r}")
        else: trial.problems.append(f"the first line lacks the suggestion 'did you mean {case.hint}?': {first!r}")


def run_bad_api(case: BadCase, values: dict, out: Path, trial: Trial, bench: Bench) -> float:
    parameters = {**experiment_values(), "out_dir": str(out), "data_root": str(bench.data_root), **values}

    def attempt():
        run_experiment(ExperimentConfig(**parameters))
        return json.loads(Path(run_dir_for(ExperimentConfig(**parameters).validate()) / "config.json").read_text())["config"]

    outcome = bench.start(attempt, trial, "api").wait(60)
    if case.accept:
        if outcome.status != "ok": trial.problems.append(f"numpy values were refused: {outcome}")
        else:
            wrong = {k: outcome.value.get(k) for k, v in values.items() if not _same(outcome.value.get(k), _plain(v))}
            if wrong: trial.problems.append(f"config.json holds {wrong} for {({k: _plain(values[k]) for k in wrong})}")
        return outcome.seconds
    if not outcome.raised("ConfigError"): trial.problems.append(f"not refused with ConfigError: {outcome}")
    else: judge_message(outcome.message.splitlines()[0], case, "api", trial)
    return outcome.seconds


def papermill_arguments(values: dict, form: str) -> list[str]:
    "-p NAME VALUE where papermill reads the text back as that value (and form is 'p'), else -y YAML."
    import yaml
    from papermill.cli import _resolve_type
    arguments = []
    for name, value in values.items():
        text = "None" if value is None else str(value)
        if form == "p" and not isinstance(value, (dict, list)) and _same(_resolve_type(text), value):
            arguments += ["-p", name, text]
        else: arguments += ["-y", yaml.safe_dump({name: value}, default_flow_style=True).strip()]
    return arguments


def run_bad_papermill(case: BadCase, values: dict, out: Path, trial: Trial, bench: Bench, form: str) -> float:
    executed = trial.folder / "executed.ipynb"
    base = {**experiment_values(), "out_dir": str(out), "data_root": str(bench.data_root)}
    base = {k: v for k, v in base.items() if k not in values}  # papermill lets -p win over -y
    case_arguments = papermill_arguments(values, form)
    argv = [PYTHON, "-m", "papermill", "nbs/experiment.ipynb", str(executed), "--no-progress-bar",
            *papermill_arguments(base, "p"), *case_arguments]
    trial.notes.append(f"command: python -m papermill nbs/experiment.ipynb OUT.ipynb <the tiny experiment as -p> "
                       f"{' '.join(case_arguments)}")
    result = run_command(argv, ROOT, 60, trial.folder / "papermill")
    error = None
    if executed.exists():
        outputs = [o for cell in json.loads(executed.read_text())["cells"] for o in cell.get("outputs", [])]
        error = next((o for o in outputs if o.get("output_type") == "error"), None)
    if result.returncode == 0 or error is None:
        trial.problems.append(f"papermill exited {result.returncode} without an error output; stderr ends "
                              f"{result.stderr[-300:]!r}")
    elif error["ename"] != "ConfigError": trial.problems.append(f"the error output is {error['ename']}: {error['evalue'][:300]}")
    else:
        judge_message(error["evalue"].splitlines()[0], case, "papermill", trial)
        if len(error.get("traceback", [])) != 1: trial.problems.append("the ConfigError is shown with a full traceback")
    if executed.exists(): trial.timing = papermill_timing(json.loads(executed.read_text()), result.seconds)
    return result.seconds


def papermill_timing(notebook: dict, wall: float) -> str:
    "Where the seconds of a papermill run went: papermill's own start, the kernel's start, each executed cell."
    executed = notebook["metadata"].get("papermill", {}).get("duration") or 0.0
    cells = [(c["metadata"].get("papermill", {}).get("duration"), "".join(c["source"]).strip().splitlines())
             for c in notebook["cells"] if c["cell_type"] == "code"]
    in_cells = sum(d for d, _ in cells if d)
    parts = [f"papermill's start and exit {wall - executed:.1f} s", f"kernel start {executed - in_cells:.1f} s"]
    parts += [f"cell '{(lines or [''])[0][:30]}' {d:.1f} s" for d, lines in cells if d and d >= 0.5]
    return ", ".join(parts)


def run_bad_sweep(case: BadCase, values: dict, out: Path, trial: Trial, bench: Bench, form: str) -> float:
    fixed = {**experiment_values(), "out_dir": str(out), "data_root": str(bench.data_root)}
    fixed = {k: v for k, v in fixed.items() if k not in values}
    primary = next(iter(values))
    good = experiment_values().get(primary, "random")  # a misspelt name's first value: any valid-looking one
    case_arguments = []
    for name, value in values.items():
        if form == "grid" and name == primary:
            case_arguments += ["--grid", f"{name}={sweep_text(good)},{sweep_text(value)}"]
        else: case_arguments += ["--set", f"{name}={sweep_text(value)}"]
    argv = [SWEEP, "--workers", "1", "--quiet", *[a for k, v in fixed.items() for a in ("--set", f"{k}={sweep_text(v)}")],
            *case_arguments]
    trial.notes.append(f"command: archdal-sweep --workers 1 --quiet <the tiny experiment as --set> "
                       f"{' '.join(repr(a) if ' ' in a else a for a in case_arguments)}")
    result = run_command(argv, trial.folder, 30, trial.folder / "sweep")
    refusal = next((line for line in result.stderr.splitlines() if "nothing was run" in line), None)
    if result.returncode != 2 or refusal is None:
        status = "still running after 30 s (killed)" if result.returncode is None else f"exit status {result.returncode}"
        trial.problems.append(f"archdal-sweep did not refuse it before running: {status}; stderr ends "
                              f"{result.stderr.strip()[-300:]!r}")
    else: judge_message(refusal, case, "sweep", trial)
    if result.survivors: trial.notes.append(f"killed {len(result.survivors)} leftover process(es)")
    return result.seconds


def run_bad_params(bench: Bench, spec: dict, trial: Trial) -> None:
    case = next(c for c in BAD_CASES if c.id == spec["case"])
    folder = bench.folder(trial)
    out = folder / "runs"
    values = case_values(case, folder)
    if spec["channel"] == "api": seconds = run_bad_api(case, values, out, trial, bench)
    elif spec["channel"] == "papermill": seconds = run_bad_papermill(case, values, out, trial, bench, spec["form"])
    else: seconds = run_bad_sweep(case, values, out, trial, bench, spec["form"])
    if not case.accept:
        if seconds >= REFUSE_SECONDS:
            trial.problems.append(f"took {seconds:.1f} s (allowed < {REFUSE_SECONDS:.0f} s; load average "
                                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
                                  + (f": {trial.timing}" if trial.timing else ""))
        created = run_files_created(folder, values.get("out_dir", str(out)))
        if created: trial.problems.append(f"files were created: {created[:4]}")

# ---------------------------------------------------------------- 7. sweep killed

SWEEP_GRIDS = {"strategy": ["random", "entropy", "margin"], "seed": [0, 1, 2]}
SWEEP_ROUNDS = 2


def plan_sweep_kill(seed: int, index: int) -> dict:
    "Kill `delay` seconds after `after_cells` cells are finished (0: after the start), so whatever the machine's speed."
    rng = trial_rng(seed, "sweep-kill", index)
    after = rng.choice([0, 1, 2])
    return {"grid": rng.choice(sorted(SWEEP_GRIDS)), "signal": ["SIGKILL-group", "SIGTERM"][index % 2],
            "after_cells": after, "delay": round(rng.uniform(3.0, 25.0) if after == 0 else rng.uniform(0.0, 10.0), 1)}


def wait_for_kill_moment(proc: subprocess.Popen, cells: list, cell_finished: Callable, after: int, delay: float) -> bool:
    "Wait until `delay` s after `after` cells are finished; False if the sweep exits first."
    since = time.monotonic() if after == 0 else None
    while proc.poll() is None:
        if since is None and sum(cell_finished(c) for c in cells) >= after: since = time.monotonic()
        if since is not None and time.monotonic() - since >= delay: return True
        time.sleep(0.2)
    return False


def sweep_argv(grid: dict, fixed: dict) -> list[str]:
    argv = [SWEEP, "--workers", "2", "--quiet"]
    argv += [a for k, vs in grid.items() for a in ("--grid", f"{k}={','.join(sweep_text(v) for v in vs)}")]
    return argv + [a for k, v in fixed.items() for a in ("--set", f"{k}={sweep_text(v)}")]


def fingerprint(path: Path) -> tuple | None:
    try: stat = path.stat()
    except OSError: return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def stop_sweep(proc: subprocess.Popen, how: str) -> list[str]:
    "Kill the sweep as `how` says; problems if SIGTERM does not stop it within 60 s."
    if how == "SIGKILL-group":
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return []
    proc.send_signal(signal.SIGTERM)
    try: proc.wait(60)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return ["archdal-sweep did not exit within 60 s of SIGTERM"]
    return [f"note: archdal-sweep exited {proc.returncode} after SIGTERM"]


def run_sweep_kill(bench: Bench, spec: dict, trial: Trial) -> None:
    from archdal.sweep import cell_finished, make_cells
    folder = bench.folder(trial)
    out = folder / "runs"
    grid = {spec["grid"]: SWEEP_GRIDS[spec["grid"]]}
    fixed = {k: v for k, v in experiment_values(rounds=SWEEP_ROUNDS).items() if k not in grid}
    fixed.update(out_dir=str(out), data_root=str(bench.data_root))
    cells = make_cells(grid, fixed)
    argv = sweep_argv(grid, fixed)
    code_at_start = code_fingerprint()
    with open(folder / "killed-sweep.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=folder, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        tree = ProcessTree(proc.pid)
        if wait_for_kill_moment(proc, cells, cell_finished, spec["after_cells"], spec["delay"]):
            for line in stop_sweep(proc, spec["signal"]):
                (trial.notes if line.startswith("note: ") else trial.problems).append(line.removeprefix("note: "))
        else: trial.notes.append(f"the sweep finished (exit {proc.returncode}) before its kill")
        time.sleep(3)  # let processes that notice their parent's death go on their own
        tree.stop()
        survivors = tree.kill_alive()
    if survivors: trial.notes.append(f"{len(survivors)} process(es) of the sweep outlived its {spec['signal']} by 3 s "
                                     f"(then killed)")
    before = {c.index: fingerprint(c.notebook) for c in cells if cell_finished(c)}
    trial.notes.append(f"cells finished before the kill: {sorted(before)}")
    result = run_command(argv, folder, 420, folder / "rerun-sweep")
    if result.returncode != 0: trial.problems.append(f"the rerun exited {result.returncode}; stderr ends {result.stderr[-400:]!r}")
    compare = code_fingerprint() == STARTING_CODE == code_at_start
    if not compare: trial.notes.append("archdal's sources changed on disk during the bench: cells not compared with the references")
    for cell in cells:
        trial.problems += [f"cell {cell.index}: {p}" for p in finished_cell_problems(bench, cell, cell_finished, compare)]
        if cell.index in before and fingerprint(cell.notebook) != before[cell.index]:
            trial.problems.append(f"cell {cell.index} had finished before the kill but was rerun")
    left = leftovers(out, (RunDir.TEMP_GLOB, ".*.partial"))
    if left: trial.problems.append(f"left over: {left}")


def finished_cell_problems(bench: Bench, cell, cell_finished: Callable, compare: bool) -> list[str]:
    "A cell must be cell_finished, have its notebook and (with `compare`) the results of its in-process reference."
    if not cell_finished(cell): return ["not cell_finished after the rerun"]
    if not cell.notebook.exists(): return ["no executed notebook"]
    if not compare: return []
    return results_problems(cell.run_dir, bench.reference(**cell.config.result_fields()))

# ---------------------------------------------------------------- categories, report, command line


@dataclass(frozen=True)
class Category:
    name: str
    default_trials: int
    plan: Callable[[int, int], dict]
    run: Callable[[Bench, dict, Trial], None]
    skip_reason: Callable[[Bench], str | None] = lambda bench: None


CATEGORIES = [
    Category("kill-random", 8, plan_kill_random, run_kill_random),
    Category("kill-in-write", 18, plan_kill_in_write, run_kill_in_write),
    Category("damage", 30, plan_damage, run_damage),
    Category("disk-full", 14, plan_disk_full, run_disk_full, lambda bench: mount_problem(bench.workdir)),
    Category("concurrent", 12, plan_concurrent, run_concurrent),
    Category("bad-params", 48, plan_bad_params, run_bad_params),
    Category("sweep-kill", 3, plan_sweep_kill, run_sweep_kill),
]


@dataclass
class CategoryResult:
    category: Category
    trials: list[Trial]
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def failures(self) -> list[Trial]: return [t for t in self.trials if t.problems]


def run_category(bench: Bench, category: Category, indices: list[int], seed: int) -> CategoryResult:
    reason = category.skip_reason(bench)
    if reason: return CategoryResult(category, [], skipped=reason)
    started, trials = time.monotonic(), []
    for index in indices:
        trial = Trial(category.name, index, category.plan(seed, index))
        began = time.monotonic()
        try: category.run(bench, trial.spec, trial)
        except Exception as e:  # a fault of the bench or of the library outside the judged steps
            trial.problems.append(f"the trial itself raised {type(e).__name__}: {e}")
        trial.seconds = time.monotonic() - began
        print(f"  {category.name} {index:3d} {'FAIL' if trial.problems else 'pass'} {trial.seconds:5.1f} s "
              f"{json.dumps(trial.spec)}", flush=True)
        trials.append(trial)
    return CategoryResult(category, trials, seconds=time.monotonic() - started)


def table(results: list[CategoryResult]) -> str:
    lines = ["| category | trials | failures |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.category.name} | {len(r.trials)} | " + (f"skipped: {r.skipped}" if r.skipped else
                                                                    f"{len(r.failures)}") + " |")
    return "\n".join(lines)


def failure_details(results: list[CategoryResult], seed: int) -> str:
    blocks = []
    for result in results:
        for trial in result.failures:
            lines = [f"### {trial.category} trial {trial.index}", "", f"- spec: `{json.dumps(trial.spec)}`"]
            lines += [f"- problem: {p}" for p in trial.problems] + [f"- note: {n}" for n in trial.notes]
            lines += [f"- folder: `{trial.folder}`",
                      f"- replay: `.venv/bin/python bench/faults.py --seed {seed} --categories {trial.category} "
                      f"--only {trial.index} --keep`", ""]
            blocks.append("\n".join(lines))
    return "\n".join(blocks) or "None.\n"


def notes_summary(results: list[CategoryResult], workdir: Path) -> str:
    "How often each kind of note came up, per category (what the trials covered)."
    lines = []
    for result in results:
        kinds = Counter(re.sub(r"\d[\d.,]*", "N", n.replace(str(workdir), "<scratch>"))[:140]
                        for t in result.trials for n in t.notes
                        if not n.startswith(("command: ", "damage: ", "tmpfs ")))
        if kinds: lines.append(f"- {result.category.name}: " + "; ".join(f"{k} (x{c})" for k, c in kinds.most_common(12)))
    return "\n".join(lines) or "- none"


def machine() -> str:
    def git(*args):
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"
    dirty = " (uncommitted changes in the working tree)" if git("status", "--porcelain", "--untracked-files=no") else ""
    import archdal
    return (f"{platform.node()}, {platform.platform()}, {len(os.sched_getaffinity(0))} usable CPU core(s), "
            f"Python {platform.python_version()}, torch {torch.__version__}, archdal {archdal.__version__} at "
            f"{git('rev-parse', '--short', 'HEAD')}{dirty}")


def report(results: list[CategoryResult], args, started: datetime.datetime, wall: float, workdir: Path) -> str:
    unset = unset_fields()
    return "\n".join([
        "# Fault injection", "",
        f"Run on {started:%Y-%m-%d %H:%M %Z} ({wall / 60:.1f} min) on {machine()}.", "",
        f"Command: `{' '.join(['.venv/bin/python bench/faults.py', *sys.argv[1:]])}`; seed {args.seed}. What PASS means per "
        f"category: the docstring of `bench/faults.py`.", "",
        f"Tiny experiment: `{json.dumps(experiment_values())}`" + (f"; left at defaults: {unset}" if unset else ""), "",
        *([f"archdal's sources changed on disk during the run ({STARTING_CODE} -> {code_fingerprint()}): papermill and "
           f"archdal-sweep ran newer code than the in-process references.", ""] if code_fingerprint() != STARTING_CODE else []),
        table(results), "", "## Failures", "", failure_details(results, args.seed), "## What the trials covered", "",
        notes_summary(results, workdir), ""])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [c.name for c in CATEGORIES]
    parser = argparse.ArgumentParser(description="Fault injection for archdal (see the module docstring).")
    parser.add_argument("--seed", type=int, default=0, help="draws every trial (default 0)")
    parser.add_argument("--trials", type=int, help="trials per category (default: each category's own)")
    parser.add_argument("--categories", default=",".join(names),
                        help=f"comma-separated names or numbers 1-{len(names)} (default: all): {', '.join(names)}")
    parser.add_argument("--only", help="comma-separated trial indices to run (replay) in each chosen category")
    parser.add_argument("--out", default=str(ROOT / "reports" / "faults.md"), help="the Markdown report")
    parser.add_argument("--workdir", help="scratch folder (default: a new one in the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (kept anyway after failures or with --workdir)")
    args = parser.parse_args(argv)
    chosen = []
    for word in filter(None, (w.strip() for w in args.categories.split(","))):
        if word.isdigit() and 1 <= int(word) <= len(names): word = names[int(word) - 1]
        if word not in names: parser.error(f"--categories {word!r}: allowed {', '.join(names)} or 1-{len(names)}")
        chosen.append(next(c for c in CATEGORIES if c.name == word))
    args.chosen = chosen
    if args.workdir and Path(args.workdir).exists() and any(Path(args.workdir).iterdir()):
        parser.error(f"--workdir {args.workdir}: allowed a folder that does not exist yet or is empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, clock = datetime.datetime.now().astimezone(), time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="archdal-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(workdir)
    print(f"scratch folder {workdir}; reference runs first", flush=True)
    bench.warm_up()
    for key in CONFIGS: bench.reference(key)
    results = []
    for category in args.chosen:
        indices = ([int(i) for i in args.only.split(",")] if args.only
                   else list(range(args.trials if args.trials is not None else category.default_trials)))
        print(f"{category.name}: {len(indices)} trial(s)", flush=True)
        results.append(run_category(bench, category, indices, args.seed))
    text = report(results, args, started, time.monotonic() - clock, workdir)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print("\n" + table(results) + "\n\n" + failure_details(results, args.seed))
    failed = any(r.failures for r in results)
    if args.keep or failed or args.workdir: print(f"scratch folder kept: {workdir}")
    else: shutil.rmtree(workdir, ignore_errors=True)
    print(f"report: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
