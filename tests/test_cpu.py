"""``jaxrl.cpu.set_cpu_threads``: the XLA CPU pool is sized, nothing stays pinned, results do not change.

Each case runs in a fresh interpreter: the pool size can only be chosen before JAX creates its backends.
"""

import json
import os
import subprocess
import sys

import pytest

from jaxrl import cli, cpu

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux affinity")

PROBE = r"""
import json, os, sys
from jaxrl import cpu
n = int(sys.argv[1])
before = sorted(os.sched_getaffinity(0))
sized = cpu.set_cpu_threads(n)
import jax, jax.numpy as jnp, numpy as np
import jaxrl
jax.devices()  # the backends exist now in both cases (the pool's threads with them)
tids = os.listdir("/proc/self/task")
masks = {sorted(os.sched_getaffinity(int(t))).__repr__() for t in tids if os.path.exists(f"/proc/self/task/{t}")}
try:
    cpu.set_cpu_threads(1)
    again = "no error"
except RuntimeError as e:
    again = str(e)
out = {"sized": sized, "before": before, "masks": sorted(masks), "threads": len(tids), "again": again}
if len(sys.argv) > 2:  # a short PPO and DQN run: their parameters, to compare across pool sizes
    ppo = jaxrl.PPOConfig(total_timesteps=4096, num_envs=8, rollout_steps=64)
    dqn = jaxrl.DQNConfig(total_timesteps=3000, learning_starts=500, buffer_size=1000, minibatch_size=64)
    for name, c in (("ppo", ppo), ("dqn", dqn)):
        states = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(c, jax.random.split(jax.random.key(3), 4))
        leaves = jax.tree_util.tree_leaves(states[0].params)
        out[name] = [np.asarray(x).tobytes().hex() for x in leaves]
print(json.dumps(out))
"""


def _probe(n, train=False):
    args = [sys.executable, "-c", PROBE, str(n)] + (["train"] if train else [])
    # ~25 s. No retry: the hangs once seen here with XLA's default pool (n=0) were batched LAPACK QRs
    # blocking the pool (jaxrl.networks.init), and a hang now is a failure.
    r = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_pool_is_sized_and_no_thread_stays_pinned():
    one, default = _probe(1), _probe(0)
    assert one["sized"] is True and default["sized"] is False
    # every thread (XLA's pool included) may run on every CPU the process was given
    assert one["masks"] == [repr(one["before"])]
    if len(one["before"]) > 1:  # a pool of one thread: fewer threads than XLA's default pool
        assert one["threads"] < default["threads"]
    assert "before JAX creates its backends" in one["again"]


@pytest.mark.slow
def test_same_results_with_one_thread_and_with_xla_default():
    one, default = _probe(1, train=True), _probe(0, train=True)
    assert one["ppo"] == default["ppo"]
    assert one["dqn"] == default["dqn"]


@pytest.mark.parametrize("raw", ["abc", "-2", "1.5"])
def test_bad_env_value_is_a_clear_error(monkeypatch, raw):
    monkeypatch.setenv(cpu.ENV_VAR, raw)
    with pytest.raises(ValueError, match="JAXRL_CPU_THREADS must be a non-negative integer"):
        cpu.threads_from_env(1)


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="non-negative int"):
        cpu.set_cpu_threads(-1)
    assert cpu.set_cpu_threads(0) is False and cpu.set_cpu_threads(None) is False


@pytest.mark.parametrize(
    "flag, env_var, bad_env",
    [("--cpu-threads", cpu.ENV_VAR, "many"), ("--cpu-devices", cpu.DEVICES_ENV_VAR, "two")],
)
def test_cli_refuses_bad_counts(capsys, monkeypatch, flag, env_var, bad_env):
    assert cli.main(["train", flag, "-1"]) == 2
    assert f"{flag} must be >= 0" in capsys.readouterr().err
    monkeypatch.setenv(env_var, bad_env)
    assert cli.main(["train"]) == 2
    assert f"{env_var} must be a non-negative integer" in capsys.readouterr().err


def test_cli_refuses_thread_count_after_backends_exist(capsys, monkeypatch):
    # asked for explicitly after this process's JAX work created the backends: a clear error, no run
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()
    monkeypatch.delenv(cpu.ENV_VAR, raising=False)
    assert cli.main(["train", "--cpu-threads", "1"]) == 2
    assert "before JAX creates its backends" in capsys.readouterr().err


WARN_PROBE = r"""
import sys, warnings
from jaxrl import cpu
if sys.argv[1] != "none":
    cpu.set_cpu_threads(int(sys.argv[1]))
import jax, jaxrl
cfg = jaxrl.PPOConfig(total_timesteps=1024, num_envs=2, rollout_steps=64)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    jax.eval_shape(jaxrl.train, cfg, jax.random.key(0))  # traces jaxrl.train, compiles nothing
    jax.eval_shape(jaxrl.train, cfg, jax.random.key(1))
print(sum("set_cpu_threads(1)" in str(w.message) for w in caught))
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="one CPU: XLA's pool has one thread anyway",
)
def test_training_warns_once_on_xla_default_pool_unless_chosen():
    def count(arg):
        r = subprocess.run(
            [sys.executable, "-c", WARN_PROBE, arg], capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stderr[-3000:]
        return int(r.stdout.strip().splitlines()[-1])

    assert count("none") == 1  # XLA's default pool, not chosen: one warning per process
    assert count("1") == 0
    assert count("0") == 0  # XLA's default, chosen explicitly


DEVICES_PROBE = r"""
import os, sys
from jaxrl import cpu
cpu.set_cpu_devices(int(sys.argv[1]))
cpu.set_cpu_threads(1)
import jax
print(len(jax.devices()), len(os.sched_getaffinity(0)))
"""


@pytest.mark.parametrize("n", [2, 0])
def test_cpu_devices_split_the_cpu(n):
    r = subprocess.run(
        [sys.executable, "-c", DEVICES_PROBE, str(n)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    devices, cpus = map(int, r.stdout.split())
    assert devices == (n or cpus)  # 0: one device per CPU the process may use


def test_cpu_devices_bad_values_and_too_late():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative int"):
            cpu.set_cpu_devices(bad)
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the backends exist now
    with pytest.raises(RuntimeError, match="before JAX creates its backends"):
        cpu.set_cpu_devices(2)
