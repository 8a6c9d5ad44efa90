"""Shuffled minibatch epochs over a flat batch: shared by PPO, A2C-style and GRPO updates."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import sharding

#: Fewest random bits a sort key of :func:`permutations` keeps after the index bits; below it (batches
#: of more than 2**20 rows) ``jax.random.permutation`` is used.
MIN_KEY_BITS = 12


def permutations(key: jax.Array, num: int, n: int) -> jax.Array:
    """``num`` independent uniformly random permutations of ``range(n)``: int32 ``[num, n]``.

    The same method as ``jax.random.permutation`` (sort by random keys; a tie keeps the order of the
    previous round, and enough rounds make a tie-decided order as unlikely as jax's bound), but each
    round is one sort of one uint32 array: the key's low ``ceil(log2 n)`` bits hold the row index, the
    high bits are random. On CPU that sort is ~5x faster than the key-and-payload sort of
    ``jax.random.permutation`` (PPO CartPole: 0.05 s instead of 0.27 s for 1,024 updates of 4 epochs
    x 512 rows, ~7% of the whole run). Rounds: ``ceil(3 ln n / ln 2**random_bits)`` (jax uses
    ``ceil(3 ln n / ln 2**32)``), two for a 512-row batch. Batches over ``2**(32 - MIN_KEY_BITS)`` rows
    fall back to ``jax.random.permutation``.
    """
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 32 - index_bits
    if random_bits < MIN_KEY_BITS:
        return jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, num)).astype(jnp.int32)
    rounds = max(1, math.ceil(3 * math.log(max(n, 2)) / (random_bits * math.log(2))))
    low = jnp.uint32((1 << index_bits) - 1)
    position = jnp.arange(n, dtype=jnp.uint32)
    perm = None
    for k in jax.random.split(key, rounds):
        bits = jax.random.bits(k, (num, n), jnp.uint32)
        order = (jnp.sort((bits & ~low) | position[None, :], axis=-1) & low).astype(jnp.int32)
        perm = order if perm is None else jnp.take_along_axis(perm, order, axis=-1)
    return perm


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
        idx = permutations(key, num_epochs, n).reshape(-1)  # [E * N]
        mbs = jax.tree_util.tree_map(lambda x: x[idx], batch)
    else:
        mbs = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (num_epochs,) + x.shape).reshape((-1,) + x.shape[1:]), batch
        )
    mbs = jax.tree_util.tree_map(lambda x: x.reshape((num_epochs * num_minibatches, -1) + x.shape[1:]), mbs)
    # Data-parallel runs split each minibatch over devices (a no-op otherwise).
    carry, metrics = jax.lax.scan(lambda c, mb: update(c, sharding.shard_batch(mb)), carry, mbs)
    return carry, jax.tree_util.tree_map(
        lambda m: m.reshape((num_epochs, num_minibatches) + m.shape[1:]), metrics
    )
