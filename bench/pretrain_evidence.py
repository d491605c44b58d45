"""What pretraining the body does to active learning (issue 16): on `digits` and `mnist5k`, `cnn` and `resnet18`,
strategies random / entropy / badge / coreset, with and without a SimCLR-style pretrained body (fine-tuned every
round), seeds 0-2: round-0 test accuracy, the area under the learning curve, pretraining seconds, and whether the
ranking of the strategies by that area changes. Each method's own success measure is measured too: k-NN and
10-labels-per-class linear-probe test accuracy of the pretrained body's features against a random body's
(`archdal.pretrain.feature_quality`), for SimCLR and DeepCluster. On `digits`/`cnn` the active-learning runs are
repeated with DeepCluster and with the SimCLR body frozen (head only).

The protocol is small, to fit about 40 CPU-minutes on a shared 2-core machine (one torch thread per process; see
PROTOCOLS, and the report states it): few rounds and reduced step budgets, smaller still for `resnet18` on
28x28 images, where one optimiser step of 16 images costs about 0.5 s on one core and `mnist5k`/`resnet18`
runs one seed only.

    nice -n 10 python bench/pretrain_evidence.py --part digits-cnn digits-resnet18   # writes --out/<part>.json and runs
    nice -n 10 python bench/pretrain_evidence.py --part mnist5k-cnn mnist5k-resnet18
    nice -n 10 python bench/pretrain_evidence.py --longer     # SimCLR on mnist5k/cnn at its defaults and 1,000 steps
    python bench/pretrain_evidence.py --report                                      # reports/pretraining.md

The report also tabulates the three default papermill runs (`-p pretrain none|simclr|deepcluster`) found in
`--out`/papermill/runs_<pretrain> with their `/usr/bin/time` lines in `--out`/papermill/times.txt. A part cut
short reports the seeds it finished (the `seeds` columns).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from archdal.data import load_dataset
from archdal.loop import ExperimentConfig, run_experiment
from archdal.pretrain import _model, feature_quality, pretrained_body, use_pretrained
from archdal.train import derive_seed, seeded
from reporting import markdown  # bench/ is on the path when a script here runs

STRATEGIES = ["random", "entropy", "badge", "coreset"]
# per (dataset, arch): the active-learning protocol, the seeds, and the pretraining settings of each method
PROTOCOLS = {
    "digits-cnn": dict(al=dict(rounds=4, budget=10, n_init_per_class=2, min_steps=100, epochs=20, batch_size=32),
                       seeds=[0, 1, 2], simclr={}, deepcluster={}, extra_al=True),
    "digits-resnet18": dict(al=dict(rounds=3, budget=10, n_init_per_class=2, min_steps=40, epochs=10, batch_size=16),
                            seeds=[0, 1, 2], simclr=dict(steps=60, batch_size=32),
                            deepcluster=dict(epochs=4, steps_per_epoch=15, batch_size=32)),
    "mnist5k-cnn": dict(al=dict(rounds=2, budget=20, n_init_per_class=2, min_steps=60, epochs=10, batch_size=32,
                                pool_cap=500),
                        seeds=[0, 1, 2], simclr=dict(steps=200, batch_size=64),
                        deepcluster=dict(epochs=5, steps_per_epoch=20, batch_size=64, max_images=2000)),
    "mnist5k-resnet18": dict(al=dict(rounds=1, budget=20, n_init_per_class=2, min_steps=20, epochs=2, batch_size=16,
                                     pool_cap=200),
                             seeds=[0], simclr=dict(steps=20, batch_size=32),
                             deepcluster=dict(epochs=2, steps_per_epoch=10, batch_size=32, max_images=500)),
}
FIXED = dict(val_cap=100, patience=20, device="cpu", progress=False, record_points=0, threads=1)


def auc(history: pd.DataFrame) -> float:
    "Area under test accuracy against labels, divided by the label range (a mean accuracy over the budget)."
    x, y = history.n_labelled.to_numpy(float), history.test_accuracy.to_numpy(float)
    return float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(x) > 1 else float(y[0])


def _small(data, n_train: int, n_test: int):
    "The first images of `data` (feature quality of resnet18 on 28x28 images costs 12 ms an image on one core)."
    return SimpleNamespace(train_x=data.train_x[:n_train], train_y=data.train_y[:n_train], test_x=data.test_x[:n_test],
                           test_y=data.test_y[:n_test], n_classes=data.n_classes)


def run_part(part: str, out: Path) -> None:
    dataset, arch = part.split("-")
    spec = PROTOCOLS[part]
    data = load_dataset(dataset)
    probe_data = _small(data, 1000, 500) if arch == "resnet18" and dataset == "mnist5k" else data
    results_file = out / f"{part}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {"features": [], "runs": []}
    cache = out / "cache"
    for seed in spec["seeds"]:
        for method in ("simclr", "deepcluster"):
            if any(r["seed"] == seed and r["method"] == method for r in results["features"]): continue
            if method == "deepcluster" and seed != spec["seeds"][0]: continue  # DeepCluster's measure: the first seed
            cfg = SimpleNamespace(dataset=dataset, arch=arch, arch_kwargs={}, dropout=0.25, pretrain=method,
                                  pretrain_kwargs=spec[method], freeze_body=False, seed=seed, progress=False)
            with seeded(derive_seed(seed, 0, "pretrain"), torch.device("cpu")):
                random_body = _model(cfg, data.in_shape, data.n_classes)
            body = pretrained_body(cfg, data, cache)
            quality = {"random_" + k: v for k, v in feature_quality(random_body, probe_data, seed=seed).items()}
            pretrained = use_pretrained(_model(cfg, data.in_shape, data.n_classes), body.state)
            quality |= {"pretrained_" + k: v for k, v in feature_quality(pretrained, probe_data, seed=seed).items()}
            results["features"].append({"seed": seed, "method": method, "seconds": body.seconds, **quality,
                                        "first_loss": body.measures["loss"][0], "last_loss": body.measures["loss"][-1],
                                        "nmi_between_epochs": body.measures.get("nmi_between_epochs")})
            results_file.write_text(json.dumps(results, indent=1))
            print(part, results["features"][-1], flush=True)
        variants = [("none", {}, False), ("simclr", spec["simclr"], False)]
        if spec.get("extra_al"): variants += [("deepcluster", spec["deepcluster"], False), ("simclr", spec["simclr"], True)]
        for strategy in STRATEGIES:
            for pretrain, kwargs, freeze in variants:
                variant = pretrain + ("+frozen" if freeze else "")
                if any(r["seed"] == seed and r["strategy"] == strategy and r["variant"] == variant for r in results["runs"]):
                    continue
                config = ExperimentConfig(dataset=dataset, arch=arch, strategy=strategy, seed=seed, pretrain=pretrain,
                                          pretrain_kwargs=kwargs, freeze_body=freeze, pretrain_cache=str(cache),
                                          out_dir=str(out / "runs" / variant), **spec["al"], **FIXED)
                started = time.perf_counter()
                history = run_experiment(config).history
                results["runs"].append({"seed": seed, "strategy": strategy, "variant": variant,
                                        "round0": float(history.test_accuracy.iloc[0]), "auc": auc(history),
                                        "final": float(history.test_accuracy.iloc[-1]),
                                        "labels": history.n_labelled.tolist(), "seconds": time.perf_counter() - started})
                results_file.write_text(json.dumps(results, indent=1))
                print(part, results["runs"][-1], flush=True)


LONGER = [{}, {"steps": 1000}]  # SimCLR on mnist5k/cnn at its defaults (300 steps of 128) and longer, seed 0


def run_longer(out: Path) -> None:
    "Whether SimCLR's features on mnist5k/cnn improve with more steps than the active-learning protocol could afford."
    data, file = load_dataset("mnist5k"), out / "longer.json"
    rows = json.loads(file.read_text()) if file.exists() else []
    for kwargs in LONGER:
        if any(r["settings"] == kwargs for r in rows): continue
        cfg = SimpleNamespace(dataset="mnist5k", arch="cnn", arch_kwargs={}, dropout=0.25, pretrain="simclr",
                              pretrain_kwargs=kwargs, freeze_body=False, seed=0, progress=False)
        body = pretrained_body(cfg, data, out / "cache")
        quality = feature_quality(use_pretrained(_model(cfg, data.in_shape, data.n_classes), body.state), data)
        rows.append({"settings": kwargs, "seconds": body.seconds, **quality, "loss_last": body.measures["loss"][-1]})
        file.write_text(json.dumps(rows, indent=1))
        print("longer", rows[-1], flush=True)


def _ranking(table: pd.DataFrame) -> str:
    return " > ".join(table.sort_values(ascending=False).index)


def report(out: Path, path: Path) -> None:
    parts = ["# Pretrained bodies: what they do to active learning",
             "Written by `bench/pretrain_evidence.py` (issue 16). Pretraining uses every training image of the data "
             "set without its label; the body is loaded into each round's fresh model (a new head each round) and "
             "fine-tuned with the round's labels unless marked frozen. One torch thread, `nice -n 10`, on a 2-core "
             f"machine shared with other work ({platform.processor() or platform.machine()}, torch {torch.__version__})."]
    protocol = pd.DataFrame([{"data-arch": p, "seeds": len(s["seeds"]), **s["al"], "simclr": s["simclr"] or "defaults",
                              "deepcluster": s["deepcluster"] or "defaults"} for p, s in PROTOCOLS.items()]).fillna("all")
    parts += ["## Protocol", "Every run: strategies " + ", ".join(STRATEGIES) + "; " +
              ", ".join(f"{k}={v}" for k, v in FIXED.items() if k not in ("progress", "device", "threads")) +
              "; the rest at `ExperimentConfig`'s defaults (SGD, lr 0.03, cosine schedule, early stopping on the held-out "
              "validation images). Seconds are wall-clock seconds on the shared machine (its load average was 6-9 on 2 "
              "cores while this ran), so they overstate the CPU cost. `seeds` in the protocol is what was planned; the "
              "`seeds` columns below count what finished. Small on purpose (planned at about 40 CPU-minutes for the whole benchmark; on the loaded machine it "
              "took 70 minutes of wall time in up to three niced processes, about 50 CPU-minutes by their CPU shares); "
              "`mnist5k`/`resnet18` ran one seed, one query round, 20 optimiser steps a round and its feature "
              "measures on the first 1,000 training / 500 test images.", markdown(protocol, index=False)]
    features, runs = [], []
    for p in PROTOCOLS:
        file = out / f"{p}.json"
        if not file.exists(): continue
        got = json.loads(file.read_text())
        features += [{"data-arch": p, **r} for r in got["features"]]
        runs += [{"data-arch": p, **r} for r in got["runs"]]
    features, runs = pd.DataFrame(features), pd.DataFrame(runs)
    if len(features):
        f = features.groupby(["data-arch", "method"]).agg(
            seeds=("seed", "count"), pretrain_seconds=("seconds", "mean"), knn_random=("random_knn", "mean"),
            knn_pretrained=("pretrained_knn", "mean"), probe_random=("random_probe", "mean"),
            probe_pretrained=("pretrained_probe", "mean"), loss_first=("first_loss", "mean"), loss_last=("last_loss", "mean"))
        f["met"] = np.where((f.knn_pretrained > f.knn_random) & (f.probe_pretrained > f.probe_random), "yes",
                            np.where((f.knn_pretrained > f.knn_random) | (f.probe_pretrained > f.probe_random), "partly", "no"))
        nmi = features.dropna(subset=["nmi_between_epochs"]).assign(
            nmi=lambda d: d.nmi_between_epochs.map(lambda v: " → ".join(f"{x:.2f}" for x in v)))[["data-arch", "nmi"]]
        parts += ["## Each method's own success measure",
                  "Test accuracy of a cosine 10-NN on all training features (`knn`) and of a logistic-regression probe on "
                  "10 labels per class (`probe`), for the pretrained body and for a random body of the same architecture "
                  "(the same seed). `met`: both better than random (`partly`: one of them). DeepCluster: first seed "
                  "only; its stability (NMI between consecutive epochs' clusterings) is listed below the table.",
                  markdown(f.round(3)), "DeepCluster NMI between consecutive epochs:\n\n" + markdown(nmi, index=False)]
    if len(runs):
        base = runs[runs.variant == "none"].set_index(["data-arch", "strategy", "seed"])
        rows = []
        for (p, variant), group in runs[runs.variant != "none"].groupby(["data-arch", "variant"]):
            g = group.set_index(["data-arch", "strategy", "seed"])
            both = g.join(base, rsuffix="_none", how="inner")
            for strategy, s in both.groupby(level="strategy"):
                rows.append({"data-arch": p, "variant": variant, "strategy": strategy, "seeds": len(s),
                             "round0 none": s.round0_none.mean(), "round0 pretrained": s.round0.mean(),
                             "AUC none": s.auc_none.mean(), "AUC pretrained": s.auc.mean(),
                             "AUC gain": (s.auc - s.auc_none).mean(), "AUC gain sd": (s.auc - s.auc_none).std(ddof=0)})
        table = pd.DataFrame(rows)
        ranks = []
        for (p, variant), t in table.groupby(["data-arch", "variant"]):
            t = t.set_index("strategy")
            before, after = _ranking(t["AUC none"]), _ranking(t["AUC pretrained"])
            gap = lambda column: float(np.diff(np.sort(t[column].to_numpy())).min())
            spread = runs[(runs["data-arch"] == p) & runs.variant.isin(["none", variant])].groupby(
                ["variant", "strategy"]).auc.std(ddof=0).median()
            ranks.append({"data-arch": p, "variant": variant, "ranking without": before, "ranking with": after,
                          "changes": "yes" if before != after else "no", "smallest gap without": round(gap("AUC none"), 3),
                          "smallest gap with": round(gap("AUC pretrained"), 3), "median AUC sd over seeds": round(spread, 3)})
        parts += ["## Active learning with and without a pretrained body",
                  "Means over seeds; AUC is the area under test accuracy against labels divided by the label range "
                  "(a mean accuracy over the budget); `AUC gain` the mean paired difference (pretrained − none) and its "
                  "spread over seeds.", markdown(table.round(3), index=False),
                  "## Does the ranking of the strategies change?",
                  "By mean AUC over the seeds; the gaps between neighbouring strategies against the spread of one "
                  "strategy's AUC over seeds say how much a changed order means (with one seed the spread is 0: unknown).",
                  markdown(pd.DataFrame(ranks), index=False)]
        seconds = runs.groupby(["data-arch", "variant"]).seconds.mean().round(1).rename("seconds per run")
        parts += ["Seconds per active-learning run (pretraining excluded; it is cached):", markdown(seconds.reset_index(), index=False)]
    if (out / "longer.json").exists():
        longer = pd.DataFrame(json.loads((out / "longer.json").read_text()))
        longer["settings"] = longer.settings.map(lambda k: json.dumps(k) if k else "defaults (300 steps of 128)")
        parts += ["## Longer SimCLR pretraining (mnist5k, cnn, seed 0)",
                  "The active-learning protocol above pretrained mnist5k/cnn for 200 steps of 64 images (about three passes "
                  "over the 4,000 training images). The same measures at the method's defaults and longer:",
                  markdown(longer.round(3), index=False)]
    defaults = []
    for variant in ("none", "simclr", "deepcluster"):  # `papermill nbs/experiment.ipynb ... -p pretrain <variant>`
        run = out / "papermill" / f"runs_{variant}" / "digits" / "cnn" / "badge" / "seed0"
        if not (run / "history.jsonl").exists(): continue
        history = pd.read_json(run / "history.jsonl", lines=True)
        used = json.loads((run / "pretrained.json").read_text()) if (run / "pretrained.json").exists() else {}
        timed = out / "papermill" / "times.txt"  # `/usr/bin/time -f "<variant> %e s wall %U s user"` of each papermill run
        times = {line.split()[0]: line.split()[1:] for line in timed.read_text().splitlines()} if timed.exists() else {}
        wall, user = (float(times[variant][0]), float(times[variant][3])) if variant in times else (math.nan, math.nan)
        defaults.append({"pretrain": variant, "papermill wall s": wall, "papermill CPU s": user,
                         "round0": history.test_accuracy.iloc[0], "AUC": auc(history),
                         "final": history.test_accuracy.iloc[-1], "pretrain seconds": used.get("pretrain_seconds", 0.0),
                         "fit seconds (all rounds)": history.fit_seconds.sum()})
    if defaults:
        parts += ["## The default experiment with `-p pretrain <method>`",
                  "`papermill nbs/experiment.ipynb out.ipynb -p pretrain <method> -p threads 1` at every other default "
                  "(digits, cnn, badge, 8 rounds of 40, seed 0; method defaults), one seed, on the shared machine:",
                  markdown(pd.DataFrame(defaults).round(3), index=False)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")
    print("\n\n".join(parts))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="*", default=[], choices=list(PROTOCOLS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/pretrain_evidence"))
    parser.add_argument("--report", type=Path, nargs="?", const=Path("reports/pretraining.md"))
    parser.add_argument("--longer", action="store_true", help="SimCLR on mnist5k/cnn at its defaults and at 1,000 steps")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for part in args.part: run_part(part, args.out)
    if args.longer: run_longer(args.out)
    if args.report: report(args.out, args.report)
