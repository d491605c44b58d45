"""Core-set's extra memory and time at a large pool, on Gaussian and on clustered features, with the hot-set bound.

Run on demand, not in CI (about five minutes on 2 cores):

    python bench/coreset_memory.py                  # 200,000 x 512, budget 1,000, 1,000 labelled
    python bench/coreset_memory.py --n 1000000      # the issue's 1M x 512 (a 2 GB pool; needs ~8 GB of RAM)

What it checks. `farthest_first` copies the rows of its hot set into a block. The hot set doubles each time it
runs out, and on data where each pick shrinks many distances it ran out often enough to copy most of the pool.
Examples are far-apart clusters of low intrinsic dimension: the issue measured 395 MB extra at 200k x 512 on
60 such clusters before the bound, about the pool's own size. Now `max_hot_bytes` (`archdal.strategies.HOT_SET_BYTES`, 256 MiB by default) bounds the copy. The copy
was also made before the previous one was freed, so two hot sets were alive at once. This script runs core-set
on the same pool without a bound (`max_hot_bytes` = 2**62), with the default one and with 64 MiB. It prints
the seconds, the peak extra resident memory of the call and whether the picks are the same, and writes
reports/coreset_memory.md.

The extra memory by design, for N pool rows of D float32 features: the hot copy (at most `max_hot_bytes`),
its distances and indices (12 bytes a hot row), two N-vectors (min_d, ||x||^2: 8N bytes), the top-k of the
pool (12 bytes per hot row) and one distance block of `CHUNK_SIZE` x `CHUNK_SIZE` floats (64 MiB) with its
minimum. At 1M x 512 that is 256 + 8 + 8 + 64 MiB plus small change: under 0.5 GB, against the 2 GB target.
The peak is measured as in bench/strategies.py (VmHWM reset through /proc/self/clear_refs, glibc's mmap
threshold fixed), in a process of its own.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reporting import markdown, measure, reexec_with_fixed_malloc, write_report  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200_000, help="pool size")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--labelled", type=int, default=1000)
    p.add_argument("--clusters", type=int, default=60, help="clusters of the clustered pool")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "reports", "coreset_memory.md"))
    return p.parse_args(argv)


ARGS = parse_args()
reexec_with_fixed_malloc(ARGS.threads)

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from archdal.strategies import HOT_SET_BYTES, farthest_first, nearest_centres, sq_norms  # noqa: E402


def pools(n: int, d: int, labelled: int, clusters: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (pool, labelled) features: Gaussian, and `clusters` far-apart clusters, each a 2-d Gaussian sheet in a
    random plane of the D dimensions (features of a trained network lie near such low-dimensional pieces), half of
    them without a labelled point. There one pick shrinks the distances of many points at once, so hot sets run
    out and, unbounded, kept doubling."""
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(n + labelled, d, generator=g)
    centres = torch.randn(clusters, d, generator=g) * 10
    planes = torch.linalg.qr(torch.randn(clusters, d, 2, generator=g)).Q.transpose(1, 2)  # clusters x 2 x D, orthonormal
    # the labelled set covers half the clusters, as after the first rounds of a run: each uncovered cluster is a
    # block of points all far from every centre, which the first pick in it brings close at once
    members = torch.cat([torch.randint(clusters, (n,), generator=g), torch.randint(clusters // 2, (labelled,), generator=g)])
    clustered = centres[members] + torch.einsum("nk,nkd->nd", torch.randn(n + labelled, 2, generator=g), planes[members])
    return {"gaussian": (gaussian[:n], gaussian[n:]), f"{clusters} clusters": (clustered[:n], clustered[n:])}


def coreset_picks(pool: torch.Tensor, labelled: torch.Tensor, max_hot_bytes: int) -> torch.Tensor:
    x_sq = sq_norms(pool)
    return farthest_first(pool, nearest_centres(pool, labelled, x_sq)[0], ARGS.budget, x_sq=x_sq, max_hot_bytes=max_hot_bytes)


def main():
    rows = []
    for name, (pool, labelled) in pools(ARGS.n, ARGS.dim, ARGS.labelled, ARGS.clusters).items():
        picks = {}
        for bound, max_hot_bytes in (("unbounded", 2**62), (f"{HOT_SET_BYTES // 2**20} MiB (default)", HOT_SET_BYTES),
                                     ("64 MiB", 64 * 2**20)):
            seconds, peak_mb, picks[bound] = measure(lambda: coreset_picks(pool, labelled, max_hot_bytes), ARGS.threads,
                                                     repeats=1)
            rows.append({"pool": name, "hot-set bound": bound, "seconds": round(seconds, 2), "peak extra MB": round(peak_mb),
                         "pool MB": round(pool.nbytes / 2**20)})
            print(rows[-1], flush=True)
        reference = picks["unbounded"]
        for row, p in zip(rows[-len(picks):], picks.values()):
            differ = (p != reference).nonzero()
            row["picks as unbounded"] = "all" if not len(differ) else (
                f"first {int(differ[0])}; {len(set(p.tolist()) & set(reference.tolist()))} shared")
    table = pd.DataFrame(rows)
    worst = table[table["hot-set bound"].str.contains("default")]["peak extra MB"].max()
    parts = ["# Core-set memory with the hot-set bound",
             f"Written by `python bench/coreset_memory.py --n {ARGS.n}` ({ARGS.n:,} x {ARGS.dim} float32, budget "
             f"{ARGS.budget}, {ARGS.labelled} labelled, {ARGS.threads} thread). Peak extra memory is the call's "
             f"resident-set peak minus the resident size before it. See the script's docstring.",
             f"Target: extra memory bounded whatever the data (by design under 2 GB at 1M x 512), same picks. "
             f"Worst measured with the default bound: **{worst} MB**; picks identical: "
             f"**{'yes' if (table['picks as unbounded'] == 'all').all() else 'NO'}**.",
             "Before this change (the same script on the same data, with the code of commit c9d699a, where a hot set "
             "was copied before the previous one was freed and doubled without bound): 383 MB at 60 clusters, "
             "40 MB on the Gaussian pool. At 200k rows an unbounded hot set peaks at 128k rows (256 MB), the "
             "default bound, so the 64 MiB row shows the bound at work; at 1M x 512 an unbounded one would reach "
             "512k rows (1 GB) where the default keeps 256 MiB.",
             "Picks: the traversal is exact in exact arithmetic (the strategies notebook checks it in float64 for "
             "every hot-set size, a 4-row bound included). In float32 the hot update (a matrix-vector product) and "
             "the refresh of the cold points (a blocked matrix product) round differently, so where two distances "
             "tie to float32 precision, as inside these 2-d sheets, a bound that changes when refreshes happen can "
             "break a tie the other way; the default bound, not binding here, gives today's picks.",
             markdown(table, index=False)]
    write_report(Path(ARGS.out), parts)


if __name__ == "__main__":
    main()
