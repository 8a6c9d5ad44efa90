"""jaxrl.losses.returns: reward-to-go, GAE, truncation-aware GAE, TD targets.

Hand-computed cases (arithmetic in comments), plain-numpy references on random inputs, jit / no-jit /
vmap agreement and chex rank errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import returns

# --------------------------------------------------------------------------- plain-numpy references


def ref_discounted_returns(r, d, bootstrap):
    g, out = float(bootstrap), np.zeros(len(r))
    for t in reversed(range(len(r))):
        g = r[t] + d[t] * g
        out[t] = g
    return out


def ref_truncated_gae(r, d, v_tm1, v_t, end, lam):
    adv, acc = np.zeros(len(r)), 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + d[t] * v_t[t] - v_tm1[t]
        acc = delta + d[t] * lam * (0.0 if end[t] else 1.0) * acc
        adv[t] = acc
    return adv


def ref_gae(r, d, values, lam):
    return ref_truncated_gae(r, d, values[:-1], values[1:], np.zeros(len(r), bool), lam)


def random_stream(seed, T=17, gamma=0.9, p_term=0.15, p_trunc=0.1):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=T).astype(np.float32)
    terminated = rng.random(T) < p_term
    truncated = (rng.random(T) < p_trunc) & ~terminated
    d = (gamma * (1.0 - terminated)).astype(np.float32)
    end = terminated | truncated
    v_tm1 = rng.normal(size=T).astype(np.float32)
    # within an episode V(s_{t+1}) is the next step's V(s_t); at an episode end it is V(final obs)
    v_final = rng.normal(size=T).astype(np.float32)
    v_t = np.where(end, v_final, np.append(v_tm1[1:], v_final[-1])).astype(np.float32)
    return r, d, v_tm1, v_t, end


# jitted once per module: the reference comparisons then compile once per shape, not once per call
discounted_returns_jit = jax.jit(returns.discounted_returns)
gae_jit = jax.jit(returns.gae)
truncated_gae_jit = jax.jit(returns.truncated_gae)


def f32(*xs):
    return [jnp.asarray(x, jnp.float32) for x in xs]


# ------------------------------------------------------------------------------ discounted_returns


class TestDiscountedReturns:
    def test_hand_computed_with_bootstrap(self):
        r, d = f32([1.0, 2.0, 3.0], [0.9, 0.9, 0.9])
        # G2 = 3 + 0.9 * 10 = 12;  G1 = 2 + 0.9 * 12 = 12.8;  G0 = 1 + 0.9 * 12.8 = 12.52
        np.testing.assert_allclose(returns.discounted_returns(r, d, 10.0), [12.52, 12.8, 12.0], rtol=1e-6)

    def test_terminates_mid_sequence(self):
        # terminated at t=1, so discount_1 = 0: the second episode's return never reaches t <= 1
        r, d = f32([1.0, 1.0, 1.0, 1.0], [0.9, 0.0, 0.9, 0.9])
        # G3 = 1 + 0.9*2 = 2.8;  G2 = 1 + 0.9*2.8 = 3.52;  G1 = 1 + 0*3.52 = 1;  G0 = 1 + 0.9*1 = 1.9
        np.testing.assert_allclose(returns.discounted_returns(r, d, 2.0), [1.9, 1.0, 3.52, 2.8], rtol=1e-6)

    def test_default_bootstrap_is_zero(self):
        r, d = f32([1.0, 1.0], [0.5, 0.5])
        # G1 = 1;  G0 = 1 + 0.5 = 1.5
        np.testing.assert_allclose(returns.discounted_returns(r, d), [1.5, 1.0])

    @pytest.mark.parametrize("seed", range(3))
    def test_matches_reference(self, seed):
        r, d, _, v, _ = random_stream(seed)
        out = discounted_returns_jit(*f32(r, d), v[-1])
        np.testing.assert_allclose(out, ref_discounted_returns(r, d, v[-1]), rtol=1e-5, atol=1e-5)

    def test_jit_vmap_agree(self):
        streams = [random_stream(s) for s in range(4)]
        r = np.stack([s[0] for s in streams])
        d = np.stack([s[1] for s in streams])
        b = np.asarray([s[3][-1] for s in streams])
        eager = np.stack([ref_discounted_returns(r[i], d[i], b[i]) for i in range(4)])
        r, d, b = f32(r, d, b)
        np.testing.assert_allclose(
            returns.discounted_returns(r[0], d[0], b[0]), eager[0], rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            jax.jit(returns.discounted_returns)(r[0], d[0], b[0]), eager[0], rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(jax.vmap(returns.discounted_returns)(r, d, b), eager, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            jax.jit(jax.vmap(returns.discounted_returns))(r, d, b), eager, rtol=1e-5, atol=1e-5
        )

    def test_rank_errors(self):
        with pytest.raises(AssertionError):
            returns.discounted_returns(jnp.ones((3, 1)), jnp.ones((3, 1)))
        with pytest.raises(AssertionError):
            returns.discounted_returns(jnp.ones(3), jnp.ones(4))
        with pytest.raises(AssertionError):
            jax.jit(returns.discounted_returns)(jnp.ones((2, 3)), jnp.ones((2, 3)))


# -------------------------------------------------------------------------------------------- gae


class TestGAE:
    def test_hand_computed_terminating(self):
        r, d, v = f32([1.0, 0.0, 2.0], [0.5, 0.5, 0.0], [1.0, 2.0, 3.0, 4.0])  # terminates at t=2
        # delta0 = 1 + 0.5*2 - 1 = 1;  delta1 = 0 + 0.5*3 - 2 = -0.5;  delta2 = 2 + 0*4 - 3 = -1
        # lambda = 0.5:  A2 = -1;  A1 = -0.5 + 0.5*0.5*(-1) = -0.75;  A0 = 1 + 0.25*(-0.75) = 0.8125
        np.testing.assert_allclose(returns.gae(r, d, v, 0.5), [0.8125, -0.75, -1.0], rtol=1e-6)

    def test_lambda_zero_is_td_error_and_one_is_monte_carlo(self):
        r, d, _, _, _ = random_stream(0, T=9)
        v = np.random.default_rng(1).normal(size=10).astype(np.float32)
        td = returns.gae(*f32(r, d, v), 0.0)
        np.testing.assert_allclose(td, r + d * v[1:] - v[:-1], rtol=1e-5, atol=1e-6)
        mc = returns.gae(*f32(r, d, v), 1.0)
        g = ref_discounted_returns(r, d, v[-1])
        np.testing.assert_allclose(mc, g - v[:-1], rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
    def test_matches_reference(self, lam):
        r, d, _, _, _ = random_stream(3)
        v = np.random.default_rng(4).normal(size=len(r) + 1).astype(np.float32)
        np.testing.assert_allclose(gae_jit(*f32(r, d, v), lam), ref_gae(r, d, v, lam), rtol=1e-5, atol=1e-5)

    def test_rank_errors(self):
        with pytest.raises(AssertionError):  # values must be [T+1]
            returns.gae(jnp.ones(3), jnp.ones(3), jnp.ones(3), 0.9)
        with pytest.raises(AssertionError):
            returns.gae(jnp.ones((3, 2)), jnp.ones((3, 2)), jnp.ones((4, 2)), 0.9)


# ----------------------------------------------------------------------------------- truncated_gae


class TestTruncatedGAE:
    def test_hand_computed_truncation_then_termination(self):
        # Two episodes in one stream, gamma = 0.9, lambda = 0.5:
        #   t=0,1: episode 1, cut by the time limit at t=1 (truncated: discount stays 0.9, trace cut)
        #   t=2,3: episode 2, terminates at t=3 (discount 0)
        r = [1.0, 1.0, 1.0, 1.0]
        d = [0.9, 0.9, 0.9, 0.0]
        end = [False, True, False, True]
        v_tm1 = [1.0, 2.0, 3.0, 4.0]  # V(s0), V(s1), V(s2'), V(s3')
        v_t = [2.0, 5.0, 4.0, 7.0]  # V(s1), V(final obs of episode 1) = 5, V(s3'), V(terminal) (unused)
        # delta0 = 1 + 0.9*2 - 1 = 1.8
        # delta1 = 1 + 0.9*5 - 2 = 3.5    (bootstraps from V(final obs) = 5, not from V(s2') = 3)
        # delta2 = 1 + 0.9*4 - 3 = 1.6
        # delta3 = 1 + 0*7 - 4  = -3
        # trace = d * lambda * (1 - end) = [0.45, 0, 0.45, 0]
        # A3 = -3;  A2 = 1.6 + 0.45*(-3) = 0.25;  A1 = 3.5 + 0*0.25 = 3.5;  A0 = 1.8 + 0.45*3.5 = 3.375
        adv = returns.truncated_gae(*f32(r, d, v_tm1, v_t), jnp.asarray(end), 0.5)
        np.testing.assert_allclose(adv, [3.375, 3.5, 0.25, -3.0], rtol=1e-6)

    def test_truncation_is_not_termination(self):
        # The same stream with the truncation wrongly treated as termination (discount 0 at t=1)
        # gives delta1 = 1 + 0 - 2 = -1: truncated_gae must not do that.
        r, v_tm1, v_t = f32([1.0, 1.0], [1.0, 2.0], [2.0, 5.0])
        cut = jnp.asarray([False, True])
        truncated = returns.truncated_gae(r, jnp.asarray([0.9, 0.9]), v_tm1, v_t, cut, 0.5)
        terminal = returns.truncated_gae(r, jnp.asarray([0.9, 0.0]), v_tm1, v_t, cut, 0.5)
        # truncated: A1 = 3.5, A0 = 1.8 + 0.45*3.5 = 3.375;  terminal: A1 = -1, A0 = 1.8 + 0.45*(-1) = 1.35
        np.testing.assert_allclose(truncated, [3.375, 3.5], rtol=1e-6)
        np.testing.assert_allclose(terminal, [1.35, -1.0], rtol=1e-6)

    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
    def test_matches_reference(self, seed, lam):
        r, d, v_tm1, v_t, end = random_stream(seed)
        adv = truncated_gae_jit(*f32(r, d, v_tm1, v_t), jnp.asarray(end), lam)
        np.testing.assert_allclose(adv, ref_truncated_gae(r, d, v_tm1, v_t, end, lam), rtol=1e-5, atol=1e-5)

    @pytest.mark.parametrize("seed", range(3))
    def test_equals_per_episode_gae(self, seed):
        # Cutting the stream at every episode end and running plain gae on each segment, bootstrapping
        # from V(true next state) of the segment's last step, gives the same advantages.
        r, d, v_tm1, v_t, end = random_stream(seed, T=23)
        adv = np.asarray(truncated_gae_jit(*f32(r, d, v_tm1, v_t), jnp.asarray(end), 0.8))
        start = 0
        for t in range(len(r)):
            if end[t] or t == len(r) - 1:
                seg = slice(start, t + 1)
                values = np.concatenate([v_tm1[seg], v_t[t : t + 1]])
                np.testing.assert_allclose(
                    adv[seg], ref_gae(r[seg], d[seg], values, 0.8), rtol=1e-5, atol=1e-5
                )
                start = t + 1

    def test_no_ends_equals_gae(self):
        r, d, _, _, _ = random_stream(7)
        v = np.random.default_rng(8).normal(size=len(r) + 1).astype(np.float32)
        no_end = jnp.zeros(len(r), bool)
        np.testing.assert_allclose(
            returns.truncated_gae(*f32(r, d, v[:-1], v[1:]), no_end, 0.9),
            returns.gae(*f32(r, d, v), 0.9),
            rtol=1e-6,
        )

    def test_per_step_lambda(self):
        r, d, v_tm1, v_t, end = random_stream(9, T=6)
        lam = np.linspace(0.0, 1.0, 6).astype(np.float32)
        adv = returns.truncated_gae(*f32(r, d, v_tm1, v_t), jnp.asarray(end), jnp.asarray(lam))
        want = np.zeros(6)
        acc = 0.0
        for t in reversed(range(6)):
            acc = r[t] + d[t] * v_t[t] - v_tm1[t] + d[t] * lam[t] * (1 - end[t]) * acc
            want[t] = acc
        np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-5)

    def test_jit_vmap_agree(self):
        streams = [random_stream(s) for s in range(5)]
        r, d, v_tm1, v_t, end = (np.stack([s[i] for s in streams]) for i in range(5))
        eager = np.stack([ref_truncated_gae(r[i], d[i], v_tm1[i], v_t[i], end[i], 0.95) for i in range(5)])
        r, d, v_tm1, v_t, end = (jnp.asarray(x) for x in (r, d, v_tm1, v_t, end))
        f = lambda *a: returns.truncated_gae(*a, 0.95)
        np.testing.assert_allclose(f(r[1], d[1], v_tm1[1], v_t[1], end[1]), eager[1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            jax.jit(f)(r[1], d[1], v_tm1[1], v_t[1], end[1]), eager[1], rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(jax.vmap(f)(r, d, v_tm1, v_t, end), eager, rtol=1e-5, atol=1e-5)
        # time-major [T, B] batches, as PPO uses them: vmap over axis 1
        tm = jax.vmap(f, in_axes=1, out_axes=1)(r.T, d.T, v_tm1.T, v_t.T, end.T)
        np.testing.assert_allclose(tm.T, eager, rtol=1e-5, atol=1e-5)

    def test_rank_errors(self):
        x = jnp.ones(4)
        with pytest.raises(AssertionError):
            returns.truncated_gae(jnp.ones((4, 1)), x, x, x, x > 0, 0.9)
        with pytest.raises(AssertionError):
            returns.truncated_gae(x, x, x, jnp.ones(5), x > 0, 0.9)


# -------------------------------------------------------------------------------------- td_targets


def test_td_targets_hand_computed():
    r, d, v = f32([1.0, 2.0, 0.5], [0.9, 0.0, 0.9], [10.0, 10.0, -1.0])
    # 1 + 0.9*10 = 10;  2 + 0*10 = 2 (terminated);  0.5 + 0.9*(-1) = -0.4
    np.testing.assert_allclose(returns.td_targets(r, d, v), [10.0, 2.0, -0.4], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(returns.td_targets)(r, d, v), [10.0, 2.0, -0.4], rtol=1e-6)
    with pytest.raises(AssertionError):
        returns.td_targets(r, d, jnp.ones(4))
