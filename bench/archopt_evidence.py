"""Do the architecture optimisers optimise? Evidence for depth dropout (Kc, Li & Gilany, NeurIPS 2021) and
BBDropout (Lee et al. 2019) inside the active-learning loop, on the 5,000 real MNIST digits (`mnist5k`).

Protocol: random acquisition (so the architecture is the only thing that changes), 2 labels per class
initially, `--budget` labels per round, `--rounds` rounds, `--seeds` seeds, `fit`'s default step budget. Runs:
`depth_dropout` (CPU preset) against fixed `cnn` of depth 1, 2 and 3; `bbdropout` against the same network
without gates (`cnn` width 64, embed_dim 256, no body dropout: the skeleton bbdropout gates). Targets (issue 12):

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
from gal_orderings import markdown  # bench/ is on the path when a script here runs

ARCHS = {"depth_dropout": ("depth_dropout", {}), "cnn depth 1": ("cnn", {"depth": 1}),
         "cnn depth 2": ("cnn", {"depth": 2}), "cnn depth 3": ("cnn", {"depth": 3}),
         "bbdropout": ("bbdropout", {}),
         "unpruned (cnn width 64, no gates)": ("cnn", {"width": 64, "embed_dim": 256, "body_dropout": 0.0})}


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


def pruning_table(rows: pd.DataFrame) -> pd.DataFrame:
    "Per round: units pruned, accuracy of bbdropout and of the unpruned network, parameters."
    bb = rows[rows.name == "bbdropout"].groupby("n_labelled")
    dense = rows[rows.name.str.startswith("unpruned")].groupby("n_labelled")
    return pd.DataFrame({"units pruned (mean)": (1 - bb.kept_fraction.mean()).round(3),
                         "bbdropout accuracy": bb.test_accuracy.mean().round(3),
                         "unpruned accuracy": dense.test_accuracy.mean().round(3),
                         "loss (points)": ((dense.test_accuracy.mean() - bb.test_accuracy.mean()) * 100).round(1),
                         "pruned parameters (mean)": bb.n_params.mean().round(0),
                         "unpruned parameters": dense.n_params.mean().round(0)})


def inference_times(seed: int, n_labelled: int, repeats: int = 5) -> dict:
    "CPU seconds per 1,000 test images of one bbdropout fitted on `n_labelled` labels: pruned vs all units kept."
    import torch
    from archdal.data import load_dataset
    from archdal.models import make_model
    from archdal.train import evaluate, fit
    data = load_dataset("mnist5k")
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    model = make_model("bbdropout", data.in_shape, data.n_classes)
    fit(model, data.train_x[order[:n_labelled]], data.train_y[order[:n_labelled]], data.train_x[order[-400:]],
        data.train_y[order[-400:]], device="cpu", seed=seed)
    model.eval()
    x = data.test_x[:1000]

    def cpu_seconds() -> float:
        with torch.no_grad():
            model(x)
            start = time.process_time()
            for _ in range(repeats): model(x)
            return (time.process_time() - start) / repeats

    pruned_seconds, summary = cpu_seconds(), model.summary()
    pruned_accuracy = evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"]
    thresholds = [g.threshold for g in model.body.gates()]
    for g in model.body.gates(): g.threshold = 0.0   # keep every unit: the same code path at full width
    full_seconds, full = cpu_seconds(), model.summary()
    full_accuracy = evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"]
    for g, t in zip(model.body.gates(), thresholds): g.threshold = t
    return {"labels": n_labelled, "kept width": summary["kept_width"], "full width": summary["full_width"],
            "pruned parameters": summary["n_params"], "full parameters": full["n_params"],
            "pruned CPU ms / 1,000 images": round(pruned_seconds * 1000, 1),
            "full CPU ms / 1,000 images": round(full_seconds * 1000, 1),
            "time ratio": round(pruned_seconds / full_seconds, 2),
            "pruned test accuracy": pruned_accuracy, "all-units test accuracy": full_accuracy}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7, help="7 x 40 + 20 = 300 labels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument("--out", type=Path, default=Path("reports/runs/archopt_evidence"))
    parser.add_argument("--report", type=Path, default=Path("reports/archopt_evidence.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    jobs = [(name, seed, args) for name in args.only for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = pd.DataFrame([row for result in pool.map(one_run, jobs) for row in result])
    wall = rows.groupby(["name", "seed"])[["fit_seconds", "query_seconds"]].sum().sum(axis=1).groupby("name").mean()
    parts = [f"# Architecture optimisers: evidence on mnist5k\n\nMade by `python bench/archopt_evidence.py --seeds "
             f"{' '.join(map(str, args.seeds))} --budget {args.budget} --rounds {args.rounds}` on "
             f"{platform.machine()}, {args.workers} workers, {time.strftime('%Y-%m-%d')}, "
             f"{time.perf_counter() - started:.0f} s. Random acquisition, 20 initial labels, {args.budget} per round, "
             f"mean over {len(args.seeds)} seeds; test accuracy on the 1,000 test images.\n",
             "## Seconds per run (fit + query, mean over seeds)\n\n" + markdown(wall.round(0).rename("seconds").to_frame())]
    if "depth_dropout" in args.only:
        per_round, per_seed = depth_table(rows)
        parts += ["## Depth dropout against fixed depths\n\n" + markdown(per_round), markdown(per_seed, index=False)]
    if "bbdropout" in args.only:
        parts += ["## BBDropout against the unpruned network\n\n" + markdown(pruning_table(rows)),
                  "Inference, one bbdropout fitted on 300 labels (seed 0), 1,000 test images:\n\n"
                  + markdown(pd.DataFrame([inference_times(args.seeds[0], 20 + args.budget * args.rounds)]), index=False)]
    parts.append("Per run:\n\n" + markdown(rows.drop(columns=["kept_width"]).round(4), index=False))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n\n".join(parts) + "\n")
    print("\n\n".join(parts[:-1]))
    print(f"wrote {args.report}")


if __name__ == "__main__":
    main()
