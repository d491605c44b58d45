"""Final test accuracy and wall time of each architecture choice on digits, same strategy and seeds.

Usage: python bench/archopt.py [--archs cnn resnet18 ...] [--seeds 0 1] [--strategy badge] [--out reports/runs-archopt]
Prints one row per (arch, seed) and a mean per arch; every run uses the experiment notebook's defaults otherwise.
"""
import argparse
import time

import pandas as pd
import torch

from archdal.loop import ExperimentConfig, run_experiment

DEFAULT_ARCHS = ["cnn", "resnet18", "depth_dropout", "bbdropout", "select:cnn,mlp", "pdarts"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--strategy", default="badge")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", default="reports/runs-archopt")
    args = parser.parse_args()
    rows = []
    for arch in args.archs:
        for seed in args.seeds:
            config = ExperimentConfig(dataset=args.dataset, arch=arch, strategy=args.strategy, seed=seed,
                                      out_dir=args.out, progress=False)
            start = time.perf_counter()
            history = run_experiment(config).history
            last = history.iloc[-1]
            rows.append({"arch": arch, "seed": seed, "final_accuracy": last.test_accuracy,
                         "n_labelled": last.n_labelled, "wall_seconds": time.perf_counter() - start,
                         "fit_seconds": history.fit_seconds.sum(), "query_seconds": history.query_seconds.sum(),
                         "final_n_params": last.n_params})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dataset {args.dataset}, strategy {args.strategy}")
    print(table.to_string(index=False))
    print(table.groupby("arch", sort=False)[["final_accuracy", "wall_seconds"]].mean().to_string())


if __name__ == "__main__":
    main()
