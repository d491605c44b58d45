"""The hand-written PyTorch loops archdal's `fit` and `predict` are measured against (bench/training.py, bench/gpu.py).

What one writes by hand: SGD with momentum 0.9 and weight decay, the learning rate per step of `fit`'s schedule
(warm-up over the first period, then cosine), the same index batches (archdal's balanced batches from the same
generator), autocast and channels_last written out with torch's own calls, forward, cross-entropy, backward,
step. Nothing else: no validation, no best-weight bookkeeping, no checks. Torch is seeded as `fit` seeds it, so
with the same settings the two give the same weights on a CPU (bench/gpu.py --reduced checks it).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from archdal.train import _batches, lr_multiplier, make_optimizers, plan_budget

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(device: torch.device, precision: str):
    return nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=DTYPES[precision])


def bare_fit(model, x, y, steps: int, batch_size: int, lr: float = 0.03, weight_decay: float = 5e-4, seed: int = 0,
             precision: str = "fp32", channels_last: bool = False, torch_compile: bool = False) -> int:
    "Train `model` in place for `steps` (rounded up to whole periods of 25) by hand; returns the steps taken."
    device = x.device
    torch.manual_seed(seed)
    if channels_last: model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if torch_compile else model
    (optimiser,) = make_optimizers(model, "sgd", lr, weight_decay)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    budget = plan_budget(len(x), batch_size, 1, steps, 25)
    batches = _batches(len(x), batch_size, torch.Generator().manual_seed(seed), device)
    model.train()
    for step in range(budget.steps):
        for group in optimiser.param_groups: group["lr"] = lr * lr_multiplier(step, budget.steps, budget.period, "cosine")
        idx = next(batches)
        xb = x[idx].contiguous(memory_format=torch.channels_last) if channels_last else x[idx]
        with _autocast(device, precision): loss = F.cross_entropy(forward(xb), y[idx])
        optimiser.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimiser.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
    return budget.steps


@torch.no_grad()
def bare_predict(model, x, batch_size: int, precision: str = "fp32", channels_last: bool = False) -> torch.Tensor:
    "Class probabilities of `x` by hand, in eval mode, on the model's device; returned on the CPU."
    device = next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        if channels_last: xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, precision): out.append(model(xb).float().softmax(1).cpu())
    return torch.cat(out)
