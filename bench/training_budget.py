"""Round-0 test accuracy under the old (epoch-counted) and the new (step-counted) training budget of `archdal.train.fit`.

Usage: python bench/training_budget.py [--datasets digits mnist5k] [--archs cnn mlp resnet18 vgg11] [--seeds 0 1 2]
                                       [--configs old new] [--larger] [--experiment | --experiment-only] [--report reports/training_budget.md]

Each run is the round-0 path of the loop: `split_training_set` (2 labels per class, 10% validation) under the
loop's split seed, `make_model(name, in_shape, n_classes, dropout=0.25)` under its init seed, `fit` under its
fit seed, `evaluate` on the test set. "old" is the previous default experiment (60 epochs, patience 15 epochs,
constant lr 0.01) through `fit`'s legacy settings, which reproduce the previous implementation step for step;
"new" is the recommended budget. `--larger` adds larger labelled sets (cnn: 500 on mnist5k, 360 on digits);
`--experiment` runs the default experiment (digits, cnn, BADGE, 4 per class + 8 rounds x 40) under each budget (seed 0);
`--experiment-only` runs just that, for each of `--seeds`, and rewrites only that section of the report.
CPU seconds are `time.process_time()` of the process running single-threaded; the report records the machine.
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

from archdal.data import load_dataset, split_training_set
from archdal.models import make_model
from archdal.train import derive_seed, evaluate, fit, seeded

COMMON = dict(optimizer="sgd", weight_decay=5e-4, batch_size=32)
CONFIGS = {
    "old": dict(epochs=60, patience=15, lr=0.01, min_steps=0, period_steps=1, warmup=0, schedule="constant", **COMMON),
    "new": dict(epochs=60, patience=20, lr=0.03, min_steps=500, period_steps=25, warmup=1, schedule="cosine", **COMMON),
}
LARGER = [("mnist5k", "cnn", 50), ("digits", "cnn", 36)]  # 500 and 360 labels
EXPERIMENT_HEADING = "## Default experiment (digits, cnn, BADGE, 40 → 360 labels)"
CHANCE_MARGIN = 0.1  # a run "at chance" scores below 1/n_classes + this


def round0(data, arch: str, seed: int, per_class: int, options: dict) -> dict:
    "Fit one round-0 model as the loop would and score it on the test set."
    cpu = torch.device("cpu")
    split = split_training_set(data.train_y.numpy(), per_class, 0.1, None, np.random.default_rng(derive_seed(seed, 0, "split")))
    x, y = data.train_x[split.labelled], data.train_y[split.labelled]
    val_x, val_y = data.train_x[split.validation], data.train_y[split.validation]
    with seeded(derive_seed(seed, 0, "init"), cpu): model = make_model(arch, data.in_shape, data.n_classes, dropout=0.25)
    start = time.process_time()
    result = fit(model, x, y, val_x, val_y, seed=derive_seed(seed, 0, "fit"), device=cpu, **options)
    fit_cpu = time.process_time() - start
    test = evaluate(model, data.test_x, data.test_y, device=cpu)["accuracy"]
    return {"dataset": data.name, "arch": arch, "n_labelled": len(x), "seed": seed, "test_accuracy": test,
            "val_accuracy": result.best_val_accuracy, "steps": result.steps, "planned_steps": result.planned_steps,
            "best_step": result.best_step, "epochs_run": result.epochs_run, "fit_cpu_s": fit_cpu}


def default_experiment(options: dict, seed: int = 0) -> dict:
    "The default experiment (digits, cnn, BADGE, 4 per class + 8 rounds x 40 labels) with the budget `options`."
    import archdal.archopt as archopt
    from archdal.loop import ExperimentConfig, run_experiment
    config_fields = ("epochs", "patience", "lr", "optimizer", "weight_decay", "batch_size")
    extra = {k: v for k, v in options.items() if k not in config_fields}  # not experiment parameters (yet)
    calls = []
    def budgeted_fit(*a, **kw):
        calls.append(1)
        return fit(*a, **{**kw, **extra})
    original, archopt.fit = archopt.fit, budgeted_fit  # the loop fits every round through archopt.fit_new_model
    try:
        with tempfile.TemporaryDirectory() as out:
            config = ExperimentConfig(seed=seed, out_dir=out, progress=False, device="cpu",
                                      **{k: options[k] for k in config_fields})
            start, wall = time.process_time(), time.perf_counter()
            history = run_experiment(config).history
    finally: archopt.fit = original
    assert len(calls) == len(history), "the loop did not fit through archdal.archopt.fit: the budget was not applied"
    return {"seed": seed, "final_n_labelled": int(history.n_labelled.iloc[-1]),
            "final_test_accuracy": float(history.test_accuracy.iloc[-1]), "cpu_s": time.process_time() - start,
            "wall_s": time.perf_counter() - wall, "fit_s": float(history.fit_seconds.sum())}


def summarise(rows: list[dict]) -> list[dict]:
    "Mean, minimum and CPU seconds per (dataset, arch, n_labelled, config)."
    groups = {}
    for r in rows: groups.setdefault((r["dataset"], r["arch"], r["n_labelled"], r["config"]), []).append(r)
    out = []
    for (ds, arch, n, cfg), rs in groups.items():
        acc = [r["test_accuracy"] for r in rs]
        out.append({"dataset": ds, "arch": arch, "n_labelled": n, "config": cfg, "runs": len(rs),
                    "mean": statistics.mean(acc), "min": min(acc), "max": max(acc),
                    "steps": statistics.mean(r["steps"] for r in rs), "fit_cpu_s": statistics.mean(r["fit_cpu_s"] for r in rs),
                    "at_chance": sum(r["test_accuracy"] < 0.1 + CHANCE_MARGIN for r in rs)})
    return out


def comparison_table(summary: list[dict]) -> str:
    "Markdown: one line per (dataset, arch, n_labelled), old and new side by side."
    by_key = {}
    for s in summary: by_key.setdefault((s["dataset"], s["arch"], s["n_labelled"]), {})[s["config"]] = s
    names = [c for c in CONFIGS if any(c in cfgs for cfgs in by_key.values())]
    head = ["dataset", "arch", "labels"] + [f"{c} {col}" for c in names for col in ("mean (min–max)", "steps", "CPU s")]
    lines = ["| " + " | ".join(head + ["at chance " + "/".join(names)]) + " |", "|---" * (len(head) + 1) + "|"]
    for (ds, arch, n), cfgs in by_key.items():
        cells = [ds, arch, str(n)]
        for c in names:
            s = cfgs.get(c)
            cells += ([f"{s['mean']:.3f} ({s['min']:.3f}–{s['max']:.3f})", f"{s['steps']:.0f}", f"{s['fit_cpu_s']:.1f}"]
                      if s else ["–"] * 3)
        cells.append("/".join(str(cfgs[c]["at_chance"]) if c in cfgs else "–" for c in names))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or "unknown"
    try: cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration): pass
    return [("CPU", cpu), ("cores", f"{os.cpu_count()} (benchmark threads: {torch.get_num_threads()})"),
            ("load average (1 min) at the end", f"{os.getloadavg()[0]:.2f} (above the thread count: other work shared the cores)"),
            ("Python", platform.python_version()), ("torch", torch.__version__), ("numpy", np.__version__)]


def experiment_section(experiments: list[dict]) -> list[str]:
    "Markdown lines of the default-experiment table."
    lines = [EXPERIMENT_HEADING, "", "CPU seconds of the whole run (fit, query, evaluation, writing the run directory), 1 thread.", "",
             "| config | seed | final labels | final test acc | CPU s | wall s | fit s |", "|---|---|---|---|---|---|---|"]
    for e in experiments:
        lines.append(f"| {e['config']} | {e['seed']} | – | {e['error']} | | | |" if "error" in e else
                     f"| {e['config']} | {e['seed']} | {e['final_n_labelled']} | {e['final_test_accuracy']:.4f} | "
                     f"{e['cpu_s']:.1f} | {e['wall_s']:.1f} | {e['fit_s']:.1f} |")
    return lines


def update_experiment_section(path: Path, experiments: list[dict]):
    "Replace (or append) the default-experiment section of an existing report, leaving the round-0 tables as they are."
    text = path.read_text() if path.exists() else "# Training budget\n"
    head = text.split(EXPERIMENT_HEADING)[0].rstrip("\n")
    note = f"(Section rewritten by `python bench/training_budget.py {' '.join(sys.argv[1:])}` on {date.today().isoformat()}.)"
    path.write_text(head + "\n\n" + "\n".join(experiment_section(experiments)[:2] + [note, ""] + experiment_section(experiments)[2:]) + "\n")


def write_report(path: Path, rows: list[dict], experiments: list[dict], args, seconds: float):
    lines = ["# Training budget", "",
             f"Written by `python bench/training_budget.py {' '.join(sys.argv[1:])}` on {date.today().isoformat()} "
             f"in {seconds / 60:.1f} min; see the script's docstring for what each run is. Regenerate it on demand; it is not part of CI.", "",
             "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in machine()], "",
             "Budgets: " + "; ".join(f"**{name}** `{opts}`" for name, opts in CONFIGS.items() if name in args.configs), "",
             "## Round-0 test accuracy", "",
             f"Mean over seeds {args.seeds} (min–max); steps are optimiser steps taken, CPU s the mean CPU seconds of `fit` "
             f"(1 thread). A run is at chance below {0.1 + CHANCE_MARGIN:.1f}.", "",
             comparison_table(summarise(rows)), "", "## Every run", "",
             "| config | dataset | arch | labels | seed | test acc | val acc | steps | planned | best step | epochs | fit CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['dataset']} | {r['arch']} | {r['n_labelled']} | {r['seed']} | {r['test_accuracy']:.4f} | "
              f"{r['val_accuracy']:.4f} | {r['steps']} | {r['planned_steps']} | {r['best_step']} | {r['epochs_run']} | {r['fit_cpu_s']:.1f} |"
              for r in rows]
    if experiments: lines += ["", *experiment_section(experiments)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    parser.add_argument("--archs", nargs="+", default=["cnn", "mlp", "resnet18", "vgg11"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--larger", action="store_true", help="also the larger labelled sets of LARGER")
    parser.add_argument("--experiment", action="store_true", help="also the default experiment under each config")
    parser.add_argument("--report", default="reports/training_budget.md", help="'' to write no report")
    parser.add_argument("--experiment-only", action="store_true",
                        help="run only the default experiment (each of --seeds) and rewrite that section of --report")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    jobs = [(ds, arch, args.per_class) for ds in args.datasets for arch in args.archs]
    if args.larger: jobs += LARGER
    if args.experiment_only: jobs, args.experiment = [], True
    data, rows, experiments = {}, [], []
    for ds, arch, per_class in jobs:
        if ds not in data: data[ds] = load_dataset(ds)
        for config in args.configs:
            for seed in args.seeds:
                rows.append({"config": config, **round0(data[ds], arch, seed, per_class, CONFIGS[config])})
                r = rows[-1]
                print(f"{config:4} {ds:8} {arch:9} n={r['n_labelled']:4} seed={seed} test={r['test_accuracy']:.4f} "
                      f"steps={r['steps']:5} best_step={r['best_step']:5} cpu={r['fit_cpu_s']:.1f}s", flush=True)
    if args.experiment:
        for config, seed in [(c, s) for c in args.configs for s in (args.seeds if args.experiment_only else [0])]:
            try: experiments.append({"config": config, **default_experiment(CONFIGS[config], seed)})
            except Exception as e:  # the loop is not this benchmark's subject: report, keep the round-0 table
                experiments.append({"config": config, "seed": seed, "error": f"{type(e).__name__}: {e}"})
            print(experiments[-1], flush=True)
    if args.experiment_only:
        if args.report: update_experiment_section(Path(args.report), experiments)
        return
    print(comparison_table(summarise(rows)))
    if args.report: write_report(Path(args.report), rows, experiments, args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
