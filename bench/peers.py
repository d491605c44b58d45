"""Minimal adapters that let the peer libraries run on the same predictions archdal's strategies see.

archdal's strategies take tensors (`QueryInputs`). The peers take something else:

* DISTIL (`decile-distil`) strategies take a network, datasets and a data "handler", and call the network
  themselves. `distil_strategy` gives them a tiny `TableNet` whose inputs are pool positions and whose
  forward pass *looks up* fixed logits and penultimate features in tables, so DISTIL's own code runs on
  exactly the logits / features archdal is given. Its prediction helpers (`predict_prob`,
  `predict_prob_dropout_split`, `get_embedding`) are replaced by table look-ups too, so that a timing
  measures DISTIL's selection and not a data loader that reads 50,000 rows one by one. DISTIL's
  `get_grad_embedding` is left as it is: building the C x D gradient embeddings is part of its BADGE.
* DISTIL's `AdversarialDeepFool` takes a real network and a handler over the pool's inputs; `distil_deepfool`
  builds it on a tensor of inputs (`IndexHandler` serves row i as (X[i], i)).
* BAAL's heuristics (`baal.active.heuristics`) take probability arrays directly, shaped
  [N, C] or [N, C, S] (MC samples last); `baal_layout` gives archdal's S x N x C samples that shape.

Used by bench/strategies.py and tests/test_peer_agreement.py. The peers are imported lazily, so importing
this module needs neither.
"""
from __future__ import annotations

import numpy as np
import torch


class TableNet(torch.nn.Module):
    """A "network" whose input is a batch of positions into fixed tables: `forward(x)` returns the logits of
    those rows (the next MC-dropout sample's logits in training mode), `forward(x, last=True)` also the
    penultimate features, as DISTIL's networks do."""

    def __init__(self, logits: torch.Tensor, features: torch.Tensor, mc_logits: torch.Tensor | None = None):
        super().__init__()
        self.logits, self.features, self.mc_logits = logits, features, mc_logits
        self.served = 0  # rows served in training mode: which MC sample comes next

    def get_embedding_dim(self) -> int:
        return self.features.shape[1]

    def forward(self, x, last: bool = False):
        rows = torch.as_tensor(x).long().flatten()
        if self.training and self.mc_logits is not None:
            sample = self.served // len(self.logits)
            self.served += len(rows)
            out = self.mc_logits[sample][rows]
        else:
            out = self.logits[rows]
        return (out, self.features[rows]) if last else out


class IndexHandler(torch.utils.data.Dataset):
    "DISTIL's data handler: item i of the index array X is (X[i], i)."

    def __init__(self, X, Y=None, *args, **kwargs):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], i


def distil_strategy(cls, logits: torch.Tensor, features: torch.Tensor, labelled_features: torch.Tensor | None = None,
                    mc_logits: torch.Tensor | None = None, batch_size: int = 1024, **args):
    """A DISTIL strategy of class `cls` on an N-point pool with the given logits (N x C) and features (N x D),
    labelled-set features (M x D) and MC-dropout logits (S x N x C). The probabilities DISTIL computes are
    `softmax(logits)` row by row, bit for bit what archdal is given."""
    n, n_classes = logits.shape
    labelled_features = features[:0] if labelled_features is None else labelled_features
    m = len(labelled_features)
    # one table holds the pool (rows 0..N-1) then the labelled set (rows N..N+M-1)
    all_logits = torch.cat([logits, torch.zeros(m, n_classes, dtype=logits.dtype)])
    all_features = torch.cat([features, labelled_features.to(features.dtype)])
    net = TableNet(all_logits, all_features, mc_logits).eval()
    pool, labelled = np.arange(n), np.arange(n, n + m)
    strategy = cls(labelled, np.zeros(m, dtype=np.int64), pool, net, IndexHandler, n_classes,
                   dict(batch_size=batch_size, device="cpu", **args))
    strategy.args["batch_size"] = batch_size  # BALDDropout drops its args; it uses this dict's batch size
    probs = torch.softmax(logits, dim=1)
    table = lambda rows: torch.as_tensor(rows).long()
    strategy.predict_prob = lambda X: probs[table(X)]
    strategy.get_embedding = lambda X: all_features[table(X)]
    if mc_logits is not None:
        mc_probs = torch.softmax(mc_logits, dim=2)
        strategy.predict_prob_dropout_split = lambda X, n_drop: mc_probs[:n_drop][:, table(X)]
    return strategy


def distil_deepfool(model: torch.nn.Module, x: torch.Tensor, max_iter: int = 50):
    """DISTIL's `AdversarialDeepFool` on the pool inputs `x` (N x ...) with the network `model`: its `cal_dis(row)`
    is the squared norm of its DeepFool perturbation, `select(budget)` its picks. `IndexHandler` serves the rows."""
    from distil.active_learning_strategies import AdversarialDeepFool
    with torch.no_grad(): n_classes = model(x[:1]).shape[1]
    return AdversarialDeepFool(x[:0], np.zeros(0, dtype=np.int64), x, model, IndexHandler, n_classes,
                               dict(max_iter=max_iter, device="cpu"))


def baal_layout(mc_probs: torch.Tensor) -> np.ndarray:
    "archdal's S x N x C MC samples as BAAL's [N, C, S] float array (a contiguous copy)."
    return np.ascontiguousarray(mc_probs.permute(1, 2, 0).numpy())


def peer_versions() -> dict[str, str]:
    "Installed versions of the peers ('not installed' where missing)."
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("decile-distil", "baal"):
        try: out[name] = version(name)
        except PackageNotFoundError: out[name] = "not installed"
    return out
