"""The cost of archdal's `fit` against a bare PyTorch training loop: same model, data, batches and steps.

Run on demand, not in CI (about five minutes on 2 cores):

    python bench/training.py                       # cnn and resnet18, mnist5k (200 labels, 400 validation), 3 repeats
    python bench/training.py --archs cnn --repeats 5
    python bench/training.py --accuracy-labels      # skip the accuracy check (no sizes)

The bare loop is what one writes by hand: the same initial weights, SGD with momentum 0.9 and weight decay,
the same learning rate per step (warm-up then cosine), the same index batches (archdal's balanced batches
from the same generator), forward, cross-entropy, backward, step. Nothing else: no validation, no best-weight
bookkeeping, no checks. A short warm-up call precedes the first timing, and the three calls take turns going
first. `fit` runs the same number of steps (`patience` large enough that early stopping
never ends it) without a validation set, and with the validation set the loop gives it. Each timing is the
process CPU time of one call with one torch thread (the machines are shared and noisy; CPU time is not
inflated by waiting for a core), repeated; the table gives the median ratio to the bare loop of the same
repeat and the range over repeats. Target of issue 14: fit/bare <= 1.10 with validation on.

`fit` validates once per period by default (`val_every=1`); `val_every="auto"` validates as rarely as keeps
the validation images within 5 % of the images trained on. Its effect on accuracy is the second table: the
loop's own training of the cnn (at least 500 steps, patience 20, lr 0.03, batch 32) on 40, 200 and 1,000
mnist5k labels with the same 400 validation images, 3 seeds, test accuracy with each setting.
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
    p.add_argument("--steps", type=int, nargs="+", default=[500, 100], help="steps per arch (resnet18 is slow on a CPU)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
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
import torch.nn.functional as F  # noqa: E402

from archdal.data import load_dataset  # noqa: E402
from archdal.models import make_model  # noqa: E402
from archdal.train import _batches, evaluate, fit, lr_multiplier, make_optimizers, plan_budget  # noqa: E402

torch.set_num_threads(1)


def bare_loop(model, x, y, steps: int, lr: float = 0.03, weight_decay: float = 5e-4, seed: int = 0):
    "The hand-written loop: same optimiser, schedule and batches as `fit`, nothing else."
    (optimiser,) = make_optimizers(model, "sgd", lr, weight_decay)
    budget = plan_budget(len(x), ARGS.batch_size, 1, steps, 25)
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(len(x), ARGS.batch_size, generator, torch.device("cpu"))
    model.train()
    for step in range(budget.steps):
        for group in optimiser.param_groups: group["lr"] = lr * lr_multiplier(step, budget.steps, budget.period, "cosine")
        idx = next(batches)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return budget.steps


def cpu_seconds(call) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def accuracy_table(data, vx, vy, pool: np.ndarray) -> pd.DataFrame | None:
    "Test accuracy and CPU seconds of the loop's cnn training with `val_every` 1 and 'auto', per labelled-set size."
    if not ARGS.accuracy_labels: return None
    rows = []
    for n in ARGS.accuracy_labels:
        for seed in range(ARGS.seeds):
            lab = np.random.default_rng(100 + seed).choice(pool, n, replace=False)
            for val_every in (1, "auto"):
                torch.manual_seed(seed)
                model = make_model("cnn", data.in_shape, data.n_classes, 0.25)
                start = time.process_time()
                fit(model, data.train_x[lab], data.train_y[lab], vx, vy, batch_size=32, seed=seed, device="cpu",
                    val_every=val_every)
                rows.append(dict(labels=n, seed=seed, val_every=str(val_every), cpu_s=time.process_time() - start,
                                 test=evaluate(model, data.test_x, data.test_y, device="cpu")["accuracy"]))
                print(rows[-1], flush=True)
    cells = pd.DataFrame(rows).groupby(["labels", "val_every"]).agg(
        mean=("test", "mean"), sd=("test", "std"), cpu=("cpu_s", "mean"))
    cells["test accuracy"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(cells["mean"], cells["sd"].fillna(0))]
    table = cells[["test accuracy", "cpu"]].rename(columns={"cpu": "cpu s"}).round(1).unstack("val_every")
    table.columns = [f"{what}, {'every period' if how == '1' else 'auto'}" for what, how in table.columns]
    return table


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
            calls = {"bare": lambda: bare_loop(model(), x, y, steps), "no_val": lambda: fit(model(), x, y, **options),
                     "with_val": lambda: fit(model(), x, y, vx, vy, **options),
                     "auto": lambda: fit(model(), x, y, vx, vy, **options, val_every="auto")}
            if repeat == 0: bare_loop(model(), x, y, 30)  # warm up (allocator, kernels) before the first timing
            names = list(calls)[repeat % 4:] + list(calls)[:repeat % 4]  # the calls take turns going first
            seconds = {name: cpu_seconds(calls[name]) for name in names}
            rows.append(dict(arch=arch, repeat=repeat, steps=plan_budget(len(x), ARGS.batch_size, 1, steps, 25).steps,
                             bare_s=seconds["bare"], fit_s=seconds["no_val"], fit_val_s=seconds["with_val"],
                             fit_auto_s=seconds["auto"]))
            print(rows[-1], flush=True)
    runs = pd.DataFrame(rows).assign(no_val=lambda d: d.fit_s / d.bare_s, with_val=lambda d: d.fit_val_s / d.bare_s,
                                     auto=lambda d: d.fit_auto_s / d.bare_s)
    spread = lambda r: f"{r.median():.2f} ({r.min():.2f}-{r.max():.2f})"
    summary = runs.groupby("arch", sort=False).agg(
        steps=("steps", "first"), bare_cpu_s=("bare_s", "median"), fit_no_validation=("no_val", spread),
        fit_validation_every_period=("with_val", spread), fit_val_every_auto=("auto", spread)).round(2)
    every, auto = runs.with_val.median(), runs.auto.median()
    accuracy = accuracy_table(data, vx, vy, order[ARGS.labels + ARGS.val:])
    parts = ["# fit against a bare PyTorch loop",
             f"Written by `python bench/training.py` ({ARGS.dataset}, {ARGS.labels} labels, {ARGS.val} validation images, "
             f"batch {ARGS.batch_size}, {ARGS.repeats} repeats, one thread, process CPU time). Ratios: median over "
             f"repeats (range). See the script's docstring.",
             f"Target (issue 14): fit/bare <= 1.10 with validation on. Median over all runs: validating every "
             f"period (the default) **{every:.2f}** ({'met' if every <= 1.10 else 'missed'}); `val_every='auto'` "
             f"**{auto:.2f}** ({'met' if auto <= 1.10 else 'missed'}).",
             markdown(summary),
             *([f"Test accuracy of the cnn with the loop's training, validating every period or `auto` "
                f"(mean ± sd over {ARGS.seeds} seeds; the labelled images are drawn per seed, the validation set is fixed):",
                markdown(accuracy)] if accuracy is not None else []),
             markdown(runs.round(3), index=False)]
    write_report(Path(ARGS.out), parts)


if __name__ == "__main__":
    main()
