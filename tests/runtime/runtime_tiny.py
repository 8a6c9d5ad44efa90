"""The tiny PPO setup of the runtime tests (a module, not conftest.py, so it imports by name).

Every test here uses the same static config shape and ``chunk_size=4``, so the chunk program is
compiled once per test session (``chunks.make_chunk_fn`` is cached and jit keys on the config's
static fields); learning-rate changes are pytree leaves and reuse it.
"""

import jax
import numpy as np

import jaxrl

CHUNK = 4
ITERATIONS = 24


def tiny_config(**kw):
    """PPO on CartPole with 2 envs x 8 steps, one 8-unit layer: 24 updates of 16 env steps."""
    base = dict(
        num_envs=2,
        num_steps=8,
        total_timesteps=16 * ITERATIONS,
        hidden=(8,),
        num_epochs=1,
        num_minibatches=1,
    )
    base.update(kw)
    return jaxrl.PPOConfig(**base)


def leaves_equal(a, b) -> bool:
    """Every leaf bitwise equal (typed PRNG keys compared by their key data)."""

    def host(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(host(x), host(y)) for x, y in zip(la, lb, strict=True))
