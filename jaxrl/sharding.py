"""Sharding helpers used inside traced code: meshes, the active data-parallel mesh, ``shard_batch``.

Below the rollout and minibatching (which call :func:`shard_batch` unconditionally; a no-op outside
:func:`data_parallel`) and below :mod:`jaxrl.parallel`, which builds whole sharded training runs on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

POP_AXIS = "pop"
DATA_AXIS = "data"


def make_mesh(axis_name: str, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh over ``devices`` (default: every device of every process)."""
    devs = np.asarray(list(devices) if devices is not None else jax.devices())
    return Mesh(devs, (axis_name,))


def shard_population(tree: Any, *, mesh: Mesh | None = None) -> Any:
    """Place the leading (member) axis of every array leaf of ``tree`` across ``mesh`` (default: all
    devices, axis ``"pop"``), so that a jitted, vmapped program over the members runs each device's
    share there. Unchanged on one device, or when the member count does not divide over the devices
    (then the population runs on the default device, as a plain ``jax.vmap`` does). Used by the runtime
    driver for ``jaxrl.run(..., seeds=N)`` / ``jaxrl train --seeds N --sweep ...``."""
    mesh = mesh or make_mesh(POP_AXIS)
    n_dev = mesh.shape[mesh.axis_names[0]]
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if jnp.ndim(x) > 0]
    if n_dev == 1 or not leaves or any(int(jnp.shape(x)[0]) % n_dev for x in leaves):
        return tree
    row = NamedSharding(mesh, P(mesh.axis_names[0]))
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, row) if jnp.ndim(x) > 0 else x, tree)


_ACTIVE: list[tuple[Mesh, str]] = []


@contextlib.contextmanager
def data_parallel(mesh: Mesh, axis_name: str | None = None) -> Iterator[None]:
    """While tracing inside this context, :func:`shard_batch` constrains batch axes to ``mesh``."""
    _ACTIVE.append((mesh, axis_name or mesh.axis_names[0]))
    try:
        yield
    finally:
        _ACTIVE.pop()


def shard_batch(tree: Any, axis: int = 0) -> Any:
    """Constrain ``axis`` of every array leaf to be split over the active data-parallel mesh.

    A no-op outside :func:`data_parallel` (the usual single-device case), so shared code (the rollout,
    minibatching) calls it unconditionally. Leaves whose axis does not divide are left alone.
    Environments with state outside JAX (envpool) are refused before tracing by
    :func:`jaxrl.parallel.train_data_parallel`; use :func:`data_parallel` directly only with gymnax environments.
    """
    if not _ACTIVE:
        return tree
    mesh, name = _ACTIVE[-1]
    n = mesh.shape[name]

    def constrain(x: Any) -> Any:
        if not hasattr(x, "ndim") or x.ndim <= axis or x.shape[axis] % n:
            return x
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        spec = [None] * x.ndim
        spec[axis] = name
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(*spec)))

    return jax.tree_util.tree_map(constrain, tree)
