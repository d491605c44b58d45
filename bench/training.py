"""The cost of archdal's `fit` against a bare PyTorch training loop: same model, data, batches and steps.

Run on demand, not in CI (about 25 minutes on 2 cores):

    python bench/training.py                       # cnn and resnet18, mnist5k (200 labels, 400 validation), 5 repeats
    python bench/training.py --archs cnn --repeats 5
    python bench/training.py --accuracy-labels      # skip the accuracy check (no sizes)

The bare loop is bench/bare.py's `bare_fit`, what one writes by hand: the same initial weights, SGD with
momentum 0.9 and weight decay, the same learning rate per step (warm-up then cosine), the same index batches
(archdal's balanced batches from the same generator), forward, cross-entropy, backward, step. Nothing else: no
validation, no best-weight bookkeeping, no checks. A short warm-up call precedes the first timing, and the four
calls take turns going first. `fit` runs the same number of steps (`patience` large enough that early stopping
never ends it) without a validation set, and with the validation set the loop gives it, validating every
period (`val_every=1`) and as the default does (`val_every="auto"`: as rarely as keeps the validation images
within 5 % of the images trained on). Each timing is the process CPU time of one call with one torch thread
(the machines are shared and noisy; CPU time is not inflated by waiting for a core), repeated; the table gives
the ratio of the fastest calls (noise only adds time) and the median and range of the ratios within a repeat. Target of issue 14: fit/bare
<= 1.10 with validation on.

The second table is the effect on accuracy of how and where validation happens: the loop's own training of
the cnn (at least 500 steps, patience 20, lr 0.03, batch 32) on 40, 200 and 1,000 mnist5k labels, 3 seeds:
a held-out set of 400 more labelled images (validated every period, or `auto`), 10 % or 20 % of the labels
carved out for validation (the loop's `val_source="labelled"`), or no validation at all.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reporting import markdown, write_report  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--val", type=int, default=400, help="validation images (the loop's 10 % of mnist5k's 4,000 is 400)")
    p.add_argument("--archs", nargs="+", default=["cnn", "resnet18"])
    p.add_argument("--steps", type=int, nargs="+", default=[500, 50], help="steps per arch (resnet18 is slow on a CPU)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--accuracy-labels", type=int, nargs="*", default=[40, 200, 1000])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "reports", "training.md"))
    return p.parse_args(argv)


ARGS = parse_args()
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from archdal.data import load_dataset, stratified_subset  # noqa: E402
from archdal.models import make_model  # noqa: E402
from archdal.train import evaluate, fit, plan_budget  # noqa: E402
from bare import bare_fit  # noqa: E402

torch.set_num_threads(1)


def cpu_seconds(call) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


VALIDATIONS = {  # name: (where the validation images come from, val_every)
    "held out, every period": ("held_out", 1), "held out, auto (default)": ("held_out", "auto"),
    "10 % of the labels": (0.1, "auto"), "20 % of the labels": (0.2, "auto"), "none (last weights)": (None, "auto")}


def accuracy_table(data, vx, vy, pool: np.ndarray) -> pd.DataFrame | None:
    "Test accuracy and CPU seconds of the loop's cnn training under each of `VALIDATIONS`, per labelled-set size."
    if not ARGS.accuracy_labels: return None
    rows, y = [], data.train_y.numpy()
    for n in ARGS.accuracy_labels:
        for seed in range(ARGS.seeds):
            lab = np.random.default_rng(100 + seed).choice(pool, n, replace=False)
            for name, (source, val_every) in VALIDATIONS.items():
                train, val_x, val_y = lab, vx, vy
                if source is None: val_x = val_y = None
                elif source != "held_out":  # the loop's val_source="labelled": a stratified share of the labels
                    carved = stratified_subset(lab, y, int(source * n + 0.5), np.random.default_rng(seed))
                    train, val_x, val_y = np.setdiff1d(lab, carved), data.train_x[carved], data.train_y[carved]
                torch.manual_seed(seed)
                model = make_model("cnn", data.in_shape, data.n_classes, 0.25)
                start = time.process_time()
                fit(model, data.train_x[train], data.train_y[train], val_x, val_y, batch_size=32, seed=seed,
                    device="cpu", val_every=val_every)
                rows.append(dict(labels=n, seed=seed, validation=name, cpu_s=time.process_time() - start,
                                 test=evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"]))
                print(rows[-1], flush=True)
    cells = pd.DataFrame(rows).groupby(["labels", "validation"], sort=False).agg(
        mean=("test", "mean"), sd=("test", "std"), cpu=("cpu_s", "mean"))
    cells["cell"] = [f"{m:.3f} ± {s:.3f} ({c:.0f} s)" for m, s, c in zip(cells["mean"], cells["sd"].fillna(0), cells["cpu"])]
    return cells["cell"].unstack("validation")[list(VALIDATIONS)]


def main():
    data = load_dataset(ARGS.dataset)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.train_y))
    lab, val = order[:ARGS.labels], order[ARGS.labels:ARGS.labels + ARGS.val]
    x, y, vx, vy = data.train_x[lab], data.train_y[lab], data.train_x[val], data.train_y[val]
    rows = []
    for arch, steps in zip(ARGS.archs, ARGS.steps):
        fresh = lambda: make_model(arch, data.in_shape, data.n_classes, 0.25)
        for repeat in range(ARGS.repeats):
            torch.manual_seed(repeat)
            initial = fresh().state_dict()
            model = lambda: (m := fresh(), m.load_state_dict(initial))[0]
            options = dict(epochs=1, min_steps=steps, patience=10**6, batch_size=ARGS.batch_size, device="cpu", seed=0)
            calls = {"bare": lambda: bare_fit(model(), x, y, steps, ARGS.batch_size),
                     "no_val": lambda: fit(model(), x, y, **options),
                     "with_val": lambda: fit(model(), x, y, vx, vy, **options, val_every=1),
                     "auto": lambda: fit(model(), x, y, vx, vy, **options, val_every="auto")}
            if repeat == 0: bare_fit(model(), x, y, 30, ARGS.batch_size)  # warm up (allocator, kernels) before timing
            names = list(calls)[repeat % 4:] + list(calls)[:repeat % 4]  # the calls take turns going first
            seconds = {name: cpu_seconds(calls[name]) for name in names}
            rows.append(dict(arch=arch, repeat=repeat, steps=plan_budget(len(x), ARGS.batch_size, 1, steps, 25).steps,
                             bare_s=seconds["bare"], fit_s=seconds["no_val"], fit_val_s=seconds["with_val"],
                             fit_auto_s=seconds["auto"]))
            print(rows[-1], flush=True)
    runs = pd.DataFrame(rows).assign(no_val=lambda d: d.fit_s / d.bare_s, with_val=lambda d: d.fit_val_s / d.bare_s,
                                     auto=lambda d: d.fit_auto_s / d.bare_s)
    # noise on a shared machine only adds time: the ratio of the fastest repeats is the estimate, the per-repeat
    # ratios (median, range) show the noise
    columns = {"no_val": ("fit_s", "fit_no_validation"), "with_val": ("fit_val_s", "fit_validation_every_period"),
               "auto": ("fit_auto_s", "fit_val_every_auto (default)")}
    summary, best = [], {}
    for arch, part in runs.groupby("arch", sort=False):
        row = {"arch": arch, "steps": part.steps.iloc[0], "bare_cpu_s (fastest)": round(part.bare_s.min(), 2)}
        for ratio, (time_column, name) in columns.items():
            best[arch, ratio] = part[time_column].min() / part.bare_s.min()
            row[name] = (f"{best[arch, ratio]:.2f} (per repeat {part[ratio].median():.2f}, "
                         f"{part[ratio].min():.2f}-{part[ratio].max():.2f})")
        summary.append(row)
    summary = pd.DataFrame(summary)
    every, auto = (max(v for (_, r), v in best.items() if r == ratio) for ratio in ("with_val", "auto"))
    accuracy = accuracy_table(data, vx, vy, order[ARGS.labels + ARGS.val:])
    parts = ["# fit against a bare PyTorch loop",
             f"Written by `python bench/training.py` ({ARGS.dataset}, {ARGS.labels} labels, {ARGS.val} validation images, "
             f"batch {ARGS.batch_size}, {ARGS.repeats} repeats, one thread, process CPU time). Ratio: fastest `fit` "
             f"over fastest bare loop (noise on a shared machine only adds time); in brackets the median and range of "
             f"the ratios within a repeat. See the script's docstring.",
             f"Target (issue 14): fit/bare <= 1.10 with validation on. Worst architecture: `val_every='auto'` "
             f"(the default) **{auto:.2f}** ({'met' if auto <= 1.10 else 'missed'}); validating every period "
             f"**{every:.2f}** ({'met' if every <= 1.10 else 'missed'}).",
             markdown(summary, index=False),
             *([f"Test accuracy of the cnn with the loop's training by where validation comes from (mean ± sd over "
                f"{ARGS.seeds} seeds, CPU seconds of a fit in brackets; the labelled images are drawn per seed; the "
                f"held-out set is {ARGS.val} images more, labelled outside the budget; a share of the labels is the "
                f"loop's `val_source='labelled'`, the rest trains; none trains on all labels for the whole budget "
                f"and keeps the last weights):",
                markdown(accuracy)] if accuracy is not None else []),
             markdown(runs.round(3), index=False)]
    write_report(Path(ARGS.out), parts)


if __name__ == "__main__":
    main()
