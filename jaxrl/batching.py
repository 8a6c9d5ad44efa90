"""Shuffled minibatch epochs over a flat batch: shared by PPO, A2C-style and GRPO updates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

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

    def epoch(c, k):
        if shuffle:
            perm = jax.random.permutation(k, n)
            shuffled = jax.tree_util.tree_map(lambda x: x[perm], batch)
        else:
            shuffled = batch
        mbs = jax.tree_util.tree_map(lambda x: x.reshape((num_minibatches, -1) + x.shape[1:]), shuffled)
        # Data-parallel runs split each minibatch over devices (a no-op otherwise).
        return jax.lax.scan(lambda c2, mb: update(c2, parallel.shard_batch(mb)), c, mbs)

    return jax.lax.scan(epoch, carry, jax.random.split(key, num_epochs))
