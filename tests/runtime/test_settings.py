"""The runtime's settings: one frozen dataclass holds the defaults that the driver and the CLI use."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
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
    for name in (
        "eval_episodes",
        "checkpoint_every",
        "keep_checkpoints",
        "chunk_size",
        "eval_every",
        "log_every",
    ):
        assert kw[name] == getattr(DEFAULTS, name), name


def _plan(num_iterations: int, runtime: dict, run_dir: str | None = "/nowhere") -> driver.Plan:
    return driver.Plan(
        algo=None, cfg=None, cfg_arg=None, key=None, spec={}, runtime=runtime, members=[{}],
        num_points=1, num_iterations=num_iterations, run_dir=run_dir, resume=False,
    )  # fmt: skip


def test_schedule_reads_the_resolved_runtime():
    from jaxrl.runtime.settings import Schedule

    s = Schedule.of(DEFAULTS.resolve(25_000))
    assert (s.chunk_capacity, s.log_every, s.eval_every, s.checkpoint_every) == (2048, 13, 2500, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.log_every = 1


def test_execute_steps_by_hand():
    from jaxrl.runtime.settings import Schedule

    # 1000 iterations, adaptive chunks: the first is ceil(1000 / 200) = 5 long; evaluation every 100
    rt = RuntimeSettings(eval_every=100, checkpoint_every=3).resolve(1000)
    plan, s = _plan(1000, rt), Schedule.of(rt)
    assert driver._first_chunk_length(plan, s) == 5

    def cursor(it, n_next, chunks_run=0):
        return driver._Cursor(state=None, it=it, env_steps=np.zeros(1), n_next=n_next, chunks_run=chunks_run)

    # clipped at the next evaluation (at 100: 100 - 97 = 3), at the end (1000 - 990 = 10), at the capacity
    assert driver._chunk_length(plan, s, cursor(97, 50)) == 3
    assert driver._chunk_length(plan, s, cursor(990, 50)) == 10
    assert driver._chunk_length(plan, s, cursor(0, 5000)) == 100
    assert driver._evaluation_due(plan, s, 200) and not driver._evaluation_due(plan, s, 250)
    assert not driver._evaluation_due(plan, s, 1000)  # the final evaluation runs after the loop
    # every 3rd chunk, not at the end (the final checkpoint is saved after the loop), never without a dir
    assert driver._checkpoint_due(plan, s, cursor(300, 5, chunks_run=6))
    assert not driver._checkpoint_due(plan, s, cursor(300, 5, chunks_run=7))
    assert not driver._checkpoint_due(plan, s, cursor(1000, 5, chunks_run=6))
    assert not driver._checkpoint_due(_plan(1000, rt, run_dir=None), s, cursor(300, 5, chunks_run=6))
    # no evaluation: chunks are not clipped at evaluation points
    rt0 = RuntimeSettings(eval_every=100, eval_episodes=0).resolve(1000)
    assert driver._chunk_length(plan, Schedule.of(rt0), cursor(97, 50)) == 50
    assert not driver._evaluation_due(plan, Schedule.of(rt0), 200)
