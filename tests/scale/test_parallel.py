"""Sharded populations and data-parallel training equal their single-device runs (4 simulated CPUs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_check_sharding.py")


def _run(which: str) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), which], capture_output=True, text=True, env=env, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def population():
    return _run("population")


def test_population_sharded_equals_vmapped(population):
    assert population["devices"] == 4
    assert population["pop_shape"][0] == 7  # padding to 8 slots is dropped again
    assert population["pop_params"] < 1e-5
    assert population["pop_metrics"] < 1e-4


def test_population_sweep_sharded_equals_vmapped(population):
    assert population["sweep_params"] < 1e-5
    assert population["pop_devices_used"] == 4


def test_runtime_population_spread_over_devices(population):
    assert population["run_devices_used"] == 4
    assert population["run_params"] < 1e-5


def test_runtime_population_compiles_chunk_and_eval_once(population):
    # two compilations each before the driver split the initial state over the devices
    assert population["run_chunk_compiles"] == 1
    assert population["run_init_and_eval_compiles"] == 2


def test_population_over_devices_resumes_bit_identically(population):
    assert population["resume_crashed"]
    assert population["resume_checkpoints"] == [2]  # resumed from update 2 of 6
    assert population["resume_devices_used"] == 4
    assert population["resume_identical"]


def test_second_population_call_compiles_nothing(population):
    assert population["pop_second_call_train_compiles"] == 0


def test_uneven_population_refused_without_padding(population):
    assert population["uneven_refused"]


def test_data_parallel_equals_single_device():
    out = _run("data")
    assert out["devices"] == 4
    # Same program, partitioned: only the order of float reductions differs.
    assert out["dp_loss"] < 1e-3
    assert out["dp_params"] < 1e-3
    assert out["dp_all_reduce"], "expected XLA to insert a cross-device all-reduce"
    assert out["bad_envs_refused"]
    assert out["dp_second_call_compiles"] == 0
