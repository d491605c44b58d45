"""Time archdal's query strategies against DISTIL (decile-distil) and BAAL on identical inputs.

Run on demand, not in CI (a full run takes about 10 minutes on 2 cores):

    python bench/strategies.py                      # pools of 10,000 and 50,000, budget 1,000
    python bench/strategies.py --sizes 10000 --full # DISTIL's BADGE run to the end instead of extrapolated
    python bench/strategies.py --model-based        # ALFA-Mix, EPIG (vs BAAL) and DFAL (vs DISTIL): its own section

It prints one table and writes it, with the machine it ran on, to reports/benchmarks.md.

What is timed. Each strategy of each library runs in this one process on the same inputs: a seeded
Gaussian-mixture pool of N points with 512-d non-negative ("post-ReLU") features, logits for 10 classes,
20 MC-dropout logit samples and a labelled set of 100 points. archdal gets `softmax(logits)` and the
features as `QueryInputs`; DISTIL gets a table-lookup network over the same logits and features
(bench/peers.py), BAAL the same probability arrays in its [N, C, S] layout (made before timing). A timing
covers the selection only: archdal's `query`; DISTIL's `select` (its gradient embeddings for BADGE
included); BAAL's heuristic call (ranking) and the top `budget` positions. Fast calls are repeated and
the minimum is reported.

DISTIL's BADGE at 50,000 points takes about a quarter of an hour (about 0.8 s per pick: a pairwise
distance over the materialised 50,000 x 5,120 gradient embeddings and a Python loop over the pool per
pick). Unless --full is given, it is measured as DISTIL's own `get_grad_embedding` plus its `init_centers`
for k1 and k2 picks (--badge-picks), and extrapolated linearly to the budget: each pick does the same
work, so the time is fixed cost + picks x slope. The table marks such numbers with "~".

Peak memory. The kernel's peak resident set size of this process (VmHWM) is reset before each call
through /proc/self/clear_refs, and "peak MB" is VmHWM after the call minus the resident size before it:
the extra memory the call needed at its worst, whatever allocated it (numpy, torch, scipy). The script
re-executes itself with glibc's mmap and trim thresholds fixed at 4 MiB (by default glibc raises them up
to 32 MiB and 64 MiB as a program runs), so freed buffers larger than that go back to the system at once
and an earlier call's freed memory can hide at most a few MiB of a later call's allocations. (A lower
threshold would make every 256 KiB temporary an mmap/munmap pair and distort the timings.) tracemalloc
would see numpy only, not torch.

Threads. Every library runs with the same number of BLAS/OpenMP threads (--threads, default 1): on a
small shared machine two threads make every pick wait for a busy core and times become noise.

The "one pass per pick" bound of core-set is the time of `budget` fused passes over the pool, each a
matrix-vector product with the squared-norm trick into a preallocated vector and an in-place minimum:
what a greedy k-centre that touches every point at every pick cannot beat.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="pool sizes N")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--dim", type=int, default=512, help="feature dimension D")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--mc-samples", type=int, default=20)
    p.add_argument("--labelled", type=int, default=100, help="labelled-set size for core-set")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads for every library")
    p.add_argument("--strategies", nargs="+", default=["coreset", "badge", "bald", "entropy", "margin"])
    p.add_argument("--full", action="store_true", help="run DISTIL's BADGE to the full budget (slow)")
    p.add_argument("--badge-picks", type=int, nargs=2, default=[10, 30], metavar=("K1", "K2"),
                   help="picks of DISTIL's BADGE measured for the extrapolation")
    p.add_argument("--large", type=int, default=200_000, help="pool size of the core-set memory check (0: skip)")
    p.add_argument("--large-labelled", type=int, default=1000)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "reports", "benchmarks.md"))
    p.add_argument("--model-based", action="store_true",
                   help="time only ALFA-Mix, EPIG and DFAL (they need a head, targets or a network) against their peers, "
                        "into this script's own marked section of --out; the main table stays")
    p.add_argument("--epig-targets", type=int, default=100, help="EPIG's target points (drawn from the pool)")
    p.add_argument("--dfal-n", type=int, default=200, help="pool size (28 x 28 images) for DFAL against DISTIL's DeepFool")
    p.add_argument("--dfal-budget", type=int, default=30)
    return p.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reporting import measure as measure_with, reexec_with_fixed_malloc, write_keeping_sections, write_section  # noqa: E402

reexec_with_fixed_malloc(ARGS.threads)  # fix threads and malloc before numpy/torch load

import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import baal_layout, distil_deepfool, distil_strategy, peer_versions  # noqa: E402

from archdal.strategies import QueryInputs, query  # noqa: E402

# Importing DISTIL raises torch's thread count (through one of its dependencies): import the peers first,
# then fix the threads, and fix them again before every measurement.
for _peer in ("distil.active_learning_strategies", "baal.active.heuristics"):
    try: __import__(_peer)
    except ImportError: pass
torch.set_num_threads(ARGS.threads)
LOAD_AT_START = Path("/proc/loadavg").read_text().split()[0]


# ---------------------------------------------------------------- measuring

def measure(fn, repeat_below: float = 2.0, repeats: int = 3):
    "(seconds, peak extra MB, result) of `fn()` with this run's threads (bench/reporting.py)."
    return measure_with(fn, ARGS.threads, repeat_below, repeats)


def as_list(picks) -> list[int]:
    return [int(i) for i in (picks.tolist() if hasattr(picks, "tolist") else picks)]


# ---------------------------------------------------------------- inputs

def make_pool(n: int, seed: int = 0):
    "A seeded Gaussian-mixture pool: features (N x D), labelled features, logits, MC logits (float32)."
    g = torch.Generator().manual_seed(seed)
    d, c, s, m = ARGS.dim, ARGS.classes, ARGS.mc_samples, ARGS.labelled
    means = torch.randn(c, d, generator=g)
    classes = torch.randint(c, (n + m,), generator=g)
    features = (means[classes] + torch.randn(n + m, d, generator=g)).relu_()
    head = torch.randn(d, c, generator=g) * (2 / math.sqrt(d))
    logits = features[:n] @ head
    logits -= logits.mean(dim=1, keepdim=True)
    mc_logits = logits + 0.5 * torch.randn(s, n, c, generator=g)
    return features[:n].contiguous(), features[n:].contiguous(), logits, mc_logits


# ---------------------------------------------------------------- the libraries

def archdal_runner(name, features, labelled, logits, mc_logits):
    inputs = QueryInputs(probs=torch.softmax(logits, dim=1), mc_probs=torch.softmax(mc_logits, dim=2),
                         embeddings=features, labelled_embeddings=labelled)
    return lambda: query(name, inputs, ARGS.budget, torch.Generator().manual_seed(0))


def distil_runner(name, features, labelled, logits, mc_logits):
    from distil.active_learning_strategies import BADGE, BALDDropout, CoreSet, EntropySampling, MarginSampling
    cls = dict(entropy=EntropySampling, margin=MarginSampling, bald=BALDDropout, coreset=CoreSet, badge=BADGE)[name]
    strategy = distil_strategy(cls, logits, features, labelled, mc_logits=mc_logits if name == "bald" else None,
                               n_drop=ARGS.mc_samples)
    def run():
        np.random.seed(0)
        return strategy.select(ARGS.budget)
    return run, strategy


def baal_runner(name, features, labelled, logits, mc_logits):
    from baal.active.heuristics import BALD, Entropy, Margin
    if name == "bald": heuristic, predictions = BALD(), baal_layout(torch.softmax(mc_logits, dim=2))
    elif name in ("entropy", "margin"):
        heuristic = dict(entropy=Entropy, margin=Margin)[name]()
        predictions = torch.softmax(logits, dim=1).numpy()
    else: return None
    return lambda: heuristic(predictions)[:ARGS.budget]


def distil_badge_extrapolated(strategy):
    "DISTIL's BADGE: its gradient embeddings, then init_centers for k1 and k2 picks, extrapolated to the budget."
    from distil.active_learning_strategies.badge import init_centers
    k1, k2 = ARGS.badge_picks
    t_emb, mem_emb, emb = measure(lambda: strategy.get_grad_embedding(strategy.unlabeled_x, bias_grad=False))
    emb = emb.cpu().numpy()
    np.random.seed(0)
    t1, mem1, _ = measure(lambda: init_centers(emb, k1, "cpu"), repeat_below=0)
    np.random.seed(0)
    t2, mem2, _ = measure(lambda: init_centers(emb, k2, "cpu"), repeat_below=0)
    slope = (t2 - t1) / (k2 - k1)
    seconds = t_emb + t1 + slope * (ARGS.budget - k1)
    peak = max(mem_emb, emb.nbytes / 2**20 + max(mem1, mem2))
    note = (f"DISTIL BADGE at N={len(emb)}: gradient embeddings {t_emb:.1f} s, init_centers {t1:.1f} s for {k1} "
            f"picks and {t2:.1f} s for {k2}: {slope:.3f} s per pick, so ~{seconds:.0f} s for {ARGS.budget}")
    return seconds, peak, note


def one_pass_bound(features: torch.Tensor, passes: int = 100) -> float:
    "Seconds for `budget` fused passes (addmv with the squared-norm trick + in-place minimum) over the pool."
    sq = (features * features).sum(dim=1)
    buf, min_d = torch.empty_like(sq), torch.full_like(sq, math.inf)
    def run():
        for i in range(passes):
            torch.addmv(sq, features, features[i], alpha=-2, out=buf)
            torch.minimum(min_d, buf, out=min_d)
    return measure(run)[0] / passes * ARGS.budget


# ---------------------------------------------------------------- report

def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M).group(1))
    versions = peer_versions()
    return {"CPU": model.group(1).strip() if model else platform.processor(),
            "cores": f"{os.cpu_count()} (benchmark threads: {ARGS.threads})",
            "memory": f"{mem_kb / 2**20:.0f} GiB",
            "load average (1 min) at the end": Path("/proc/loadavg").read_text().split()[0]
            + f" (at the start: {LOAD_AT_START}; above the thread count means other work shared the cores)",
            "Python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "decile-distil": versions["decile-distil"], "baal": versions["baal"]}


def fmt_s(x, approx=False):
    if x is None: return "–"
    return ("~" if approx else "") + (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def main():
    rows, notes, bounds, checks = [], [], {}, []
    for n in ARGS.sizes:
        features, labelled, logits, mc_logits = make_pool(n)
        print(f"\nN = {n:,}  (D = {ARGS.dim}, C = {ARGS.classes}, S = {ARGS.mc_samples}, budget {ARGS.budget})",
              flush=True)
        for name in ARGS.strategies:
            t_a, m_a, picks_a = measure(archdal_runner(name, features, labelled, logits, mc_logits))
            picks_a = as_list(picks_a)
            row = dict(strategy=name, n=n, archdal=t_a, archdal_mb=m_a)
            run, strategy = distil_runner(name, features, labelled, logits, mc_logits)
            if name == "badge" and not ARGS.full:
                row["distil"], row["distil_mb"], note = distil_badge_extrapolated(strategy)
                row["distil_approx"] = True
                notes.append(note)
            else:
                t_d, m_d, picks_d = measure(run)
                row.update(distil=t_d, distil_mb=m_d)
                if name != "badge": row["same_distil"] = len(set(picks_a) & set(as_list(picks_d)))
            del strategy, run
            baal = baal_runner(name, features, labelled, logits, mc_logits)
            if baal is not None:
                t_b, m_b, picks_b = measure(baal)
                row.update(baal=t_b, baal_mb=m_b, same_baal=len(set(picks_a) & set(as_list(picks_b))))
            rows.append(row)
            print(f"  {name:8s} archdal {fmt_s(t_a)} s ({m_a:.0f} MB)  DISTIL {fmt_s(row['distil'], row.get('distil_approx'))} s "
                  f"(x{row['distil'] / t_a:.1f})" + (f"  BAAL {fmt_s(row['baal'])} s (x{row['baal'] / t_a:.1f})"
                                                     if "baal" in row else ""), flush=True)
        if "coreset" in ARGS.strategies:
            bounds[n] = one_pass_bound(features)
            print(f"  coreset one-pass-per-pick bound: {bounds[n]:.2f} s", flush=True)
        del features, labelled, logits, mc_logits
    large = None
    if ARGS.large:
        g = torch.Generator().manual_seed(1)
        pool, lab = torch.randn(ARGS.large, ARGS.dim, generator=g), torch.randn(ARGS.large_labelled, ARGS.dim, generator=g)
        inputs = QueryInputs(embeddings=pool, labelled_embeddings=lab)
        t, mb, _ = measure(lambda: query("coreset", inputs, ARGS.budget, torch.Generator().manual_seed(0)))
        large = (t, mb, pool.nbytes / 2**20)
        print(f"\ncoreset at {ARGS.large:,} x {ARGS.dim} ({ARGS.large_labelled} labelled): {t:.2f} s, "
              f"peak extra memory {mb:.0f} MB (the pool itself: {large[2]:.0f} MB)")
        del pool, lab, inputs

    # targets of the issue
    def row_of(name, n): return next((r for r in rows if r["strategy"] == name and r["n"] == n), None)
    top = max(ARGS.sizes)
    if (r := row_of("coreset", top)):
        checks.append(("core-set ≥ 5× faster than DISTIL", f"N={top:,}", r["distil"] / r["archdal"] >= 5,
                       f"{r['distil'] / r['archdal']:.1f}×"))
        checks.append(("core-set within 1.5× of the one-pass bound", f"N={top:,}", r["archdal"] <= 1.5 * bounds[top],
                       f"{r['archdal']:.2f} s vs bound {bounds[top]:.2f} s ({r['archdal'] / bounds[top]:.2f}×)"))
    if (r := row_of("badge", top)):
        checks.append(("BADGE ≥ 20× faster than DISTIL", f"N={top:,}", r["distil"] / r["archdal"] >= 20,
                       f"{r['distil'] / r['archdal']:.0f}×" + (" (DISTIL extrapolated)" if r.get("distil_approx") else "")))
    for n in ARGS.sizes:
        if (r := row_of("bald", n)) and "baal" in r:
            checks.append(("BALD at least as fast as BAAL's", f"N={n:,}", r["archdal"] <= r["baal"],
                           f"{r['baal'] / r['archdal']:.1f}× faster"))
    if large:
        checks.append(("core-set peak extra memory < 2 GB", f"N={ARGS.large:,}", large[1] < 2048, f"{large[1]:.0f} MB"))
    print("\nTargets:")
    for what, where, ok, value in checks: print(f"  {'met ' if ok else 'MISSED'}  {what} ({where}): {value}")
    write_report(rows, bounds, large, notes, checks)


def write_report(rows, bounds, large, notes, checks):
    m = machine()
    lines = ["# Strategy benchmarks", "",
             f"Written by `python bench/strategies.py` on {datetime.date.today().isoformat()}; see the script's docstring "
             "for what is timed and how memory is measured. Regenerate it on demand; it is not part of CI.", "",
             "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in m.items()], "",
             f"Inputs: a seeded Gaussian-mixture pool of N points, D = {ARGS.dim} non-negative features, "
             f"C = {ARGS.classes} classes, S = {ARGS.mc_samples} MC-dropout samples, {ARGS.labelled} labelled points, "
             f"budget {ARGS.budget}; every library gets the same logits, probabilities and features.", "",
             "| strategy | N | archdal s | DISTIL s | DISTIL / archdal | BAAL s | BAAL / archdal | "
             "peak MB archdal | peak MB DISTIL | peak MB BAAL | same picks as DISTIL | same picks as BAAL |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        approx = r.get("distil_approx", False)
        lines.append(
            f"| {r['strategy']} | {r['n']:,} | {fmt_s(r['archdal'])} | {fmt_s(r['distil'], approx)} | "
            f"{'~' if approx else ''}{r['distil'] / r['archdal']:.1f}× | {fmt_s(r.get('baal'))} | "
            + (f"{r['baal'] / r['archdal']:.1f}× | " if "baal" in r else "– | ")
            + f"{r['archdal_mb']:.0f} | {'~' if approx else ''}{r['distil_mb']:.0f} | "
            + (f"{r['baal_mb']:.0f}" if "baal" in r else "–") + " | "
            + (f"{r['same_distil']}/{ARGS.budget}" if "same_distil" in r else "– (random)" if r["strategy"] == "badge" else "–")
            + " | " + (f"{r['same_baal']}/{ARGS.budget}" if "same_baal" in r else "–") + " |")
    lines += ["", "\"same picks\": how many of the budget's pool points both batches hold. Scores are computed in "
              "float32 by every library, each in its own order of operations, so points whose scores differ in the "
              "last bits can swap at the edge of the batch (tests/test_peer_agreement.py checks exact agreement "
              "where no near-ties exist). BADGE samples, so its batches differ by design. \"~\": extrapolated, "
              "see below.", ""]
    if bounds:
        lines += ["Core-set's one-pass-per-pick bound (budget × one fused addmv + in-place minimum over the pool): "
                  + ", ".join(f"N = {n:,}: {b:.2f} s" for n, b in bounds.items())
                  + ". archdal's core-set goes below it: its picks are exact, but it updates only a small hot set "
                    "of the farthest points per pick and refreshes the rest in blocked passes (see "
                    "`farthest_first` in nbs/03_strategies.ipynb).", ""]
    if large:
        lines += [f"Core-set at {ARGS.large:,} × {ARGS.dim} with {ARGS.large_labelled:,} labelled points: {large[0]:.2f} s, "
                  f"peak extra memory {large[1]:.0f} MB (the pool itself is {large[2]:.0f} MB).", ""]
    for note in notes: lines += [f"- {note} (extrapolated; `--full` runs it to the end).", ""]
    lines += ["## Targets", "", "| target | where | met | value |", "|---|---|---|---|"]
    lines += [f"| {w} | {where} | {'yes' if ok else '**no**'} | {v} |" for w, where, ok, v in checks]
    out = Path(ARGS.out)
    write_keeping_sections(out, "\n".join(lines))  # bench/gpu.py's section stays
    print(f"\nwrote {out.resolve()}")


# ---------------------------------------------------------------- strategies that need more than outputs

def model_based():
    """ALFA-Mix (a linear head and labelled labels; no peer installed), EPIG (against BAAL's `EPIG` on the same candidates
    and targets) and DFAL (against DISTIL's `AdversarialDeepFool` with archdal's `cnn` on random 28 x 28 images)."""
    from archdal.models import make_model
    from archdal.strategies import dfal, epig_score, top_scores
    rows = []
    for n in ARGS.sizes:
        features, labelled, logits, mc_logits = make_pool(n)
        g = torch.Generator().manual_seed(0)
        head = torch.nn.Linear(ARGS.dim, ARGS.classes)
        with torch.no_grad():
            head.weight.copy_(torch.linalg.lstsq(features[:2000], logits[:2000]).solution.T)
            head.bias.zero_()
        inputs = QueryInputs(probs=torch.softmax(head(features), dim=1).detach(), embeddings=features,
                             labelled_embeddings=labelled, head=head,
                             labelled_labels=torch.randint(ARGS.classes, (len(labelled),), generator=g))
        t_a, m_a, _ = measure(lambda: query("alfamix", inputs, ARGS.budget, torch.Generator().manual_seed(0)), repeats=1)
        rows.append(dict(strategy="alfamix", n=f"{n:,}", archdal=t_a, archdal_mb=m_a, peer="– (dal-toolbox is not installed)"))
        print(f"  alfamix N={n:,}: {fmt_s(t_a)} s", flush=True)
        mc = torch.softmax(mc_logits, dim=2)
        targets = mc[:, torch.randperm(n, generator=g)[:ARGS.epig_targets]]
        t_a, m_a, ours = measure(lambda: top_scores(epig_score(mc, targets), ARGS.budget))
        row = dict(strategy=f"epig ({ARGS.epig_targets} targets)", n=f"{n:,}", archdal=t_a, archdal_mb=m_a)
        try:
            from baal.active.heuristics import EPIG
            pool_b, targets_b = baal_layout(mc), baal_layout(targets)
            t_b, m_b, theirs = measure(lambda: np.argsort(-EPIG().compute_score(pool_b, targets_b), kind="stable")[:ARGS.budget])
            row.update(peer="BAAL EPIG", peer_s=t_b, peer_mb=m_b, same=f"{len(set(as_list(ours)) & set(as_list(theirs)))}/{ARGS.budget}")
        except ImportError: row["peer"] = "– (baal is not installed)"
        rows.append(row)
        print(f"  epig N={n:,}: {fmt_s(t_a)} s, BAAL {fmt_s(row.get('peer_s'))} s", flush=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = make_model("cnn", (1, 28, 28), 10).eval()
    x = torch.rand(ARGS.dfal_n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for overshoot in (0.02, 0.0):
        t_a, m_a, ours = measure(lambda: dfal(QueryInputs(pool_x=x, model=net), ARGS.dfal_budget, torch.Generator(),
                                              overshoot=overshoot), repeats=1)
        row = dict(strategy=f"dfal (50 iterations, overshoot {overshoot:g}, cnn)", n=f"{ARGS.dfal_n:,} (28 x 28)",
                   archdal=t_a, archdal_mb=m_a)
        print(f"  dfal N={ARGS.dfal_n}, overshoot {overshoot:g}: {fmt_s(t_a)} s", flush=True)
        if overshoot: rows.append(dict(row, peer="DISTIL has no overshoot: see the next row"))
    try:
        peer = distil_deepfool(net, x, max_iter=50)
        torch.set_num_threads(ARGS.threads)
        t_d, m_d, theirs = measure(lambda: peer.select(ARGS.dfal_budget), repeats=1)
        row.update(peer="DISTIL AdversarialDeepFool", peer_s=t_d, peer_mb=m_d,
                   same=f"{len(set(as_list(ours)) & set(as_list(theirs)))}/{ARGS.dfal_budget}")
    except ImportError: row["peer"] = "– (decile-distil is not installed)"
    rows.append(row)
    print(f"  dfal N={ARGS.dfal_n}: {fmt_s(t_a)} s, DISTIL {fmt_s(row.get('peer_s'))} s", flush=True)
    lines = ["## Strategies that need the model or a target set (`python bench/strategies.py --model-based`)", "",
             f"Written on {datetime.date.today().isoformat()}, {ARGS.threads} thread(s), load average "
             f"{Path('/proc/loadavg').read_text().split()[0]} at the end (at the start: {LOAD_AT_START}). ALFA-Mix and "
             f"EPIG on the main table's pools (D = {ARGS.dim}, C = {ARGS.classes}, S = {ARGS.mc_samples}, "
             f"{ARGS.labelled} labelled points with random labels, a linear head fitted to the logits, budget {ARGS.budget}; "
             f"EPIG's {ARGS.epig_targets} targets drawn from the pool, the same for BAAL, whose timing is its score call "
             f"and an argsort). DFAL on {ARGS.dfal_n} random 28 × 28 images with archdal's untrained `cnn`, budget "
             f"{ARGS.dfal_budget}: archdal with DeepFool's overshoot 0.02 (its default) and with DISTIL's settings (50 "
             "iterations, no overshoot). Without an overshoot a step lands on the linearised boundary, where the "
             "prediction often has not changed yet, so points stall and run all 50 iterations with tiny steps: that "
             "is why DeepFool overshoots. DISTIL 0.2.0 perturbs one image at a time and steps towards the last class "
             "other than the predicted one, not the nearest (its running minimum is never updated), so with 10 "
             "classes its picks differ by design; on two classes both agree (tests/test_peer_agreement.py).", "",
             "| strategy | N | archdal s | peer | peer s | peer / archdal | peak MB archdal | peak MB peer | same picks |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['peer_s'] / r['archdal']:.1f}×" if "peer_s" in r else "–"
        lines.append(f"| {r['strategy']} | {r['n']} | {fmt_s(r['archdal'])} | {r['peer']} | {fmt_s(r.get('peer_s'))} | "
                     f"{ratio} | {r['archdal_mb']:.0f} | " + (f"{r['peer_mb']:.0f}" if "peer_mb" in r else "–")
                     + f" | {r.get('same', '–')} |")
    write_section(Path(ARGS.out), "strategies", "\n".join(lines))
    print(f"\nwrote the model-based section of {Path(ARGS.out).resolve()}")


if __name__ == "__main__":
    model_based() if ARGS.model_based else main()
