"""Scale with JAX's own sharding: populations of (config, seed) members and data-parallel agents.

Two ways to use several devices, both plain ``jax.jit`` programs partitioned by XLA (GSPMD) through
``jax.sharding.NamedSharding``; nothing here is a home-made communication layer:

* :func:`train_population` — many independent members (seeds x hyperparameters), ``jax.vmap`` of
  ``jaxrl.train`` with the population axis sharded over a 1-d device mesh. Members never communicate, so
  each device runs its share; the result equals the single-device vmapped run up to float rounding (a
  device's share is compiled as its own batch). On a CPU, ``jaxrl.cpu.set_cpu_devices`` makes one device
  per core, so a population uses every core.
* :func:`train_data_parallel` — one agent whose environment batch and minibatches are sharded over the
  mesh; parameters are replicated and XLA inserts the gradient all-reduce (the mean over the minibatch is
  a mean over devices). Equal, within float tolerance, to the single-device run with the same key.

Several hosts: call ``jax.distributed.initialize()`` (see :func:`initialize_distributed`) on every host
before anything else; ``jax.devices()`` then lists every host's devices and the same code shards over them.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxrl.algos import checks, env_building, prng, registry
from jaxrl.sharding import (  # noqa: F401  (re-exported: the sharding helpers are part of this API)
    DATA_AXIS,
    POP_AXIS,
    data_parallel,
    make_mesh,
    shard_batch,
    shard_population,
)


def initialize_distributed(**kwargs: Any) -> None:
    """Multi-host set-up: ``jax.distributed.initialize(**kwargs)`` (coordinator address, process count
    and id, or auto-detected on SLURM/TPU pods). Call it on every host before any other JAX call; then
    :func:`train_population` / :func:`train_data_parallel` shard over all hosts' devices unchanged."""
    jax.distributed.initialize(**kwargs)


def _refuse_stateful_env(cfg: Any, what: str) -> None:
    """Environments whose state lives outside JAX (envpool: one C++ pool per process, stepped on the
    host) can be neither copied per member nor split over devices; say so before tracing anything."""
    name = getattr(cfg, "env", None)
    if env_building.env_is_stateful(cfg):
        raise ValueError(
            f"{what} cannot run {name}: its environments hold their state outside JAX "
            f"(an envpool pool, one per run, stepped on the host), so they can be neither vmapped into "
            f"population members nor sharded over devices. Run one training run per process "
            f"(jaxrl.train / jaxrl.run, different seeds via EnvpoolParams(seed=...)) and raise num_envs "
            f"for more environments, or use a gymnax environment."
        )


# ----------------------------------------------------------------------------------- POPULATION
def _is_stacked(cfg: Any) -> bool:
    return any(jnp.ndim(x) > 0 for x in jax.tree_util.tree_leaves(cfg))


def _pad_rows(tree: Any, n: int, total: int) -> Any:
    """Pad the leading axis from ``n`` to ``total`` rows by repeating the last row."""
    if total == n:
        return tree
    idx = jnp.concatenate([jnp.arange(n), jnp.full((total - n,), n - 1)])
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


def train_population(
    cfgs: Any,
    keys: jax.Array,
    *,
    mesh: Mesh | None = None,
    pad: bool = True,
) -> tuple[Any, Any]:
    """Train a population: member ``i`` is ``(cfgs[i], keys[i])`` (or ``(cfgs, keys[i])`` for one
    unstacked config), sharded over ``mesh`` (default: all devices, axis ``"pop"``).

    Returns ``(states, metrics)`` with a leading population axis, equal (up to float rounding) to
    ``jax.vmap(jaxrl.train)(cfgs, keys)`` on one device. If the population does not divide over the
    devices, ``pad=True`` runs repeated copies of the last member on the spare slots and drops them
    (the kept rows are then gathered through host memory onto the default device); ``pad=False`` raises
    instead.
    """
    mesh = mesh or make_mesh(POP_AXIS)
    axis = mesh.axis_names[0]
    n_dev = mesh.shape[axis]
    keys = prng.as_key(keys)
    n = int(keys.shape[0])
    stacked = _is_stacked(cfgs)
    if stacked:
        n_cfg = {int(jnp.shape(x)[0]) for x in jax.tree_util.tree_leaves(cfgs) if jnp.ndim(x) > 0}
        if n_cfg != {n}:
            raise ValueError(f"stacked configs have {sorted(n_cfg)} members but {n} keys were given")
    algo = registry.algorithm_for(cfgs)
    first = jax.tree_util.tree_map(lambda x: x[0] if jnp.ndim(x) > 0 else x, cfgs) if stacked else cfgs
    _refuse_stateful_env(first, "train_population")
    checks.validate_config(first, algo.validate)
    total = -(-n // n_dev) * n_dev
    if total != n and not pad:
        raise ValueError(
            f"population of {n} does not divide over {n_dev} devices; use a multiple of {n_dev} "
            f"or pad=True (spare slots then run copies of the last member)"
        )
    keys = _pad_rows(keys, n, total)
    row = NamedSharding(mesh, P(axis))
    keys = jax.device_put(keys, row)
    if stacked:
        cfgs = jax.device_put(_pad_rows(cfgs, n, total), row)
    states, metrics = _population_fn(stacked, row)(cfgs, keys)
    if total != n:
        states, metrics = jax.tree_util.tree_map(lambda x: _first_rows(x, n), (states, metrics))
    return states, metrics


@functools.lru_cache(maxsize=64)
def _population_fn(stacked: bool, row: NamedSharding) -> Any:
    """The jitted, vmapped ``train`` of :func:`train_population`, one per (config layout, sharding): a
    fresh ``jax.jit`` per call would trace and compile the whole training program again every call."""
    return jax.jit(jax.vmap(registry.train, in_axes=(0 if stacked else None, 0)), out_shardings=row)


def _first_rows(x: jax.Array, n: int) -> jax.Array:
    """``x[:n]`` of a population-sharded array, assembled through the host: each shard is copied out on
    its own, with no cross-device program (an eager gather over simulated CPU devices can deadlock)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = np.asarray(jax.random.key_data(x))[:n]
        return jax.random.wrap_key_data(jnp.asarray(data), impl=jax.random.key_impl(x))
    return jnp.asarray(np.asarray(x)[:n])


# -------------------------------------------------------------------------------- DATA PARALLEL
def train_data_parallel(cfg: Any, key: Any, *, mesh: Mesh | None = None) -> tuple[Any, Any]:
    """Train one agent with its environments and minibatches split over ``mesh`` (default: all
    devices). ``num_envs`` and the minibatch size must divide by the device count."""
    mesh = mesh or make_mesh(DATA_AXIS)
    n_dev = mesh.shape[mesh.axis_names[0]]
    algo = registry.algorithm_for(cfg)
    _refuse_stateful_env(cfg, "train_data_parallel")
    checks.validate_config(cfg, algo.validate)
    num_envs = getattr(cfg, "num_envs", None)
    if num_envs is not None and num_envs % n_dev:
        raise ValueError(f"num_envs ({num_envs}) must divide by the {n_dev} devices for data parallelism")
    mb = getattr(cfg, "minibatch_size", None)
    if mb is not None and mb % n_dev:
        raise ValueError(f"the minibatch size ({mb}) must divide by the {n_dev} devices for data parallelism")

    return _data_parallel_fn(mesh)(cfg, prng.as_key(key))


@functools.lru_cache(maxsize=16)
def _data_parallel_fn(mesh: Mesh) -> Any:
    """The jitted ``train`` of :func:`train_data_parallel` for ``mesh``, kept so that a second call
    compiles nothing. Every trace runs inside ``data_parallel(mesh)``, where the sharding constraints
    are decided, so one jitted function per mesh is right for any config."""

    def run(c: Any, k: jax.Array) -> tuple[Any, Any]:
        with data_parallel(mesh):
            return registry.train(c, k)

    return jax.jit(run, out_shardings=NamedSharding(mesh, P()))
