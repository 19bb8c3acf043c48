"""Typed configs: every config dataclass is frozen, typed and self-validating."""
import dataclasses
import typing

import pytest

from specmix.app.bench.decode import DecodeBenchConfig
from specmix.app.bench.sweep import BenchConfig
from specmix.app.compare import CompareConfig
from specmix.app.eval_lengths import LengthEvalConfig
from specmix.app.reference_run import RefTrainConfig
from specmix.app.sample import SampleConfig
from specmix.app.train import TrainConfig
from specmix.data.tasks import TaskSpec
from specmix.model import LMConfig
from specmix.validation import UsageError, check_fields

CONFIGS = [LMConfig, TrainConfig, BenchConfig, DecodeBenchConfig, LengthEvalConfig, RefTrainConfig,
           SampleConfig, CompareConfig, TaskSpec]
# the only plain-text fields: paths and free text, never a list or a choice
TEXT_FIELDS = {"data", "out", "checkpoint", "prompt"}


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_no_str_field_holds_a_list_or_an_enum(cls):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if tp in (str, str | None):
            assert field.name in TEXT_FIELDS, f"{cls.__name__}.{field.name} is a str field"


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_configs_are_frozen_and_their_defaults_valid(cls):
    cfg = cls()
    assert dataclasses.is_dataclass(cfg) and cls.__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, dataclasses.fields(cls)[0].name, None)


@pytest.mark.parametrize("cls,kwargs,words", [
    (LMConfig, dict(filter="fourier"), "--filter: expected one of frequency, implicit"),
    (LMConfig, dict(d_model="128"), "--d-model: expected an integer"),
    (LMConfig, dict(mlp_ratio=-1.0), "--mlp-ratio must be >= 0.0"),
    (LMConfig, dict(dropout=1.0), "--dropout must be < 1"),
    (TrainConfig, dict(task="sort"), "--task: expected one of lm, recall, copy"),
    (TrainConfig, dict(stop_at=0), "--stop-at must be >= 1"),
    (TrainConfig, dict(resume="yes"), "--resume: expected true or false"),
    (LengthEvalConfig, dict(contexts=(1,)), "--contexts"),
    (DecodeBenchConfig, dict(mixers=("spectral", "fourier")), "unknown kind 'fourier'"),
    (SampleConfig, dict(temperature=0.0), "--temperature must be > 0"),
    (CompareConfig, dict(variants=()), "at least one variant"),
    (RefTrainConfig, dict(steps=0), "--steps must be >= 1"),
])
def test_bad_values_name_the_flag(cls, kwargs, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        cls(**kwargs)


def test_check_fields_on_a_small_dataclass():
    @dataclasses.dataclass
    class C:
        n: int = 1
        sizes: tuple[int, ...] = (1, 2)
        kind: typing.Literal["a", "b"] | None = None

    check_fields(C())
    with pytest.raises(UsageError, match="--sizes: expected a tuple of int"):
        check_fields(C(sizes=(1, "2")))
    with pytest.raises(UsageError, match="--n: a value is required"):
        check_fields(C(n=None))
    with pytest.raises(UsageError, match="--n must be >= 2"):
        check_fields(C(), minimum={"n": 2})
    with pytest.raises(UsageError, match="--n: expected an integer"):
        check_fields(C(n=True))


def test_train_configs_of_older_releases_load():
    old = {"data": None, "task": "lm", "task_vocab": 30, "seq_len": 0, "steps": 10, "batch_size": 4,
           "lr": 0.001, "min_lr_ratio": 0.1, "warmup": 5, "weight_decay": 0.1, "grad_clip": 0.0,
           "eval_every": 5, "eval_batches": 2, "seed": 1, "device": "cpu", "out": "x", "resume": False,
           "stop_at": 0, "time_limit": 0.0}
    cfg = TrainConfig.from_dict(old)
    assert cfg.stop_at is None and cfg.time_limit is None and cfg.grad_clip is None and cfg.steps == 10
