"""bench/gpu.py in its reduced mode on a CPU: fp32 and all compute options together (bf16, channels_last, compile) run
against the hand-written loops, fp32 fit ends with the bare loop's weights bit for bit, and one round of each strategy runs through the loop.
Without a GPU, the full mode refuses to start and says why (its figures need CUDA)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *args], env=ENV, capture_output=True, text=True, timeout=600)


def test_reduced_mode_runs_every_option_and_fp32_matches_the_bare_loop(tmp_path):
    out = tmp_path / "gpu.md"
    done = run_bench("--reduced", "--repeats", "1", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert "bit-identical weights: yes" in report
    for option in ("| fp32 |", "| bf16 + channels_last + compile |"):
        assert option in report, option
    for strategy in ("| badge | fp32 |", "| badge | bf16 + channels_last |", "| coreset | fp32 |"):
        assert strategy in report, strategy


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_full_mode_without_a_gpu_refuses_and_says_why(tmp_path):
    done = run_bench("--out", str(tmp_path / "gpu.md"))
    assert done.returncode == 2 and "no CUDA device here" in done.stderr and "--reduced" in done.stderr
    assert not (tmp_path / "gpu.md").exists()
