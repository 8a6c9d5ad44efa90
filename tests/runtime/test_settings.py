"""The runtime's settings: one frozen dataclass holds the defaults that the driver and the CLI use."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from jaxrl import cli
from jaxrl.runtime import driver
from jaxrl.runtime.settings import DEFAULTS, RuntimeSettings


def test_resolve_by_hand():
    # 25,000 iterations: log every ceil(25000 / 2000) = 13th, evaluate every ceil(25000 / 10) = 2500th,
    # adaptive chunks scan over at most 2048 iterations
    assert DEFAULTS.resolve(25_000) == {
        "chunk_size": None,
        "chunk_capacity": 2048,
        "log_every": 13,
        "eval_every": 2500,
        "eval_episodes": 32,
        "checkpoint_every": 10,
        "keep_checkpoints": 3,
    }
    r = RuntimeSettings(chunk_size=100, log_every=5, eval_every=0, eval_episodes=0).resolve(50)
    assert (r["chunk_capacity"], r["log_every"], r["eval_every"], r["eval_episodes"]) == (50, 5, 0, 0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.eval_episodes = 1


@pytest.mark.parametrize("fn", [driver.prepare, driver.run])
def test_driver_defaults_are_the_dataclass_defaults(fn):
    params = inspect.signature(fn).parameters
    for f in dataclasses.fields(RuntimeSettings):
        assert params[f.name].default == getattr(DEFAULTS, f.name), f.name


def test_cli_defaults_are_the_dataclass_defaults():
    _, kw = cli._build(cli._parser().parse_args(["train", "--algo", "ppo"]))
    for name in ("eval_episodes", "checkpoint_every", "keep_checkpoints", "chunk_size", "eval_every", "log_every"):
        assert kw[name] == getattr(DEFAULTS, name), name
