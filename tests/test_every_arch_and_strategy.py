"""Every registered architecture and every registered strategy, through the real loop on real data: image architectures
on digits, text architectures on trec6 (BERT, DistilBERT and RoBERTa as tiny random models saved like hub models)."""
import numpy as np
import pytest

from archdal.loop import ExperimentConfig, run_experiment
from archdal.archopt import ARCH_OPTIMISERS
from archdal.models import list_models, model_modality
from archdal.strategies import list_strategies
from archdal.text import HUB_ENCODERS, tiny_hub_model

TINY = dict(budget=6, rounds=1, n_init_per_class=2, epochs=2, min_steps=0, patience=2, mc_samples=3, progress=False, device="cpu")


def check_run(result, config):
    first = config.n_init_per_class * (6 if config.dataset == "trec6" else 10)
    assert list(result.history.n_labelled) == [first, first + config.budget]
    chosen = result.queries[1]
    assert len(np.unique(chosen)) == config.budget and not np.isin(chosen, result.queries[0]).any()
    assert result.history.test_accuracy.between(0, 1).all()


@pytest.mark.parametrize("strategy", list_strategies())
def test_strategy_with_cnn(strategy, tmp_path):
    config = ExperimentConfig(strategy=strategy, out_dir=str(tmp_path), **TINY)
    check_run(run_experiment(config), config)


ARCHS = sorted(set(list_models()) | set(ARCH_OPTIMISERS)) + ["select:cnn,mlp"]
QUICK = {"pdarts": {"min_stage_steps": 10}, "minilm": {"layers": 1}}  # pdarts' CPU preset searches 150+ steps a stage
TEXT = dict(dataset="trec6", pool_subset=60)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_with_a_model_based_strategy(arch, tmp_path):
    # dfal (DeepFool: one forward and C backward passes through the network per step, for every candidate) runs
    # through the loop with the cnn above; through a ResNet it would cost a CPU minute, so it is not spread here
    strategies = [s for s in list_strategies() if s != "dfal"]
    strategy = strategies[ARCHS.index(arch) % len(strategies)]  # spread strategies over architectures
    if strategy == "random": strategy = "bald"
    text = arch in list_models() and model_modality(arch) == "text"
    arguments = {"path": tiny_hub_model(arch, tmp_path / arch)} if arch in HUB_ENCODERS else QUICK.get(arch, {})
    config = ExperimentConfig(arch=arch, strategy=strategy, arch_kwargs=arguments, out_dir=str(tmp_path / "runs"),
                              **TINY, **(TEXT if text else {}))
    check_run(run_experiment(config), config)
