"""GPU readiness: archdal's `fit` and `predict` against hand-written loops (images/s) under each compute option,
and the time of one paper-scale active-learning round.

    python bench/gpu.py                # on a CUDA machine, a few minutes: writes the GPU section of reports/benchmarks.md
    python bench/gpu.py --reduced      # on a CPU, about a minute: tiny sizes; the tests run it (tests/test_gpu_benchmark.py)

Inputs are CIFAR-10-shaped random tensors (3 x 32 x 32, 10 classes, random labels: the speed of a step does not
depend on what it learns). Part 1, per option (fp32; bf16 and fp16 autocast; channels_last; bf16 with
channels_last; that with `torch_compile`): `fit` without validation for `--steps` steps on `--labels` images, the
hand-written loop of bench/bare.py with the same settings, and `predict` and the hand-written inference on the
`--pool` images. Each call is timed after one warm-up call of the same option (kernel selection, compilation),
as wall time with the device synchronised, `--repeats` times (the median is kept). On a CPU, fp32 `fit` and the
bare loop must end with bit-identical weights (the compute options off leave the computation as plain PyTorch):
the script fails otherwise.

Part 2: one round of the paper's setting through `run_experiment` itself: ResNet-18, 1,000 labelled images,
a 50,000-image pool, 1,000 queried by BADGE and by coreset, the loop's training budget (60 epochs, early stopping
off so the whole budget runs), under fp32 and under bf16 with channels_last. The round's time is its fit, test
and query seconds from the run's history.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reporting import markdown, write_section  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reduced", action="store_true", help="tiny sizes for a CPU (the tests' mode)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:N or cpu")
    p.add_argument("--out", help="the report: default reports/benchmarks.md (its GPU section), or with --reduced "
                                 "reports/gpu_reduced.md")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    sizes = (dict(arch="cnn", labels=256, pool=500, steps=25, batch=32, inference_batch=256, round_labels=5,
                  round_pool=500, round_budget=50, epochs=1, min_steps=25)
             if args.reduced else
             dict(arch="resnet18", labels=5_000, pool=50_000, steps=400, batch=128, inference_batch=2_048,
                  round_labels=100, round_pool=50_000, round_budget=1_000, epochs=60, min_steps=500))
    return args, sizes


ARGS, SIZES = parse_args()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from archdal.core import DATASETS  # noqa: E402
from archdal.data import DatasetSplits  # noqa: E402
from archdal.loop import ExperimentConfig, run_experiment  # noqa: E402
from archdal.models import make_model  # noqa: E402
from archdal.train import fit, predict, resolve_device  # noqa: E402
from bare import bare_fit, bare_predict  # noqa: E402

SHAPE, CLASSES = (3, 32, 32), 10
OPTIONS = {"fp32": {}, "bf16": dict(precision="bf16"), "fp16": dict(precision="fp16"),
           "channels_last": dict(channels_last=True), "bf16 + channels_last": dict(precision="bf16", channels_last=True),
           "bf16 + channels_last + compile": dict(precision="bf16", channels_last=True, torch_compile=True)}
CPU_OPTIONS = ("fp32", "bf16 + channels_last + compile")  # on a CPU (each option alone is tested in nbs/02_train)


def random_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def timed(call, device: torch.device) -> float:
    "Wall seconds of `call()`, the device's queued work included."
    if device.type == "cuda": torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda": torch.cuda.synchronize(device)
    return time.perf_counter() - start


def throughput(device: torch.device) -> tuple[pd.DataFrame, bool | None]:
    "Part 1: images/s of fit, the bare loop, predict and bare inference per option; and (CPU) whether fp32 weights agree."
    x, y = (t.to(device) for t in random_images(SIZES["labels"], 0))
    pool = random_images(SIZES["pool"], 1)[0]
    torch.manual_seed(0)
    initial = make_model(SIZES["arch"], SHAPE, CLASSES, 0.25).state_dict()

    def model():
        m = make_model(SIZES["arch"], SHAPE, CLASSES, 0.25)
        m.load_state_dict(initial)
        return m.to(device)

    rows, same_weights = [], None
    names = CPU_OPTIONS if device.type == "cpu" else list(OPTIONS)
    for name in names:
        options = OPTIONS[name]
        compute = {k: v for k, v in options.items() if k != "torch_compile"}
        fit_options = dict(epochs=1, min_steps=SIZES["steps"], patience=10**6, batch_size=SIZES["batch"], device=device,
                           seed=0, **options)
        calls = {"fit": lambda m: fit(m, x, y, **fit_options),
                 "bare": lambda m: bare_fit(m, x, y, SIZES["steps"], SIZES["batch"], **options),
                 "predict": lambda m: predict(m, pool, batch_size=SIZES["inference_batch"], device=device, **compute),
                 "bare_predict": lambda m: bare_predict(m, pool, SIZES["inference_batch"], **compute)}
        trained = {}
        for what, call in calls.items():
            m = model()
            if what.endswith("predict"): m = trained["fit"]  # inference on the trained network
            call(m)  # warm-up: kernel choice, compilation
            seconds = []
            for _ in range(ARGS.repeats):
                fresh = model() if not what.endswith("predict") else m
                seconds.append(timed(lambda: call(fresh), device))
                if what in ("fit", "bare"): trained[what] = fresh
            images = SIZES["steps"] * SIZES["batch"] if what in ("fit", "bare") else len(pool)
            rows.append(dict(option=name, call=what, seconds=float(np.median(seconds)), images_per_s=images / float(np.median(seconds))))
            print(rows[-1], flush=True)
        if name == "fp32" and device.type == "cpu":
            same_weights = all(torch.equal(p, q) for p, q in zip(trained["fit"].state_dict().values(),
                                                                  trained["bare"].state_dict().values()))
    table = pd.DataFrame(rows).pivot(index="option", columns="call", values="images_per_s").reindex(names)
    table = table.assign(fit_vs_bare=table["bare"] / table["fit"], predict_vs_bare=table["bare_predict"] / table["predict"])
    names = {"fit": "fit images/s", "bare": "bare loop images/s", "fit_vs_bare": "fit time / bare",
             "predict": "predict images/s", "bare_predict": "bare inference images/s",
             "predict_vs_bare": "predict time / bare"}
    return table[list(names)].rename(columns=names).round(2), same_weights


def register_random_dataset() -> tuple[str, float]:
    "A CIFAR-10-shaped random data set of the round's sizes (labelled, validation and pool images): (name, val_fraction)."
    name = "random_cifar10_shape"
    n_val = SIZES["round_labels"] * CLASSES
    n_train = SIZES["round_labels"] * CLASSES + n_val + SIZES["round_pool"]

    def load(data_root=None, download=False):
        train_x, train_y = random_images(n_train, 2)
        train_y[:CLASSES * 2 * SIZES["round_labels"]] = torch.arange(CLASSES).repeat(2 * SIZES["round_labels"])
        test_x, test_y = random_images(10_000 if not ARGS.reduced else 500, 3)
        return DatasetSplits(name, train_x, train_y, test_x, test_y, [str(c) for c in range(CLASSES)])

    if name not in DATASETS.names(): DATASETS.register(name)(load)
    return name, n_val / n_train


def paper_round(device: torch.device) -> pd.DataFrame:
    "Part 2: round 0 of the paper's setting through run_experiment, per strategy and precision."
    dataset, val_fraction = register_random_dataset()
    arch = "resnet18" if not ARGS.reduced else "cnn"
    settings = {"fp32": {}, "bf16 + channels_last": dict(precision="bf16", channels_last=True)}
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for strategy in ("badge", "coreset"):
            for name, options in settings.items():
                config = ExperimentConfig(dataset=dataset, arch=arch, strategy=strategy, budget=SIZES["round_budget"],
                                          rounds=1, n_init_per_class=SIZES["round_labels"], val_fraction=val_fraction,
                                          epochs=SIZES["epochs"], min_steps=SIZES["min_steps"], patience=100_000,
                                          device=str(device), inference_batch=SIZES["inference_batch"], record_points=0,
                                          out_dir=str(Path(out) / name.replace(" ", "")), progress=False, **options)
                start = time.perf_counter()
                history = run_experiment(config).history
                first = history.iloc[0]
                rows.append(dict(strategy=strategy, option=name, labelled=int(first.n_labelled),
                                 pool=SIZES["round_pool"], queried=SIZES["round_budget"],
                                 fit_s=round(float(first.fit_seconds), 2), query_s=round(float(first.query_seconds), 2),
                                 round_s=round(float(first.fit_seconds + first.query_seconds), 2),
                                 whole_run_s=round(time.perf_counter() - start, 1)))
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def machine(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return f"{name}; torch {torch.__version__}; {os.cpu_count()} cores"


def write(parts: list[str]) -> Path:
    "The reduced report as its own file; the GPU report as this script's section of reports/benchmarks.md."
    text = "\n\n".join(parts)
    if ARGS.reduced or ARGS.out:
        out = Path(ARGS.out or Path(__file__).parent.parent / "reports" / "gpu_reduced.md")
        out.write_text(text + "\n")
    else:
        out = Path(__file__).parent.parent / "reports" / "benchmarks.md"
        write_section(out, "gpu", text)
    return out


def main() -> int:
    device = resolve_device(ARGS.device)
    if device.type != "cuda" and not ARGS.reduced:
        print("bench/gpu.py: no CUDA device here; its figures need one. Run it on a GPU machine, or with --reduced "
              "on a CPU (tiny sizes: it checks that everything runs, not how fast)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = device.type == "cuda"
    table, same = throughput(device)
    rounds = paper_round(device)
    mode = ("reduced (tiny sizes on a CPU: it shows that every path runs, not GPU speed; calls this short are "
            "dominated by per-call costs and by whatever else shares the cores)" if ARGS.reduced else "full")
    parts = ["## GPU paths (bench/gpu.py)",
             f"Written by `python bench/gpu.py{' --reduced' if ARGS.reduced else ''}` on {machine(device)}; mode: {mode}. "
             f"See the script's docstring.",
             f"fit and predict against hand-written loops ({SIZES['arch']}, {SIZES['labels']} training images, "
             f"{SIZES['steps']} steps of {SIZES['batch']}, {SIZES['pool']} images inferred in batches of "
             f"{SIZES['inference_batch']}; median of {ARGS.repeats}):",
             markdown(table)]
    if same is not None: parts.append(f"fp32 `fit` and the bare loop end with bit-identical weights: {'yes' if same else 'NO'}.")
    parts += [f"One round of the paper's setting through `run_experiment` (round 0: fit on the labelled set, test, "
              f"query; {'ResNet-18' if not ARGS.reduced else 'cnn'}):", markdown(rounds, index=False)]
    print("\n\n".join(parts))
    print(f"wrote {write(parts)}")
    return 0 if same in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())
