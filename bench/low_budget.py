"""The low-budget claim checked: Hacohen, Dekel & Weinshall (ICML 2022, "Active Learning on a Budget",
TypiClust) and Yehuda, Dekel, Hacohen & Weinshall (NeurIPS 2022, "Active Learning Through a Covering Lens",
ProbCover) report that with very few labels (their "low budget": up to a few labels per class) typical or
covering points beat random, while uncertainty sampling does worse than random.

The claim checked: **TypiClust and ProbCover beat random at 20-100 labels, where uncertainty (entropy) does
not.** Three more claims, for the strategies added after (issue 17): the hybrid ALFA-Mix (Parvaneh et al., CVPR
2022) is never far from the best of uncertainty (entropy, BALD) and diversity (TypiClust, ProbCover) across the
curve; EPIG (Bickford Smith et al., AISTATS 2023) at least matches BALD; DFAL (Ducoffe & Precioso 2018), an
input-space margin, at least matches uncertainty sampling (entropy).

Here: `mnist5k` (4,000 training images less a 10 % validation split; 1,000 test images), `cnn`, 2 labels per
class initially (20), `--budget` (10) per round for `--rounds` (8) rounds, up to 100 labels; strategies random,
entropy, typiclust and probcover (the paper's defaults: 20 neighbours, clusters of at least 5, δ by the 95 %
purity rule), `--seeds` seeds, one run at a time through `archdal.loop.run_experiment` (finished runs are read
back, not redone) into `--out`. Unlike the papers, whose features are self-supervised (SimCLR) and fixed, the
features here are the penultimate features of each round's own network, trained on the labels so far.

    python bench/low_budget.py                    # 3 seeds, 12 runs of 9 fits (about 25 min on 2 shared cores)
    python bench/low_budget.py --from-finished    # tabulate what --out holds
    python bench/low_budget.py --rounds 4 --strategies bald alfamix epig dfal   # the later ones, 20-60 labels
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from archdal.analysis import load_runs
from archdal.data import load_dataset
from archdal.loop import ExperimentConfig, run_experiment
from reporting import markdown, write_report  # bench/ is on the path when a script here runs

STRATEGIES = ["random", "entropy", "typiclust", "probcover", "bald", "alfamix", "epig", "dfal"]
LOW_BUDGET = (20, 100)  # labelled-set sizes where the claim is made


def run(args) -> None:
    """Run every seed x strategy, one at a time, seed by seed (a benchmark cut short still compares all strategies;
    a finished run is only read back, an unfinished one resumes)."""
    for seed in args.seeds:
        for strategy in args.strategies:
            start = time.perf_counter()
            subset = {"pool_subset": args.dfal_pool_subset} if strategy == "dfal" and args.dfal_pool_subset else {}
            run_experiment(ExperimentConfig(dataset="mnist5k", arch="cnn", strategy=strategy, n_init_per_class=2,
                                            budget=args.budget, rounds=args.rounds, seed=seed, threads=1,
                                            progress=False, out_dir=str(args.out), **subset))
            print(f"{strategy} seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)


def curves(out: Path, strategies: list[str]) -> pd.DataFrame:
    """Test accuracy per run and labelled-set size, and the run's directory: finished runs of the seeds that every
    strategy in `strategies` finished (so every comparison is over the same seeds)."""
    runs = load_runs(out)
    runs = runs[runs.finished & runs.strategy.isin(strategies)]
    complete = set.intersection(*[set(runs.seed[runs.strategy == s]) for s in strategies])
    return runs[runs.seed.isin(complete)][["strategy", "seed", "n_labelled", "test_accuracy", "run_dir"]].reset_index(drop=True)


def classes_acquired(curve: pd.DataFrame) -> pd.DataFrame:
    "Per strategy: the labels acquired per class (summed over seeds) and the classes a run never acquired."
    train_y = np.asarray(load_dataset("mnist5k").train_y)
    rows = []
    for (strategy, seed), run in curve.groupby(["strategy", "seed"], sort=False):
        queries = np.load(Path(run.run_dir.iloc[0]) / "queries.npz")
        acquired = np.concatenate([queries[k] for k in queries.files if k != "round_0"])
        rows.append({"strategy": strategy, "seed": seed, **{str(c): n for c, n in enumerate(np.bincount(train_y[acquired], minlength=10))}})
    per_run = pd.DataFrame(rows)
    digits = [str(c) for c in range(10)]
    out = per_run.groupby("strategy", sort=False)[digits].sum()
    out["classes never acquired (per seed)"] = per_run.groupby("strategy", sort=False)[digits].apply(
        lambda r: ", ".join(str(int((row == 0).sum())) for row in r.to_numpy()))
    return out


def accuracy_table(curve: pd.DataFrame, strategies: list[str]) -> pd.DataFrame:
    "Mean ± sd test accuracy (in %) over seeds: a row per labelled-set size, a column per strategy."
    stats = curve.groupby(["n_labelled", "strategy"]).test_accuracy.agg(["mean", "std", "count"])
    cell = lambda r: f"{100 * r['mean']:.1f} ± {100 * (r['std'] if r['count'] > 1 else 0):.1f}"
    table = stats.apply(cell, axis=1).unstack("strategy").fillna("–")
    return table[[s for s in strategies if s in table.columns]].rename_axis("labels")


def claim(curve: pd.DataFrame) -> pd.DataFrame:
    """Each strategy against random at every labelled-set size in LOW_BUDGET past the initial one: the mean
    difference in accuracy (points), the seeds where it is ahead, and the sizes where the mean is ahead."""
    low = curve[curve.n_labelled.between(*LOW_BUDGET) & (curve.n_labelled > curve.n_labelled.min())]
    wide = low.pivot_table(index=["seed", "n_labelled"], columns="strategy", values="test_accuracy")
    rows = []
    for strategy in [s for s in wide.columns if s != "random"]:
        diff = (wide[strategy] - wide["random"]).dropna()
        by_size = diff.groupby(level="n_labelled").mean()
        rows.append({"strategy": strategy, "labels": f"{by_size.index.min()}-{by_size.index.max()}",
                     "mean gain over random (points)": round(100 * diff.mean(), 2),
                     "sizes ahead on the mean": f"{int((by_size > 0).sum())}/{len(by_size)}",
                     "runs x sizes ahead": f"{int((diff > 0).sum())}/{len(diff)}",
                     "beats random": bool(diff.mean() > 0 and (by_size > 0).mean() > 0.5)})
    return pd.DataFrame(rows).set_index("strategy").reindex([s for s in STRATEGIES if s in wide.columns and s != "random"])


def versus(curve: pd.DataFrame, a: str, b: str) -> dict:
    """`a` against `b` at every labelled-set size both reached past the initial one, over the same seeds: the mean
    difference in accuracy (points), the sizes where `a`'s mean is ahead, and the (seed, size) pairs where it is."""
    wide = curve[curve.n_labelled > curve.n_labelled.min()].pivot_table(
        index=["seed", "n_labelled"], columns="strategy", values="test_accuracy")
    diff = (wide[a] - wide[b]).dropna()
    by_size = diff.groupby(level="n_labelled").mean()
    return {"comparison": f"{a} − {b}", "labels": f"{by_size.index.min()}-{by_size.index.max()}",
            "mean difference (points)": round(100 * diff.mean(), 2),
            "sizes ahead on the mean": f"{int((by_size > 0).sum())}/{len(by_size)}",
            "runs x sizes ahead": f"{int((diff > 0).sum())}/{len(diff)}"}


HYBRID_GAP = 2.0  # points: "never far from the best" means within this of the best at every size
UNCERTAINTY, DIVERSITY = ["entropy", "bald"], ["typiclust", "probcover"]


def hybrid_gaps(curve: pd.DataFrame, hybrid: str = "alfamix") -> pd.DataFrame:
    """At each labelled-set size the hybrid reached: its mean accuracy, the best mean of the uncertainty strategies and
    of the diversity strategies (and which), and the hybrid's gap to the better of the two (points, > 0: behind)."""
    means = curve.groupby(["n_labelled", "strategy"]).test_accuracy.mean().unstack("strategy") * 100
    rows = []
    for n, m in means[means[hybrid].notna()].iterrows():
        if n == means.index.min(): continue                     # the initial labels are the same for everyone
        u, d = m[[s for s in UNCERTAINTY if s in m]].dropna(), m[[s for s in DIVERSITY if s in m]].dropna()
        best = max(u.max(), d.max())
        rows.append({"labels": n, hybrid: round(m[hybrid], 1), "best uncertainty": f"{u.max():.1f} ({u.idxmax()})",
                     "best diversity": f"{d.max():.1f} ({d.idxmax()})", "gap to the best (points)": round(best - m[hybrid], 1)})
    return pd.DataFrame(rows).set_index("labels")


def other_claims(curve: pd.DataFrame) -> list[str]:
    "The hybrid, EPIG and DFAL claims, each a table and a sentence, for the strategies present in `curve`."
    have = set(curve.strategy)
    parts = []
    if {"alfamix"} <= have and have & set(UNCERTAINTY) and have & set(DIVERSITY):
        gaps = hybrid_gaps(curve)
        worst = float(gaps["gap to the best (points)"].max())
        parts += [f"**Hybrid (Parvaneh et al. 2022): ALFA-Mix is never far from the best of uncertainty ({', '.join(UNCERTAINTY)}) "
                  f"and diversity ({', '.join(DIVERSITY)}).** Mean test accuracy (%) at each size ALFA-Mix reached; "
                  f"\"never far\" is taken as within {HYBRID_GAP:g} points of the best at every size:", markdown(gaps),
                  f"The claim {'reproduces' if worst <= HYBRID_GAP else 'does not reproduce'} here: the largest gap to the "
                  f"best is {worst:+.1f} points (at {int(gaps['gap to the best (points)'].idxmax())} labels); ALFA-Mix is "
                  f"the best or ahead of it at {int((gaps['gap to the best (points)'] <= 0).sum())} of {len(gaps)} sizes."]
    pairs = [("epig", "bald"), ("epig", "random"), ("dfal", "entropy"), ("dfal", "random"), ("alfamix", "random")]
    rows = [versus(curve, a, b) for a, b in pairs if {a, b} <= have]
    if rows:
        table = pd.DataFrame(rows).set_index("comparison")
        parts += ["**EPIG (Bickford Smith et al. 2023) vs BALD, DFAL (Ducoffe & Precioso 2018) vs uncertainty (entropy)**, "
                  "and each against random, at the sizes both reached (past the initial labels):", markdown(table)]
        said = []
        for a, b, claim_ in (("epig", "bald", "EPIG at least matches BALD"), ("dfal", "entropy", "DFAL at least matches uncertainty sampling")):
            if f"{a} − {b}" in table.index:
                r = table.loc[f"{a} − {b}"]
                ahead, total = map(int, r["sizes ahead on the mean"].split("/"))
                holds = r["mean difference (points)"] >= 0 and ahead * 2 >= total
                said.append(f"{claim_}: {'reproduces' if holds else 'does not reproduce'} "
                            f"({r['mean difference (points)']:+.2f} points on average, ahead at {r['sizes ahead on the mean']} sizes)")
        parts.append("; ".join(said) + ".")
    return parts


def reached(curve: pd.DataFrame) -> str:
    "Which labelled-set sizes each strategy's runs reached (they may have been run with different --rounds)."
    span = curve.groupby("strategy", sort=False).n_labelled.agg(["min", "max"])
    return ", ".join(f"{s} {r['min']}-{r['max']}" for s, r in span.iterrows())


def verdict(gains: pd.DataFrame) -> str:
    "One sentence: does the claim reproduce, from the `claim` table."
    beat = lambda s: s in gains.index and bool(gains.loc[s, "beats random"])
    parts = [f"{s} {'beats' if beat(s) else 'does not beat'} random "
             f"({gains.loc[s, 'mean gain over random (points)']:+.2f} points on average, ahead at "
             f"{gains.loc[s, 'sizes ahead on the mean']} sizes)" for s in gains.index]
    holds = beat("typiclust") and beat("probcover") and not beat("entropy")
    return (f"**The claim {'reproduces' if holds else 'does not reproduce'} here**: " + "; ".join(parts) + ".")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=10, help="labels acquired per round")
    parser.add_argument("--rounds", type=int, default=8, help="query rounds (8 x 10 + 20 = 100 labels)")
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--dfal-pool-subset", type=int, default=1000,
                        help="DFAL scores a seeded random subset of this many unlabelled images per round (0: all): its "
                             "DeepFool costs about 5 CPU-ms per image and step, a minute a round on the whole pool")
    parser.add_argument("--out", type=Path, default=Path("/tmp/archdal_low_budget"))
    parser.add_argument("--report", type=Path, default=Path("reports/low_budget.md"))
    parser.add_argument("--from-finished", action="store_true", help="run nothing: tabulate the finished runs in --out")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    if not args.from_finished: run(args)
    curve = curves(args.out, args.strategies)
    seeds = sorted(curve.seed.unique().tolist())
    gains = claim(curve)
    header = (f"# The low-budget claims on mnist5k (TypiClust, ProbCover; ALFA-Mix, EPIG, DFAL)\n\nMade by `python bench/low_budget.py "
              f"--seeds {' '.join(map(str, args.seeds))} --budget {args.budget} --rounds {args.rounds}"
              f"{' --from-finished' if args.from_finished else ''}` on {platform.processor() or platform.machine()}, "
              f"{time.strftime('%Y-%m-%d')}{'' if args.from_finished else f', {time.perf_counter() - started:.0f} s'}, "
              f"one run at a time with one thread while other jobs shared the cores. `mnist5k`, `cnn`, 20 initial "
              f"labels (2 per class), {args.budget} per round; seeds that every strategy finished: {seeds} "
              f"({len(seeds)} of {len(args.seeds)} asked for).\n\n"
              "Claim (Hacohen et al. 2022; Yehuda et al. 2022): TypiClust and ProbCover beat random at 20-100 "
              "labels, where uncertainty (entropy) does not. The papers' features are self-supervised (SimCLR) and "
              "fixed; here they are each round's own supervised network's penultimate features.\n\n"
              f"Labelled-set sizes each strategy's runs reached: {reached(curve)}. The strategies added later (bald, "
              "alfamix, epig, dfal) were run with `--rounds 4` (20-60 labels) to keep their CPU time under about half "
              "an hour on the shared 2-core machine (seeds were kept, rounds cut); the same training settings, seeds and "
              "initial labels as the others, so every comparison below is at the sizes both strategies reached. "
              + (f"DFAL scored a seeded random {args.dfal_pool_subset:,} of the unlabelled images each round (`pool_subset`; "
                 "the others score all of them): its DeepFool (one forward and ten backward passes per step, about 4 steps "
                 "an image) would take about a CPU minute a round on the whole pool." if args.dfal_pool_subset else ""))
    write_report(args.report, [
        header, "Test accuracy (%), mean ± sd over seeds, by labelled-set size:", markdown(accuracy_table(curve, args.strategies)),
        f"Against random at {LOW_BUDGET[0]}-{LOW_BUDGET[1]} labels (sizes after the first query; the 20 initial labels are "
        "the same for every strategy):", markdown(gains), verdict(gains),
        *other_claims(curve),
        f"Labels acquired per digit after the initial 20 (summed over the {len(seeds)} seeds):",
        markdown(classes_acquired(curve).reindex(args.strategies)),
        "Per run:\n\n" + markdown(curve.drop(columns="run_dir").assign(test_accuracy=curve.test_accuracy.round(4)), index=False)])


if __name__ == "__main__":
    main()
