"""Does the PDARTS search (Chen et al., IJCV 2021) find a better cell than chance on an active-learning-sized
labelled set? Evidence on the 5,000 real MNIST digits (`mnist5k`).

Protocol, per seed: a random labelled set of `--labels` images and a disjoint validation split of 400 (the loop's
sizes at 200 labels), the search of `pdarts` under its CPU preset (α trained on the validation split, as in the
loop), the derived network fitted with `fit`'s default budget; then `--random` random genotypes of about the same
parameter count (within 15 %), each fitted the same way. A random genotype is the DARTS derivation rule
(`derive_genotype`, with the same skip-connect cap) applied to random operation weights, so it is a draw from the
space the search chooses from. Test accuracy on the 1,000 test images. Targets (issue 12): the searched genotype
beats the mean of the random ones, and α's entropy falls stage by stage.

    python bench/pdarts_evidence.py                      # 3 seeds, 200 labels, 3 random genotypes each
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from reporting import markdown, write_report  # bench/ is on the path when a script here runs


def one_seed(job) -> list[dict]:
    "Search, fit the derived network and `n_random` random genotypes of about its size; one row per network."
    seed, args = job
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    torch.set_num_threads(1)
    from archdal.data import load_dataset
    from archdal.pdarts import (EDGES, PDARTS_PRESETS, PRIMITIVES, derive_genotype, make_pdarts_model,
                                pdarts_search)
    from archdal.train import evaluate, fit, seeded
    data = load_dataset(args.dataset)
    order = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(seed))
    x, y = data.train_x[order[:args.labels]], data.train_y[order[:args.labels]]
    vx, vy = data.train_x[order[-args.val:]], data.train_y[order[-args.val:]]
    preset = dict(PDARTS_PRESETS["cpu"], **({"min_stage_steps": args.stage_steps} if args.stage_steps else {}))
    channels, cells = preset.pop("channels"), preset.pop("cells")
    search = pdarts_search(x, y, vx, vy, data.n_classes, **preset, batch_size=32, seed=seed, device="cpu")

    def fitted(genotype, key: int) -> dict:
        with seeded(1000 * seed + key, torch.device("cpu")):
            model = make_pdarts_model(genotype, data.in_shape, data.n_classes, 0.25, channels=channels, cells=cells)
        start = time.process_time()
        result = fit(model, x, y, vx, vy, batch_size=32, seed=seed, device="cpu")
        return {"parameters": sum(p.numel() for p in model.parameters()),
                "test_accuracy": evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"],
                "val_accuracy": result.best_val_accuracy, "fit_cpu_s": round(time.process_time() - start, 1)}

    stages = [s.to_dict() for s in search.stages]
    rows = [{"seed": seed, "network": "searched", "genotype": str(search.genotype.to_dict()), **fitted(search.genotype, 0),
             "search_s": round(search.seconds, 1),
             "alpha entropy by stage (start>end, nats)": "; ".join(f"{a:.3f}>{b:.3f}" for a, b in
                                                                    (s["alpha_entropy"] for s in stages)),
             "fraction of uniform at stage end": " ".join(f"{s['alpha_entropy_normalised'][1]:.3f}" for s in stages)}]
    target, generator, tries = rows[0]["parameters"], torch.Generator().manual_seed(10_000 + seed), 0
    while len(rows) < 1 + args.random and tries < 500:
        tries += 1
        ranks = torch.rand(2, len(EDGES), len(PRIMITIVES), generator=generator)
        genotype = derive_genotype(ranks, preset["max_skip"])
        size = sum(p.numel() for p in make_pdarts_model(genotype, data.in_shape, data.n_classes, 0.25,
                                                         channels=channels, cells=cells).parameters())
        if abs(size - target) <= 0.15 * target:
            rows.append({"seed": seed, "network": f"random {len(rows)}", "genotype": str(genotype.to_dict()),
                         **fitted(genotype, len(rows))})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dataset", default="mnist5k", help="digits costs about a sixteenth: 8 x 8 images")
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--val", type=int, default=400, help="validation images (alpha's data)")
    parser.add_argument("--random", type=int, default=3, help="random genotypes per seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stage-steps", type=int, default=None, help="override the preset's min_stage_steps (smoke tests)")
    parser.add_argument("--report", type=Path, default=Path("reports/pdarts_evidence.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = pd.DataFrame([row for result in pool.map(one_seed, [(s, args) for s in args.seeds]) for row in result])
    searched = rows[rows.network == "searched"].set_index("seed")
    random = rows[rows.network != "searched"].groupby("seed")
    per_seed = pd.DataFrame({"searched accuracy": searched.test_accuracy.round(4),
                             "random genotypes (mean)": random.test_accuracy.mean().round(4),
                             "random genotypes (best)": random.test_accuracy.max().round(4),
                             "searched - random mean (points)": ((searched.test_accuracy - random.test_accuracy.mean())
                                                                 * 100).round(1),
                             "searched parameters": searched.parameters,
                             "random parameters (mean)": random.parameters.mean().round(0),
                             "search s": searched.search_s,
                             "alpha entropy by stage (start>end, nats)": searched["alpha entropy by stage (start>end, nats)"],
                             "fraction of uniform at stage end": searched["fraction of uniform at stage end"]})
    wins = int((per_seed["searched - random mean (points)"] > 0).sum())
    parts = [f"# PDARTS: searched against random genotypes on {args.dataset}\n\nMade by `python bench/pdarts_evidence.py "
             f"--dataset {args.dataset} --seeds {' '.join(map(str, args.seeds))} --labels {args.labels} --val {args.val} "
             f"--random {args.random}{f' --stage-steps {args.stage_steps}' if args.stage_steps else ''}` on "
             f"{platform.machine()}, {args.workers} workers, {time.strftime('%Y-%m-%d')}, "
             f"{time.perf_counter() - started:.0f} s. `pdarts`'s CPU preset; {args.labels} labels, {args.val} validation "
             f"images (α's data), {args.dataset}'s test images; random genotypes within 15 % of the searched one's parameters.",
             markdown(per_seed),
             f"Searched above the random mean in {wins} of {len(per_seed)} seeds; mean difference "
             f"{per_seed['searched - random mean (points)'].mean():.1f} points.",
             "Per network:\n\n" + markdown(rows.drop(columns=[c for c in rows.columns if "entropy" in c or "uniform" in c]),
                                            index=False)]
    write_report(args.report, parts)


if __name__ == "__main__":
    main()
