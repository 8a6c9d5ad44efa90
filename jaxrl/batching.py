"""Shuffled minibatch epochs over a flat batch: shared by PPO, A2C-style and GRPO updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import parallel


def minibatch_epochs(
    key: jax.Array,
    carry: Any,
    batch: Any,
    update: Callable[[Any, Any], tuple[Any, Any]],
    *,
    num_epochs: int,
    num_minibatches: int,
    shuffle: bool = True,
) -> tuple[Any, Any]:
    """Run ``update(carry, minibatch) -> (carry, metrics)`` over ``num_epochs`` shuffled passes of
    ``batch`` (leaves ``[N, ...]``) split into ``num_minibatches`` equal parts.

    Returns the final carry and metrics stacked ``[num_epochs, num_minibatches, ...]``.
    """
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    if n % num_minibatches:
        raise ValueError(f"batch of {n} does not split into {num_minibatches} equal minibatches")

    # Every epoch's permutation is drawn and applied at once (one gather per leaf, outside the loop),
    # then one scan runs the num_epochs * num_minibatches steps: the same minibatches in the same order
    # as shuffling epoch by epoch with split(key, num_epochs).
    if shuffle:
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, num_epochs))
        idx = perms.reshape(-1)  # [E * N]
        mbs = jax.tree_util.tree_map(lambda x: x[idx], batch)
    else:
        mbs = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (num_epochs,) + x.shape).reshape((-1,) + x.shape[1:]), batch
        )
    mbs = jax.tree_util.tree_map(lambda x: x.reshape((num_epochs * num_minibatches, -1) + x.shape[1:]), mbs)
    # Data-parallel runs split each minibatch over devices (a no-op otherwise).
    carry, metrics = jax.lax.scan(lambda c, mb: update(c, parallel.shard_batch(mb)), carry, mbs)
    return carry, jax.tree_util.tree_map(
        lambda m: m.reshape((num_epochs, num_minibatches) + m.shape[1:]), metrics
    )
