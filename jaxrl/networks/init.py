"""Weight initialisers.

``orthogonal`` is jax's orthogonal initialiser (same values, bit for bit) with one change: under
``jax.vmap`` (seeds or hyperparameters trained in parallel) the QR factorisations run one member after
another instead of as one batched LAPACK call.

Why: on CPU, jaxlib (0.10) runs a batched QR by splitting the batch over XLA's intra-op thread pool
from inside a pool worker and then blocking until the pieces finish (``jax::ParallelBatchMap``). When
every worker of the pool is inside such a call at once (two batched QRs that XLA schedules in parallel,
or one per device with several CPU devices) no worker is left to run the pieces and the program never
finishes: 0% CPU, ``block_until_ready`` waiting for good. A vmapped PPO/A2C/REINFORCE initialisation has
several independent QRs (one per orthogonally initialised layer), so with XLA's default pool (one thread
per core) or over several CPU devices it deadlocked at random (``tests/networks/test_init.py``). An
unbatched QR runs inline on its worker, so the sequential form cannot deadlock; it costs a few
microseconds per member, once, at initialisation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Callable[..., jax.Array]:
    """``jax.nn.initializers.orthogonal(scale, column_axis)``, with its QR unbatched under ``jax.vmap``
    (the batch is a ``lax.map`` over members): ``init(key, shape, dtype=float32) -> [*shape]``."""
    base = jax.nn.initializers.orthogonal(scale, column_axis)

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        shape = tuple(int(d) for d in shape)

        @jax.custom_batching.custom_vmap
        def draw(k):
            return base(k, shape, dtype)

        @draw.def_vmap
        def _one_member_at_a_time(axis_size, in_batched, k):
            (batched,) = in_batched
            if not batched:
                return draw(k), False
            return jax.lax.map(draw, k), True

        return draw(key)

    return init
