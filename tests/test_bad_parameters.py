"""Property-based: every bad experiment parameter is refused before any work, naming the parameter; valid ones pass."""
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdal.archopt as archopt
import archdal.loop as loop
from archdal.data import AUGMENTATIONS, list_datasets
from archdal.loop import ConfigError, ExperimentConfig, run_experiment
from archdal.models import list_models
from archdal.strategies import ACQUISITIONS, list_strategies
from archdal.train import OPTIMIZERS

anything_else = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True),
                          st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


def choice(names):
    return st.sampled_from(names), anything_else.filter(lambda v: v not in names)


def integer(low):
    return st.integers(low, 10_000), st.one_of(st.integers(max_value=low - 1), st.booleans(), st.floats(),
                                               st.text(max_size=3), st.none())


def real(valid):
    return valid, st.one_of(st.text(max_size=3), st.none(), st.booleans(), st.just(float("nan")), st.just(float("inf")))


FIELDS = {  # field -> (valid values, invalid values)
    "dataset": choice(list_datasets()), "arch": choice(list_models()), "strategy": choice(list_strategies()),
    "budget": integer(1), "rounds": integer(0), "n_init_per_class": integer(1), "epochs": integer(1),
    "patience": integer(1), "batch_size": integer(1), "mc_samples": integer(1), "seed": integer(0),
    "pool_cap": (st.one_of(st.none(), st.integers(1, 10**6)), st.one_of(st.integers(max_value=0), st.text(max_size=3), st.floats())),
    "val_fraction": (st.floats(0, 0.99), st.one_of(real(st.none())[1], st.floats(1, 1e9), st.floats(max_value=-1e-9))),
    "lr": (st.floats(1e-8, 10), st.one_of(real(st.none())[1], st.floats(max_value=0))),
    "weight_decay": (st.floats(0, 1), st.one_of(real(st.none())[1], st.floats(max_value=-1e-9))),
    "dropout": (st.floats(0, 0.99), st.one_of(real(st.none())[1], st.floats(1, 1e9), st.floats(max_value=-1e-9))),
    "optimizer": choice(list(OPTIMIZERS)),
    # stochastic acquisitions are valid only with scoring strategies: that pairing has its own test in 05_loop
    "acquisition": (st.just("top"), anything_else.filter(lambda v: v not in ACQUISITIONS)),
    "beta": (st.floats(0, 100), st.one_of(real(st.none())[1], st.floats(max_value=-1e-9))),
    "pool_subset": (st.one_of(st.none(), st.integers(1, 10**6)), st.one_of(st.integers(max_value=0), st.text(max_size=3), st.floats())), "augment": choice(["auto", *AUGMENTATIONS]),
    "warm_start": (st.booleans(), st.one_of(st.integers(), st.text(max_size=3), st.none())),
    "progress": (st.booleans(), st.one_of(st.integers(), st.text(max_size=3), st.none())),
    "deterministic": (st.booleans(), st.one_of(st.integers(), st.text(max_size=3), st.none())),
    "device": (st.sampled_from(["auto", "cpu"]), st.sampled_from(["gpu", "tpu", "cuda:x", "", "metal"])),
    "out_dir": (st.text(min_size=1, max_size=8), st.one_of(st.just(""), st.integers(), st.none())),
    "data_root": (st.text(min_size=1, max_size=8), st.one_of(st.just(""), st.integers(), st.none())),
    "arch_kwargs": (st.just({}), st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2), st.none())),
}


def test_every_config_field_has_a_property():
    assert set(FIELDS) == {f.name for f in dataclasses.fields(ExperimentConfig)}


valid_configs = st.fixed_dictionaries({name: valid for name, (valid, _) in FIELDS.items()})


@settings(max_examples=300, deadline=None)
@given(valid_configs)
def test_valid_parameters_pass_validation(values):
    assert ExperimentConfig(**values).validate()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_configs, st.sampled_from(sorted(FIELDS)), st.data())
def test_an_invalid_parameter_is_named_before_any_work(valid_values, bad_field, data):
    values = dict(valid_values)
    values[bad_field] = data.draw(FIELDS[bad_field][1], label=bad_field)
    def no_work(*args, **kwargs): raise AssertionError("work started before validation finished")
    original = loop.load_dataset, archopt.fit
    loop.load_dataset = archopt.fit = no_work
    try:
        with pytest.raises(ConfigError) as caught:
            run_experiment(ExperimentConfig(**values))
    finally:
        loop.load_dataset, archopt.fit = original
    assert any(problem.startswith(f"{bad_field}=") or f"device={values['device']!r}" in problem
               for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("bad, named", [
    (dict(budget=2000, rounds=1), "budget=2000 x rounds=1"),
    (dict(n_init_per_class=200), "n_init_per_class=200"),
    (dict(pool_cap=50, budget=30, rounds=2), "budget=30 x rounds=2"),
    (dict(arch="cnn", arch_kwargs={"width": 0}), "width=0"),
    (dict(arch="mlp", arch_kwargs={"heads": 2}), "heads=2"),
])
def test_data_dependent_problems_are_named_before_training(bad, named, tmp_path, monkeypatch):
    def no_training(*args, **kwargs): raise AssertionError("training started")
    monkeypatch.setattr(archopt, "fit", no_training)
    with pytest.raises(ConfigError) as caught:
        run_experiment(ExperimentConfig(**bad, out_dir=str(tmp_path), progress=False))
    assert named in str(caught.value)
    assert not any(tmp_path.iterdir())
