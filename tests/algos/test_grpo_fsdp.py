"""FSDP-style GRPO: the same update on 1 device and with parameters, Adam state and completions
sharded over 4 simulated CPU devices (a subprocess: the device count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxrl.algos.grpo import sharding

ROOT = Path(__file__).resolve().parents[2]


def test_leaf_spec_splits_the_largest_divisible_axis():
    assert sharding.leaf_spec((64, 256), 4) == sharding.PartitionSpec(None, "fsdp")
    assert sharding.leaf_spec((12, 7), 4) == sharding.PartitionSpec("fsdp")
    assert sharding.leaf_spec((7,), 4) == sharding.PartitionSpec()
    assert sharding.leaf_spec((), 4) == sharding.PartitionSpec()


def _check(*args):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_grpo_fsdp_check.py")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_update_on_4_sharded_devices_equals_1_device():
    out = _check()
    assert out["devices"] == 4
    assert out["moved"] > 1e-4  # the update did something ...
    assert out["max_diff"] < 1e-5  # ... and the same on one device and on four
    assert out["kernel_shards"] == 4 and out["kernel_shard_shape"] == [64, 64]  # [64, 256] split 4 ways


@pytest.mark.slow
def test_grpo_config_fsdp_devices_4_equals_1_device():
    # GRPOConfig(fsdp_devices=4): the warm-up and an iteration end where the 1-device run does
    out = _check("full")
    assert out["warm_moved"] > 1e-4 and out["run_diff"] < 1e-4 and out["run_kernel_shards"] == 4
    assert out["rewards"][0] == out["rewards"][1]
