"""Shuffled minibatch epochs (jaxrl.batching): the permutations and the minibatches built from them."""

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import batching


@pytest.mark.parametrize("n", [1, 2, 3, 7, 512, 513, 4096])
def test_permutations_are_permutations(n):
    p = np.asarray(batching.permutations(jax.random.key(0), 3, n))
    assert p.shape == (3, n) and p.dtype == np.int32
    for row in p:
        np.testing.assert_array_equal(np.sort(row), np.arange(n))


def test_large_batches_fall_back_to_jax_permutation():
    n = 1 << (32 - batching.MIN_KEY_BITS + 1)  # too few random bits left beside the index bits
    p = np.asarray(batching.permutations(jax.random.key(0), 1, n))
    np.testing.assert_array_equal(np.sort(p[0]), np.arange(n))


def test_permutations_are_uniform():
    # all 6 orders of 3 rows equally likely: 60,000 draws, each count within 5 sd of 10,000
    p = np.asarray(jax.jit(lambda k: batching.permutations(k, 60_000, 3))(jax.random.key(2)))
    counts = Counter(map(tuple, p))
    assert len(counts) == 6
    sd = np.sqrt(60_000 * (1 / 6) * (5 / 6))
    assert all(abs(c - 10_000) < 5 * sd for c in counts.values()), counts
    # every row equally likely in every position of a 512-row batch (the PPO CartPole size)
    p = np.asarray(batching.permutations(jax.random.key(3), 4_096, 512))
    first = np.bincount(p[:, 0], minlength=512)
    assert first.sum() == 4_096 and first.max() < 30  # mean 8; P(max >= 30) is ~1e-5 per row
    # rows are independent draws, and the same key gives the same permutations
    assert not (p[0] == p[1]).all()
    np.testing.assert_array_equal(p, np.asarray(batching.permutations(jax.random.key(3), 4_096, 512)))


def test_minibatch_epochs_visit_every_row_once_per_epoch():
    n, epochs, parts = 24, 3, 4
    batch = {"x": jnp.arange(n, dtype=jnp.float32), "y": jnp.arange(n) * 10}

    def update(carry, mb):
        assert mb["x"].shape == (n // parts,)
        return carry + 1, jnp.stack([mb["x"], mb["y"].astype(jnp.float32) / 10])

    carry, seen = jax.jit(
        lambda k: batching.minibatch_epochs(k, 0, batch, update, num_epochs=epochs, num_minibatches=parts)
    )(jax.random.key(0))
    seen = np.asarray(seen)  # [epochs, parts, 2, n // parts]
    assert int(carry) == epochs * parts and seen.shape == (epochs, parts, 2, n // parts)
    np.testing.assert_array_equal(seen[:, :, 0], seen[:, :, 1])  # leaves shuffled together
    for e in range(epochs):
        np.testing.assert_array_equal(np.sort(seen[e, :, 0].reshape(-1)), np.arange(n))
    assert not (seen[0, :, 0] == seen[1, :, 0]).all()  # a fresh order each epoch


def test_minibatch_epochs_without_shuffle_and_bad_split():
    batch = jnp.arange(8.0)
    _, seen = batching.minibatch_epochs(
        jax.random.key(0), 0, batch, lambda c, mb: (c, mb), num_epochs=2, num_minibatches=2, shuffle=False
    )
    np.testing.assert_array_equal(np.asarray(seen).reshape(2, 8), np.tile(np.arange(8.0), (2, 1)))
    with pytest.raises(ValueError, match="does not split into 3"):
        batching.minibatch_epochs(
            jax.random.key(0), 0, batch, lambda c, mb: (c, mb), num_epochs=1, num_minibatches=3
        )
