"""Bradley-Terry preference loss: hand-computed values, gradient signs, stability, jit/vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import losses
from jaxrl.losses.preference import preference_accuracy, preference_loss


def _ref(rc: float, rr: float, m: float = 0.0) -> float:
    """Plain-Python -log(sigmoid(rc - rr - m)), fine for moderate gaps."""
    return -math.log(1.0 / (1.0 + math.exp(-(rc - rr - m))))


@pytest.mark.parametrize("jit", [False, True])
class TestPreferenceLoss:
    def _f(self, jit):
        return jax.jit(preference_loss) if jit else preference_loss

    def test_hand_computed(self, jit):
        f = self._f(jit)
        # equal rewards: -log sigmoid(0) = log 2 = 0.693147
        np.testing.assert_allclose(f(jnp.float32(1.5), jnp.float32(1.5)), math.log(2.0), rtol=1e-6)
        # gap 2: -log sigmoid(2) = log(1 + e^-2) = log(1.135335) = 0.126928
        np.testing.assert_allclose(f(jnp.float32(3.0), jnp.float32(1.0)), 0.126928, rtol=1e-5)
        # gap -2 (wrong order): log(1 + e^2) = log(8.389056) = 2.126928
        np.testing.assert_allclose(f(jnp.float32(1.0), jnp.float32(3.0)), 2.126928, rtol=1e-5)

    def test_margin(self, jit):
        # gap 2, margin 1 -> -log sigmoid(1) = log(1 + e^-1) = log(1.367879) = 0.313262
        f = (
            jax.jit(lambda a, b: preference_loss(a, b, margin=1.0))
            if jit
            else (lambda a, b: preference_loss(a, b, margin=1.0))
        )
        np.testing.assert_allclose(f(jnp.float32(3.0), jnp.float32(1.0)), 0.313262, rtol=1e-5)
        # margin equal to the gap gives log 2 again
        np.testing.assert_allclose(
            preference_loss(jnp.float32(3.0), jnp.float32(1.0), margin=2.0), math.log(2), rtol=1e-6
        )

    def test_gradient_sign(self, jit):
        g = jax.grad(preference_loss, argnums=(0, 1))
        g = jax.jit(g) if jit else g
        gc, gr = g(jnp.float32(0.3), jnp.float32(0.7))
        # d/d r_c = -sigmoid(-(gap)) = -sigmoid(0.4) = -0.598688; d/d r_r = +0.598688
        np.testing.assert_allclose(gc, -0.598688, rtol=1e-5)
        np.testing.assert_allclose(gr, 0.598688, rtol=1e-5)
        # gradient descent raises the chosen reward and lowers the rejected one
        assert gc < 0 < gr

    @pytest.mark.parametrize("gap", [100.0, -100.0, 1e4, -1e4])
    def test_stable_for_large_gaps(self, jit, gap):
        f = self._f(jit)
        rc, rr = jnp.float32(gap / 2), jnp.float32(-gap / 2)
        val = f(rc, rr)
        gc, gr = jax.grad(preference_loss, argnums=(0, 1))(rc, rr)
        assert np.isfinite(val) and np.isfinite(gc) and np.isfinite(gr)
        if gap > 0:  # confidently right: loss and gradient vanish
            assert float(val) < 1e-30 or float(val) == 0.0
            assert abs(float(gc)) < 1e-30
        else:  # confidently wrong: loss ~ |gap|, gradient magnitude 1
            np.testing.assert_allclose(val, -gap, rtol=1e-6)
            np.testing.assert_allclose(gc, -1.0, rtol=1e-6)
            np.testing.assert_allclose(gr, 1.0, rtol=1e-6)


def test_matches_reference_on_random_inputs():
    rng = np.random.default_rng(0)
    rc, rr, m = rng.normal(size=(3, 64)).astype(np.float32) * 3
    got = jax.vmap(lambda a, b, c: preference_loss(a, b, margin=c))(rc, rr, m)
    want = [_ref(float(a), float(b), float(c)) for a, b, c in zip(rc, rr, m, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_vmap_equals_loop_and_jit():
    rng = np.random.default_rng(1)
    rc, rr = jnp.asarray(rng.normal(size=(2, 16)), jnp.float32)
    batched = jax.vmap(preference_loss)(rc, rr)
    jitted = jax.jit(jax.vmap(preference_loss))(rc, rr)
    looped = jnp.stack([preference_loss(a, b) for a, b in zip(rc, rr, strict=True)])
    np.testing.assert_allclose(batched, looped, rtol=1e-6)
    np.testing.assert_allclose(jitted, looped, rtol=1e-6)


def test_rank_and_dtype_checked():
    with pytest.raises(AssertionError):
        preference_loss(jnp.zeros(3), jnp.zeros(3))  # one pair per call; vmap for batches
    with pytest.raises(AssertionError):
        preference_loss(jnp.int32(1), jnp.int32(0))


def test_accuracy_and_export():
    assert losses.preference_loss is preference_loss
    # 2 > 1 right, 1 < 2 wrong, tie wrong
    acc = jax.vmap(preference_accuracy)(jnp.array([2.0, 1.0, 0.5]), jnp.array([1.0, 2.0, 0.5]))
    np.testing.assert_array_equal(acc, [1.0, 0.0, 0.0])
