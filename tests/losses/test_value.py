"""jaxrl.losses.value: Q-learning, double Q-learning, Huber and L2 losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import value

Q_TM1 = jnp.asarray([1.0, 2.0, 3.0])
Q_T = jnp.asarray([4.0, 0.0, -1.0])
A = jnp.asarray(1, jnp.int32)


# ------------------------------------------------------------------------------ plain references
def ref_q_learning(q_tm1, a, r, d, q_t):
    return r + d * np.max(q_t) - q_tm1[a]


def ref_double_q(q_tm1, a, r, d, q_t_target, q_t_online):
    return r + d * q_t_target[int(np.argmax(q_t_online))] - q_tm1[a]


def ref_huber(x, delta):
    return np.where(np.abs(x) <= delta, 0.5 * x**2, delta * (np.abs(x) - 0.5 * delta))


def random_batch(seed, B=16, A=5):
    rng = np.random.default_rng(seed)
    q_tm1 = rng.normal(size=(B, A)).astype(np.float32)
    a = rng.integers(0, A, size=B).astype(np.int32)
    r = rng.normal(size=B).astype(np.float32)
    d = (0.99 * (rng.random(B) > 0.2)).astype(np.float32)  # some terminal transitions (discount 0)
    q_t = rng.normal(size=(B, A)).astype(np.float32)
    q_online = rng.normal(size=(B, A)).astype(np.float32)
    return q_tm1, a, r, d, q_t, q_online


class TestQLearning:
    def test_hand_computed(self):
        # target = 0.5 + 0.9 * max(4, 0, -1) = 4.1;  td = 4.1 - q_tm1[1] = 4.1 - 2 = 2.1
        td = value.q_learning(Q_TM1, A, jnp.asarray(0.5), jnp.asarray(0.9), Q_T)
        np.testing.assert_allclose(td, 2.1, rtol=1e-6)

    def test_terminal_has_no_bootstrap(self):
        # discount 0 (terminated): td = 0.5 - 2 = -1.5
        td = value.q_learning(Q_TM1, A, jnp.asarray(0.5), jnp.asarray(0.0), Q_T)
        np.testing.assert_allclose(td, -1.5, rtol=1e-6)

    def test_gradient_only_through_q_tm1(self):
        def loss(q_tm1, q_t):
            return value.l2_loss(value.q_learning(q_tm1, A, jnp.asarray(0.5), jnp.asarray(0.9), q_t))

        g_tm1, g_t = jax.grad(loss, argnums=(0, 1))(Q_TM1, Q_T)
        # d/dq_tm1[a] of 0.5 td^2 = -td = -2.1, zero elsewhere; the target is not differentiated
        np.testing.assert_allclose(g_tm1, [0.0, -2.1, 0.0], rtol=1e-6)
        np.testing.assert_allclose(g_t, [0.0, 0.0, 0.0])

    def test_matches_reference_jit_and_vmap(self):
        q_tm1, a, r, d, q_t, _ = random_batch(0)
        want = np.array([ref_q_learning(q_tm1[i], a[i], r[i], d[i], q_t[i]) for i in range(len(a))])
        f = jax.vmap(value.q_learning)
        np.testing.assert_allclose(f(q_tm1, a, r, d, q_t), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jax.jit(f)(q_tm1, a, r, d, q_t), want, rtol=1e-5, atol=1e-6)
        one = value.q_learning(*(jnp.asarray(x[3]) for x in (q_tm1, a, r, d, q_t)))
        np.testing.assert_allclose(one, want[3], rtol=1e-5, atol=1e-6)

    def test_rank_and_type_errors(self):
        r, d = jnp.asarray(0.5), jnp.asarray(0.9)
        with pytest.raises(AssertionError):  # batched input without vmap
            value.q_learning(Q_TM1[None], A[None], r[None], d[None], Q_T[None])
        with pytest.raises(AssertionError):  # float action
            value.q_learning(Q_TM1, jnp.asarray(1.0), r, d, Q_T)


class TestDoubleQLearning:
    def test_hand_computed(self):
        # online net picks argmax(0, 5, 1) = action 1; target net values it: q_t_target[1] = 0
        # target = 0.5 + 0.9 * 0 = 0.5;  td = 0.5 - 2 = -1.5  (plain Q-learning would give 2.1)
        online = jnp.asarray([0.0, 5.0, 1.0])
        td = value.double_q_learning(Q_TM1, A, jnp.asarray(0.5), jnp.asarray(0.9), Q_T, online)
        np.testing.assert_allclose(td, -1.5, rtol=1e-6)

    def test_equals_q_learning_when_online_is_target(self):
        args = (Q_TM1, A, jnp.asarray(0.5), jnp.asarray(0.9), Q_T)
        np.testing.assert_allclose(value.double_q_learning(*args, Q_T), value.q_learning(*args))

    def test_gradient_only_through_q_tm1(self):
        online = jnp.asarray([0.0, 5.0, 1.0])

        def loss(q_tm1, q_t, q_on):
            return value.l2_loss(
                value.double_q_learning(q_tm1, A, jnp.asarray(0.5), jnp.asarray(0.9), q_t, q_on)
            )

        g = jax.grad(loss, argnums=(0, 1, 2))(Q_TM1, Q_T, online)
        np.testing.assert_allclose(g[0], [0.0, 1.5, 0.0], rtol=1e-6)  # -td = 1.5
        np.testing.assert_allclose(g[1], 0.0)
        np.testing.assert_allclose(g[2], 0.0)

    def test_matches_reference_jit_and_vmap(self):
        q_tm1, a, r, d, q_t, q_on = random_batch(1)
        want = np.array([ref_double_q(q_tm1[i], a[i], r[i], d[i], q_t[i], q_on[i]) for i in range(len(a))])
        f = jax.vmap(value.double_q_learning)
        np.testing.assert_allclose(f(q_tm1, a, r, d, q_t, q_on), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(jax.jit(f)(q_tm1, a, r, d, q_t, q_on), want, rtol=1e-5, atol=1e-6)

    def test_rank_errors(self):
        r, d = jnp.asarray(0.5), jnp.asarray(0.9)
        with pytest.raises(AssertionError):
            value.double_q_learning(Q_TM1, A, r, d, Q_T, Q_T[None])
        with pytest.raises(AssertionError):
            value.double_q_learning(Q_TM1, A, r[None], d, Q_T, Q_T)


class TestHuberAndL2:
    def test_huber_hand_computed(self):
        x = jnp.asarray([-3.0, -0.5, 0.0, 0.5, 2.0])
        # delta 1: |x| > 1 -> 1 * (|x| - 0.5): -3 -> 2.5, 2 -> 1.5;  |x| <= 1 -> 0.5 x^2: 0.125, 0, 0.125
        np.testing.assert_allclose(value.huber_loss(x), [2.5, 0.125, 0.0, 0.125, 1.5])
        # delta 2: 3 -> 2 * (3 - 1) = 4;  1 -> 0.5
        np.testing.assert_allclose(value.huber_loss(jnp.asarray([3.0, 1.0]), 2.0), [4.0, 0.5])

    def test_huber_matches_reference_and_gradient_is_clipped(self):
        x = np.random.default_rng(2).normal(scale=3.0, size=(4, 7)).astype(np.float32)
        np.testing.assert_allclose(value.huber_loss(x, 1.5), ref_huber(x, 1.5), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(jax.jit(value.huber_loss)(x, 1.5), ref_huber(x, 1.5), rtol=1e-6, atol=1e-6)
        grad = jax.grad(lambda y: value.huber_loss(y, 1.5).sum())(x)
        np.testing.assert_allclose(grad, np.clip(x, -1.5, 1.5), rtol=1e-6)

    def test_l2(self):
        # 0.5 * [4, 0.25, 0] = [2, 0.125, 0]
        np.testing.assert_allclose(value.l2_loss(jnp.asarray([-2.0, 0.5, 0.0])), [2.0, 0.125, 0.0])
        np.testing.assert_allclose(jax.grad(lambda y: value.l2_loss(y).sum())(jnp.asarray([3.0])), [3.0])


@pytest.mark.parametrize("f", [value.huber_loss, value.l2_loss], ids=["huber_loss", "l2_loss"])
def test_elementwise_losses_jit_nojit_vmap_agree(f):
    x = np.random.default_rng(6).normal(scale=2.0, size=(3, 5)).astype(np.float32)
    eager = np.stack([np.asarray(f(x[i])) for i in range(3)])
    np.testing.assert_allclose(jax.vmap(f)(x), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(f)(x), eager, rtol=1e-6)
