"""Text active learning on trec6: which strategy wins, and does it depend on the architecture?

The reference paper's text protocol (BERT-family encoders fine-tuned with AdamW at 5e-5, weight decay 0.01, a linear
warm-up over 5 % of the steps, batches of 20, a cold start every cycle, a random subset of the pool scored per query)
is archdal's text default; this script runs it, scaled to two shared CPU cores, on `trec6` (4,381 TREC questions
less a 10 % validation split, 6 classes; 1,000 fixed test questions) for three architectures:

- `minilm`: the packaged all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7 M parameters), fine-tuned (lr 2e-4);
- `minilm` with `freeze: True`: the same encoder frozen, a linear head trained on its mean-pooled features (lr 3e-3,
  at least 100 steps);
- `textcnn`: Kim's TextCNN from random weights on the same WordPiece ids (lr 3e-3, 20 epochs of at least 100 steps);

x random, entropy, badge (gradient embeddings of the head) and coreset (the last layer's [CLS] vector) x `--seeds`.
The scale: `--init` labels per class (4: 24 labels), `--budget` (24) per round for `--rounds` (3) rounds, up to
96 labels, `--pool-subset` (500) pool questions scored per query; every other field at its text default.
Runs go to `--out` (finished runs are read back, not redone), then the table goes to reports/text.md and the report
notebook renders the same runs into reports/text_report.ipynb and reports/text_report/.

    python bench/text.py                     # 36 runs, about 1 CPU-hour (32 min on 2 quiet cores, 2 processes of one thread)
    python bench/text.py --from-finished     # tabulate what --out holds, and render the report
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from archdal.analysis import area_under_curve, load_runs
from reporting import markdown, write_report  # bench/ is on the path when a script here runs

REPO = Path(__file__).resolve().parents[1]
ARCHS = {"minilm": {}, "minilm-freeze": {"freeze": True}, "textcnn": {}}
FROZEN = dict(lr=3e-3, min_steps=100)  # a frozen encoder trains a linear head: a probe's learning rate and steps
STRATEGIES = ["random", "entropy", "badge", "coreset"]
CPU_FILE = "cpu_seconds.csv"  # in --out: run directory (relative), CPU seconds of the process that ran it (one thread)


def one_run(arch: str, strategy: str, seed: int, args) -> tuple[str, float, float]:
    "Run (or read back) one cell; its wall and CPU seconds (a run that ran, not one read back, adds a line to CPU_FILE)."
    from archdal.loop import ExperimentConfig, run_experiment
    start, cpu_start = time.perf_counter(), time.process_time()
    result = run_experiment(ExperimentConfig(dataset="trec6", arch=arch.split("-")[0], arch_kwargs=ARCHS[arch], strategy=strategy,
                                    n_init_per_class=args.init, budget=args.budget, rounds=args.rounds,
                                    pool_subset=args.pool_subset, seed=seed, threads=1, progress=False,
                                    **(FROZEN if ARCHS[arch].get("freeze") else {}),
                                    out_dir=str(args.out)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if result.history.fit_seconds.sum() <= wall:  # it ran here, not read back from an earlier invocation
        with open(args.out / CPU_FILE, "a") as f: f.write(f"{Path(result.run_dir).resolve().relative_to(args.out.resolve())},{cpu:.1f}\n")
    return f"{arch} {strategy} seed {seed}", wall, cpu


def run(args) -> None:
    "Every seed x arch x strategy, seed by seed (a benchmark cut short still compares every cell), on `--workers` processes."
    cells = [(arch, strategy, seed) for seed in args.seeds for arch in ARCHS for strategy in STRATEGIES]
    with ProcessPoolExecutor(args.workers) as pool:
        for name, wall, cpu in pool.map(one_run, *zip(*cells), [args] * len(cells)):
            print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)


def table(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    "(per-run final accuracy, macro-F1, AUC, wall and CPU seconds; the mean ± sd table by arch x strategy)."
    runs = load_runs(out)
    cpu = pd.read_csv(out / CPU_FILE, names=["run", "cpu"]) if (out / CPU_FILE).exists() else pd.DataFrame(columns=["run", "cpu"])
    cpu_of = dict(zip(cpu.run, cpu.cpu))  # the last line of a run wins
    runs = runs[runs.finished]
    last = runs.sort_values("n_labelled").groupby("run_dir").tail(1).set_index("run_dir")
    seconds = runs.assign(total=runs.fit_seconds + runs.query_seconds.fillna(0)).groupby("run_dir").total.sum()
    per_run = last[["arch", "strategy", "seed", "n_labelled", "test_accuracy", "test_macro_f1"]].assign(seconds=seconds)
    per_run["cpu_seconds"] = [cpu_of.get(str(Path(d).resolve().relative_to(out.resolve())), float("nan")) for d in per_run.index]
    auc = area_under_curve(runs).set_index(["arch", "strategy", "seed"])["auc"]
    per_run["auc"] = [auc[key] for key in zip(per_run.arch, per_run.strategy, per_run.seed)]
    fmt = lambda col, digits: per_run.groupby(["arch", "strategy"])[col].agg(
        lambda v: f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}")
    summary = pd.DataFrame({"seeds": per_run.groupby(["arch", "strategy"]).seed.nunique(),
                            "final accuracy": fmt("test_accuracy", 3), "final macro-F1": fmt("test_macro_f1", 3),
                            "AUC (normalised)": fmt("auc", 3), "wall s per run": fmt("seconds", 0),
                            "CPU s per run": fmt("cpu_seconds", 0)})
    return per_run.reset_index(drop=True), summary


def ranking(per_run: pd.DataFrame) -> pd.DataFrame:
    "Strategies ranked by mean AUC within each architecture (1 = best)."
    mean = per_run.groupby(["arch", "strategy"]).auc.mean().unstack("strategy")
    return mean.rank(axis=1, ascending=False).astype(int)


def render_report(out: Path) -> None:
    "The report notebook on the same runs: reports/text_report.ipynb and its charts and tables in reports/text_report/."
    import papermill
    papermill.execute_notebook(str(REPO / "nbs" / "report.ipynb"), str(REPO / "reports" / "text_report.ipynb"),
                               parameters={"runs_dir": str(out), "out_dir": str(REPO / "reports" / "text_report")},
                               cwd=str(REPO), progress_bar=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--init", type=int, default=4)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool-subset", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "runs" / "text_bench")
    parser.add_argument("--report", type=Path, default=REPO / "reports" / "text.md")
    parser.add_argument("--from-finished", action="store_true", help="only tabulate and render what --out holds")
    args = parser.parse_args()
    if not args.from_finished: run(args)
    per_run, summary = table(args.out)
    ranks = ranking(per_run)
    render_report(args.out)
    write_report(args.report, [
        "# Text active learning on trec6: architectures x strategies",
        f"`python bench/text.py` ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared; one "
        f"thread per run). trec6: 4,381 TREC questions (less 10 % for validation) and 1,000 fixed test questions, 6 "
        f"classes. {args.init} labels per class initially, +{args.budget} per round for {args.rounds} rounds (up to "
        f"{6 * args.init + args.budget * args.rounds} labels), {args.pool_subset} pool questions scored per query; the "
        f"text protocol otherwise (AdamW 5e-5, weight decay 0.01, linear warm-up over 5 % of the steps then linear "
        f"decay, batch 20, 5 epochs of at least 50 steps, cold start each round; MiniLM at lr 2e-4 and mean-pooled; "
        f"frozen MiniLM's linear head at lr 3e-3 for at least 100 steps; the TextCNN from scratch at lr 3e-3, "
        f"20 epochs of at least 100 steps). Mean ± sd over seeds; AUC is the area under test accuracy over the "
        f"labelled-set sizes divided by their range; wall seconds are fitting plus querying per run (from its history), CPU "
        f"seconds the whole run's, one thread, with {args.workers} runs side by side on the machine's cores.",
        markdown(summary),
        "Rank of each strategy by mean AUC within each architecture (1 = best):",
        markdown(ranks),
        "The report notebook on the same runs: [text_report.ipynb](text_report.ipynb) (charts and tables in "
        "[text_report/](text_report/)).",
        "Per run:\n\n" + markdown(per_run.round(4), index=False)])


if __name__ == "__main__":
    main()
