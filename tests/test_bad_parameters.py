"""Property-based: every bad experiment parameter is refused before any work, naming the parameter; valid ones pass."""
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdal.archopt as archopt
import archdal.loop as loop
from archdal.loop import EXPERIMENT_SPEC, ConfigError, ExperimentConfig, run_experiment
from archdal.data import dataset_modality
from archdal.models import list_models

anything_else = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=True),
                          st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
not_a_number = st.one_of(st.text(max_size=3), st.booleans(), st.just(float("nan")), st.just(float("inf")),
                         st.lists(st.integers(), max_size=1))


def from_param(p):
    "(valid values, invalid values) of one `Param`, from its declaration alone."
    nullable = (lambda valid: st.one_of(st.none(), valid)) if p.nullable else (lambda valid: valid)
    none = st.nothing() if p.nullable else st.none()
    if p.kind == "int":
        high = min(p.high, 10_000) if p.high is not None else 10_000
        outside = [st.integers(max_value=p.low - 1)] + ([st.integers(min_value=p.high + 1)] if p.high is not None else [])
        return nullable(st.integers(p.low, high)), st.one_of(*outside, st.floats(), not_a_number, none)
    if p.kind == "float":
        high = p.high if p.high is not None else 1e6
        valid = st.floats(p.low, high, exclude_min=p.low_open, exclude_max=p.high_open)
        outside = [st.floats(max_value=p.low, exclude_max=not p.low_open)]
        if p.high is not None: outside.append(st.floats(min_value=p.high, exclude_min=not p.high_open, allow_infinity=False))
        return nullable(valid), st.one_of(*outside, not_a_number, none)
    if p.kind == "choice":
        options = p.options()
        return st.sampled_from(options), anything_else.filter(lambda v: v not in options)
    if p.kind == "bool": return st.booleans(), st.one_of(st.integers(), st.text(max_size=3), st.none())
    if p.kind == "path":  # relative folders that are never created (validation only)
        return (nullable(st.text("abc_", min_size=1, max_size=6).map(lambda t: f"never_created/{t}")),
                st.one_of(st.just(""), st.integers(), none, st.just("a\0b")))
    if p.kind == "dict": return st.just({}), st.one_of(st.text(max_size=3), st.lists(st.integers(), max_size=2), st.none())
    raise AssertionError(f"no generator for {p}")


# the few fields whose valid values depend on other fields or on the machine
SPECIAL = {
    "arch": (st.sampled_from(list_models()), anything_else.filter(lambda v: v not in list_models() and not (
        isinstance(v, str) and v.startswith("select:")))),
    "device": (st.sampled_from(["auto", "cpu"]), st.sampled_from(["gpu", "tpu", "cuda:x", "", "metal"])),
    # stochastic acquisitions are valid only with scoring strategies: that rule has its own test in 05_loop
    "acquisition": (st.just("top"), from_param(EXPERIMENT_SPEC.params["acquisition"])[1]),
    # pool_subset >= budget is a rule between the two (its own test in 05_loop): keep valid subsets large
    "pool_subset": (st.one_of(st.none(), st.integers(10_000, 10**6)), from_param(EXPERIMENT_SPEC.params["pool_subset"])[1]),
    # fp16 needs CUDA (a rule between precision and device, its own test in 05_loop)
    "precision": (st.sampled_from(["fp32", "bf16"]), from_param(EXPERIMENT_SPEC.params["precision"])[1]),
    # an integer or the word "auto" (a JSON value checked by its own rule)
    "val_every": (st.one_of(st.just("auto"), st.integers(1, 1000)),
                  st.one_of(st.integers(max_value=0), st.sampled_from(["often", "", "Auto"]), st.none(), st.floats(), st.booleans())),
    # a method name or a user's file (a file that exists: its own tests in 02b_pretrain); anything else is refused
    "pretrain": (st.sampled_from(["none", "simclr", "deepcluster"]), anything_else.filter(
        lambda v: v not in ("none", "simclr", "deepcluster") and not (isinstance(v, str) and v.startswith("path:")))),
    # freezing needs a pretrained body (a rule between the two, tested in 02b_pretrain)
    "freeze_body": (st.just(False), from_param(EXPERIMENT_SPEC.params["freeze_body"])[1]),
}
FIELDS = {name: SPECIAL.get(name) or from_param(p) for name, p in EXPERIMENT_SPEC.params.items()}


def test_every_config_field_is_described_once_in_the_spec():
    assert list(FIELDS) == [f.name for f in dataclasses.fields(ExperimentConfig)] == EXPERIMENT_SPEC.names()
    assert all(p.doc for p in EXPERIMENT_SPEC.params.values())


def consistent(values: dict) -> dict:
    "Valid values that also obey the rules between fields drawn independently: the image pretraining methods are refused on texts."
    return {**values, "pretrain": "none"} if dataset_modality(values["dataset"]) == "text" else values


valid_configs = st.fixed_dictionaries({name: valid for name, (valid, _) in FIELDS.items()}).map(consistent)


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
    (dict(arch="mlp", arch_kwargs={"heads": 2}), "'heads' is not an argument of mlp"),
    (dict(arch="cnn", arch_kwargs={"width": 100_000}), "width=100000: allowed an integer in [1, 1024]"),
    (dict(arch="cnn", arch_kwargs={"depth": 10_000}), "depth=10000: allowed an integer in [1, 32]"),
    (dict(arch="depth_dropout", arch_kwargs={"K": 10**6}), "K=1000000: allowed None or an integer in [1, 64]"),
    (dict(arch="pdarts", arch_kwargs={"channels": 10**5}), "channels=100000: allowed None or an integer in [1, 512]"),
    (dict(arch="depth_dropout", pretrain="simclr"), "its body infers its structure from the labelled set"),
    (dict(pretrain="deepcluster", pretrain_kwargs={"clusters": 1}), "clusters=1: allowed an integer in [2, 100,000]"),
])
def test_data_dependent_problems_are_named_before_training(bad, named, tmp_path, monkeypatch):
    def no_training(*args, **kwargs): raise AssertionError("training started")
    monkeypatch.setattr(archopt, "fit", no_training)
    with pytest.raises(ConfigError) as caught:
        run_experiment(ExperimentConfig(**bad, out_dir=str(tmp_path), progress=False))
    assert named in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_numpy_scalars_run_like_the_numbers_they_are(tmp_path):
    "A sweep script passing numpy values (np.int64 seeds, np.float32 rates) gets a normal run, not a JSON error."
    import numpy as np
    from archdal.core import RunDir, read_config
    result = run_experiment(ExperimentConfig(seed=np.int64(1), budget=np.int64(10), rounds=np.int64(1), lr=np.float32(0.05),
                                             n_init_per_class=np.int64(2), epochs=2, min_steps=0, out_dir=str(tmp_path), progress=False,
                                             arch_kwargs={"depth": np.int64(1)}, device="cpu"))
    stored = read_config(RunDir(result.run_dir))
    assert stored["seed"] == 1 and stored["budget"] == 10 and stored["arch_kwargs"] == {"depth": 1}
    assert result.run_dir.parent.parent.name == "cnn-depth1" and len(result.history) == 2


def test_an_out_dir_that_cannot_be_written_is_named_before_any_work(tmp_path, monkeypatch):
    "A read-only out_dir (a read-only mount, a folder of another user) is refused by validation, not by a raw OSError later."
    import os
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else real_access(path, mode))
    with pytest.raises(ConfigError, match="is not writable by this process; allowed: a writable folder"):
        run_experiment(ExperimentConfig(out_dir=str(tmp_path / "runs"), progress=False))
    assert not (tmp_path / "runs").exists()


def test_a_users_weights_that_do_not_fit_the_body_are_named_before_any_work(tmp_path, monkeypatch):
    "A state dict of another architecture (here a wider cnn) is refused with what is missing or of another shape."
    import torch
    from archdal.models import make_model
    torch.save(make_model("cnn", (1, 8, 8), 10, width=16).body.state_dict(), tmp_path / "wide.pt")
    def no_training(*args, **kwargs): raise AssertionError("training started")
    monkeypatch.setattr(archopt, "fit", no_training)
    with pytest.raises(ConfigError) as caught:
        run_experiment(ExperimentConfig(pretrain=f"path:{tmp_path / 'wide.pt'}", out_dir=str(tmp_path / "runs"), progress=False))
    assert "does not fit the body of arch='cnn'" in str(caught.value) and "other shapes: 0.weight" in str(caught.value)
    assert not (tmp_path / "runs").exists()
