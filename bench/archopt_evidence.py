"""Do the architecture optimisers optimise? Evidence for depth dropout (Kc, Li & Gilany, NeurIPS 2021) and
BBDropout (Lee et al. 2019) inside the active-learning loop, on the 5,000 real MNIST digits (`mnist5k`).

Depth dropout, in the loop: random acquisition (so the architecture is the only thing that changes), 2 labels per
class initially, `--budget` labels per round, `--rounds` rounds, `--seeds` seeds, `fit`'s default step budget;
`depth_dropout` (CPU preset) against fixed `cnn` of depth 1, 2 and 3.

BBDropout, one round at each of `--bb-labels` (with random acquisition a round of the loop is a random labelled set
of that size): `bbdropout` (defaults; its KL divided by the pool's 3,600 images, as in the loop) against the same
network without gates (`cnn` width 64, embed_dim 256, no body dropout: the skeleton bbdropout gates), both through
`train_round` on the same labelled set and 400 validation images. Targets (issue 12):

- depth dropout: inferred depth grows with the labelled set (Spearman rho > 0 across rounds in every seed), and its
  test accuracy is within 2 points of the best fixed `cnn` depth from the third round on;
- bbdropout: >= 30 % of units pruned with <= 1 point accuracy loss against the unpruned network from 200 labels on,
  with the pruned network's parameter count and inference time.

    python bench/archopt_evidence.py                    # 3 seeds, 20 -> 300 labels; writes reports/archopt_evidence.md
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from reporting import markdown, write_report  # bench/ is on the path when a script here runs

ARCHS = {"depth_dropout": ("depth_dropout", {}), "cnn depth 1": ("cnn", {"depth": 1}),
         "cnn depth 2": ("cnn", {"depth": 2}), "cnn depth 3": ("cnn", {"depth": 3})}
UNPRUNED = {"width": 64, "embed_dim": 256, "body_dropout": 0.0}  # bbdropout's network without its gates


def one_run(job) -> list[dict]:
    "Run (or resume) one experiment and return its history rows, labelled with the run's name and seed."
    name, seed, args = job
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)
    from archdal.loop import ExperimentConfig, run_experiment
    arch, kwargs = ARCHS[name]
    config = ExperimentConfig(dataset="mnist5k", arch=arch, arch_kwargs=kwargs, strategy="random", seed=seed,
                              n_init_per_class=2, budget=args.budget, rounds=args.rounds, out_dir=str(args.out),
                              progress=False)
    history = run_experiment(config).history
    return [{"name": name, "seed": seed, **{k: v for k, v in row.items() if k != "arch_summary"},
             **{k: row["arch_summary"].get(k) for k in ("inferred_depth", "expected_depth", "kept_fraction",
                                                        "kept_width", "n_params_full", "truncation_binds")}}
            for row in history.to_dict("records")]


def spearman(a, b) -> float:
    "Spearman's rank correlation (average ranks for ties; NaN when one side is constant)."
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0: return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def depth_table(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    "Per round: mean accuracy of depth dropout and of each fixed depth, the gap to the best; per seed: depths and rho."
    acc = rows.pivot_table(index="n_labelled", columns="name", values="test_accuracy", aggfunc="mean")
    fixed = [c for c in acc.columns if c.startswith("cnn depth")]
    per_round = acc[["depth_dropout", *fixed]].round(3)
    per_round["best fixed"] = acc[fixed].idxmax(axis=1)
    per_round["gap to best (points)"] = ((acc[fixed].max(axis=1) - acc["depth_dropout"]) * 100).round(1)
    depth = rows[rows.name == "depth_dropout"]
    per_round["inferred depth (mean)"] = depth.groupby("n_labelled").inferred_depth.mean().round(2)
    per_seed = pd.DataFrame([{"seed": seed, "inferred depth by round": " ".join(map(str, g.inferred_depth)),
                              "expected depth by round": " ".join(map(str, g.expected_depth)),
                              "Spearman rho (labels, inferred depth)": round(spearman(g.n_labelled, g.inferred_depth), 3),
                              "truncation binds": bool(g.truncation_binds.any())}
                             for seed, g in depth.groupby("seed")])
    return per_round, per_seed


def pruning_run(job) -> list[dict]:
    "bbdropout and its unpruned network fitted on one random labelled set; inference timed on the pruned one."
    seed, n_labelled, timed = job
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)
    from archdal.archopt import RoundContext, train_round
    from archdal.data import load_dataset
    from archdal.train import derive_seed, evaluate
    data = load_dataset("mnist5k")
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))
    lab, val = order[:n_labelled], order[-400:]
    ctx = RoundContext(data.train_x[lab], data.train_y[lab], data.train_x[val], data.train_y[val], data.in_shape,
                       data.n_classes, 0, 0.25, dict(device="cpu", batch_size=32),
                       lambda purpose, *keys: derive_seed(seed, 0, purpose, *keys), pool_size=len(data.train_y) - 400)
    rows = []
    for name, arch, kwargs in (("bbdropout", "bbdropout", {}), ("unpruned", "cnn", UNPRUNED)):
        start = time.process_time()
        fitted = train_round(arch, ctx, kwargs)
        rows.append({"network": name, "seed": seed, "labels": n_labelled,
                     "test_accuracy": evaluate(fitted.model, data.test_x, data.test_y, device="cpu")["accuracy"],
                     "n_params": fitted.summary["n_params"], "fit_cpu_s": round(time.process_time() - start, 1),
                     **{k: fitted.summary.get(k) for k in ("kept_fraction", "expected_fraction", "kept_width",
                                                           "expected_width")}})
        if name == "bbdropout" and timed: rows[-1]["inference"] = inference_times(fitted.model, data)
    return rows


def pruning_table(rows: pd.DataFrame) -> pd.DataFrame:
    "Per labelled-set size: units pruned (by the threshold and in expectation), accuracies, loss, parameters."
    bb = rows[rows.network == "bbdropout"].groupby("labels")
    dense = rows[rows.network == "unpruned"].groupby("labels")
    return pd.DataFrame({"units pruned (threshold)": (1 - bb.kept_fraction.mean()).round(3),
                         "units pruned (expected width)": (1 - bb.expected_fraction.mean()).round(3),
                         "bbdropout accuracy": bb.test_accuracy.mean().round(4),
                         "unpruned accuracy": dense.test_accuracy.mean().round(4),
                         "loss (points)": ((dense.test_accuracy.mean() - bb.test_accuracy.mean()) * 100).round(1),
                         "loss per seed (points)": [" ".join(f"{100 * (d - b):.1f}" for b, d in zip(
                             bb.get_group(n).sort_values("seed").test_accuracy,
                             dense.get_group(n).sort_values("seed").test_accuracy)) for n in bb.groups],
                         "pruned parameters (mean)": bb.n_params.mean().round(0),
                         "unpruned parameters": dense.n_params.mean().round(0),
                         "bbdropout fit CPU s": bb.fit_cpu_s.mean().round(0),
                         "unpruned fit CPU s": dense.fit_cpu_s.mean().round(0)})


def inference_times(model, data, repeats: int = 5) -> dict:
    "CPU milliseconds per 1,000 test images of a fitted bbdropout: pruned, and with every unit kept (threshold 0)."
    import torch
    from archdal.train import evaluate
    model.eval()
    x = data.test_x[:1000]

    def cpu_ms() -> float:
        with torch.no_grad():
            model(x)
            start = time.process_time()
            for _ in range(repeats): model(x)
            return (time.process_time() - start) / repeats * 1000

    pruned_ms, summary = cpu_ms(), model.summary()
    thresholds = [g.threshold for g in model.body.gates()]
    for g in model.body.gates(): g.threshold = 0.0   # keep every unit: the same code path at full width
    full_ms, full = cpu_ms(), model.summary()
    full_accuracy = evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"]
    for g, t in zip(model.body.gates(), thresholds): g.threshold = t
    return {"kept width": summary["kept_width"], "full width": summary["full_width"],
            "pruned parameters": summary["n_params"], "full parameters": full["n_params"],
            "pruned CPU ms / 1,000 images": round(pruned_ms, 1), "full CPU ms / 1,000 images": round(full_ms, 1),
            "time ratio": round(pruned_ms / full_ms, 2), "all-units test accuracy": full_accuracy}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7, help="7 x 40 + 20 = 300 labels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bb-labels", type=int, nargs="+", default=[200, 300])
    parser.add_argument("--only", nargs="+", choices=["depth", "bbdropout"], default=["depth", "bbdropout"])
    parser.add_argument("--out", type=Path, default=Path("reports/runs/archopt_evidence"))
    parser.add_argument("--report", type=Path, default=Path("reports/archopt_evidence.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    loop_jobs = [(name, seed, args) for name in ARCHS for seed in args.seeds] if "depth" in args.only else []
    bb_jobs = [(seed, n, seed == args.seeds[0] and n == max(args.bb_labels)) for n in args.bb_labels
               for seed in args.seeds] if "bbdropout" in args.only else []
    with ProcessPoolExecutor(args.workers) as pool:
        bb_results = pool.map(pruning_run, bb_jobs)  # both kinds of job share the workers
        rows = pd.DataFrame([row for result in pool.map(one_run, loop_jobs) for row in result])
        bb_rows = pd.DataFrame([row for result in bb_results for row in result])
    parts = [f"# Architecture optimisers: evidence on mnist5k\n\nMade by `python bench/archopt_evidence.py --seeds "
             f"{' '.join(map(str, args.seeds))} --budget {args.budget} --rounds {args.rounds} --bb-labels "
             f"{' '.join(map(str, args.bb_labels))}` on {platform.machine()}, {args.workers} workers, "
             f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s; mean over {len(args.seeds)} seeds, "
             f"test accuracy on the 1,000 test images. See the script's docstring for the protocol.\n"]
    if len(rows):
        wall = rows.groupby(["name", "seed"])[["fit_seconds", "query_seconds"]].sum().sum(axis=1).groupby("name").mean()
        per_round, per_seed = depth_table(rows)
        parts += ["## Depth dropout against fixed depths (random acquisition, 20 initial labels, "
                  f"{args.budget} per round)\n\n" + markdown(per_round), markdown(per_seed, index=False),
                  "Seconds per run (fit + query, mean over seeds):\n\n" + markdown(wall.round(0).rename("seconds").to_frame())]
    if len(bb_rows):
        timing = [r for r in bb_rows.get("inference", pd.Series(dtype=object)).dropna()]
        parts += ["## BBDropout against the unpruned network\n\n" + markdown(pruning_table(bb_rows))]
        if timing: parts.append(f"Inference of the bbdropout fitted on {max(args.bb_labels)} labels (seed "
                                f"{args.seeds[0]}), 1,000 test images:\n\n" + markdown(pd.DataFrame(timing), index=False))
        parts.append("Per fit:\n\n" + markdown(bb_rows.drop(columns=["inference"], errors="ignore").round(4), index=False))
    if len(rows): parts.append("Per round of the depth runs:\n\n" + markdown(rows.drop(columns=["kept_width"]).round(4), index=False))
    write_report(args.report, parts)


if __name__ == "__main__":
    main()
