"""FSDP-style placement for GRPO over a 1-D device mesh (``jax.sharding``).

Every parameter (and its Adam moments) is split along its largest axis that the device count divides
(fully sharded data parallel: each device holds 1/n of the weights and optimizer state; leaves with
no such axis, e.g. scalars, are replicated), and the completions of a batch are split along the batch
axis (data parallel). The jitted GRPO programs are unchanged: given inputs placed this way, XLA's SPMD
partitioner gathers each weight where it is used and reduces the gradients, so the same program runs
on one device or many and gives the same update up to float summation order.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "fsdp"


@functools.cache
def make_mesh(num_devices: int) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices."""
    devices = jax.devices()
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"cannot shard over {num_devices} devices: {len(devices)} available (on CPU, simulate more with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts)"
        )
    return Mesh(np.asarray(devices[:num_devices]), (AXIS,))


def leaf_spec(shape: tuple[int, ...], n: int) -> PartitionSpec:
    """Split the largest axis of ``shape`` that ``n`` divides; replicate when none does."""
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % n == 0 and shape[axis] >= n:
            return PartitionSpec(*([None] * axis + [AXIS]))
    return PartitionSpec()


def shard_params(tree: Any, mesh: Mesh) -> Any:
    """Parameters / optimizer state placed FSDP-style (see the module docstring)."""
    n = mesh.devices.size

    def place(x):
        if not hasattr(x, "shape"):
            return x
        return jax.device_put(x, NamedSharding(mesh, leaf_spec(tuple(x.shape), n)))

    return jax.tree.map(place, tree)


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Arrays whose leading axis is the batch, split over the devices along it (replicated if the batch
    does not divide)."""
    n = mesh.devices.size

    def place(x):
        if x is None or not hasattr(x, "shape") or not x.shape:
            return x
        spec = PartitionSpec(AXIS) if x.shape[0] % n == 0 else PartitionSpec()
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree.map(place, tree, is_leaf=lambda x: x is None)
