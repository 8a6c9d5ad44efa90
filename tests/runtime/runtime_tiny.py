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
        rollout_steps=8,
        total_timesteps=16 * ITERATIONS,
        hidden=(8,),
        num_epochs=1,
        num_minibatches=1,
    )
    base.update(kw)
    return jaxrl.PPOConfig(**base)


def leaves_equal(a, b) -> bool:
    """Every leaf bitwise equal on the CPU (typed PRNG keys compared by their key data).

    On a GPU/TPU, XLA fuses a 24-iteration scan differently from 3 chunks of 8, so float leaves may
    differ in the last bits (seen on an H200: 2e-7 relative); there they must agree to 1e-5 relative,
    still far below what a reused or skipped key changes (1e-2 and more). Integer leaves stay exact.
    """
    exact = jax.default_backend() == "cpu"

    def host(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)

    def same(x, y):
        x, y = host(x), host(y)
        if exact or not np.issubdtype(x.dtype, np.floating):
            return np.array_equal(x, y)
        return x.shape == y.shape and np.allclose(x, y, rtol=1e-5, atol=1e-7)

    return len(la) == len(lb) and all(same(x, y) for x, y in zip(la, lb, strict=True))
