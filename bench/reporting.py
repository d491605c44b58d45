"""Helpers the benchmark scripts share: Markdown tables, report files, and peak-memory timing."""
from __future__ import annotations

import gc
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd


def markdown(df: pd.DataFrame, index: bool = True) -> str:
    "`df` as a Markdown table."
    df = df.reset_index() if index else df
    rows = [[str(v) for v in row] for row in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns),
                      *["| " + " | ".join(r) + " |" for r in rows]])


def write_report(path: Path, parts: list[str]) -> None:
    "Write the report's `parts` (Markdown blocks) to `path`, and print all but the last (the per-run table)."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")
    print("\n\n".join(parts[:-1]))
    print(f"wrote {path}")


def _section_marks(name: str) -> tuple[str, str]:
    return f"<!-- {name}: written by bench/{name}.py -->", f"<!-- /{name} -->"


def sections_of(text: str) -> list[str]:
    "The marked sections (`<!-- NAME: written by bench/NAME.py -->` … `<!-- /NAME -->`) in `text`, marks included."
    return [m.group(0) for m in re.finditer(r"<!-- (\w+): written by bench/\1\.py -->.*?<!-- /\1 -->", text, re.S)]


def write_keeping_sections(path: Path, text: str) -> None:
    "Write `text` to `path`, keeping the marked sections other scripts wrote into the old file (appended)."
    old = path.read_text() if path.exists() else ""
    kept = [section for section in sections_of(old) if section not in text]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "".join(f"\n\n{section}" for section in kept) + "\n")


def write_section(path: Path, name: str, text: str) -> None:
    "Replace (or append) the section that bench/`name`.py owns in the report at `path`; the rest stays as it was."
    start, end = _section_marks(name)
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S) if start in old \
        else f"{old.rstrip()}\n\n{block}\n"
    path.write_text(new if new.endswith("\n") else new + "\n")


def reexec_with_fixed_malloc(threads: int) -> None:
    """Re-execute this script (once) with `threads` BLAS/OpenMP threads and glibc's mmap and trim thresholds fixed
    at 4 MiB, so a freed buffer larger than that goes back to the system at once and `measure`'s peak of one call
    is not hidden by an earlier call's freed memory. Call it before numpy and torch are imported."""
    if os.environ.get("_ARCHDAL_BENCH_CHILD") == "1": return
    n = str(threads)
    env = dict(os.environ, _ARCHDAL_BENCH_CHILD="1", OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               MALLOC_MMAP_THRESHOLD_="4194304", MALLOC_TRIM_THRESHOLD_="4194304")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _status_kb(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def measure(fn, threads: int, repeat_below: float = 2.0, repeats: int = 3):
    """(seconds, peak extra MB, result) of `fn()`: the minimum time over `repeats` runs if the first takes less
    than `repeat_below` seconds, else one run; the largest peak of the resident set over the runs (VmHWM, reset
    through /proc/self/clear_refs before each, minus the resident size before it)."""
    import torch
    times, peak, result = [], 0.0, None
    for _ in range(repeats):
        result = None
        torch.set_num_threads(threads)
        gc.collect()
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        peak = max(peak, (_status_kb("VmHWM") - before) / 1024)
        if times[0] >= repeat_below: break
    return min(times), peak, result
