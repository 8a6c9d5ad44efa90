"""jaxrl.losses.policy: log-probabilities, entropies, REINFORCE, policy gradient, PPO clip losses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import policy

LN3 = math.log(3.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ------------------------------------------------------------------------------ plain references
def ref_log_softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def ref_reinforce(logits, a, g, mask=None):
    logp = ref_log_softmax(logits)[np.arange(len(a)), a]
    w = np.ones(len(a)) if mask is None else mask
    return -np.sum(logp * g * w) / max(np.sum(w), 1.0)


def ref_surrogate(ratio, adv, eps, mask=None):
    w = np.ones(len(ratio)) if mask is None else mask
    obj = [min(r * a, min(max(r, 1 - eps), 1 + eps) * a) for r, a in zip(ratio, adv, strict=True)]
    return -np.sum(np.asarray(obj) * w) / max(np.sum(w), 1.0)


def ref_value_loss(v, v_old, target, eps):
    out = []
    for vi, oi, gi in zip(v, v_old, target, strict=True):
        clipped = oi + min(max(vi - oi, -eps), eps)
        out.append(0.5 * max((vi - gi) ** 2, (clipped - gi) ** 2))
    return np.mean(out)


def ref_gaussian_log_prob(mean, log_std, a):
    std = np.exp(log_std)
    return np.sum(-0.5 * ((a - mean) / std) ** 2 - log_std - HALF_LOG_2PI, axis=-1)


# ---------------------------------------------------------------------------- distributions
class TestCategorical:
    def test_log_prob_hand_computed(self):
        logits = jnp.asarray([[0.0, LN3], [0.0, 0.0]])
        # softmax(0, ln 3) = (1/4, 3/4);  softmax(0, 0) = (1/2, 1/2)
        logp = policy.categorical_log_prob(logits, jnp.asarray([1, 0]))
        np.testing.assert_allclose(logp, [math.log(0.75), math.log(0.5)], rtol=1e-6)

    def test_entropy_hand_computed(self):
        # uniform over 4: ln 4;  (1/4, 3/4): -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335
        np.testing.assert_allclose(policy.entropy(jnp.zeros(4)), math.log(4.0), rtol=1e-6)
        want = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
        np.testing.assert_allclose(policy.entropy(jnp.asarray([0.0, LN3])), want, rtol=1e-6)

    def test_entropy_with_masked_actions(self):
        # -inf logits (masked actions) have probability 0 and add nothing: same as (1/4, 3/4) above
        logits = jnp.asarray([0.0, LN3, -jnp.inf])
        want = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
        np.testing.assert_allclose(policy.entropy(logits), want, rtol=1e-6)
        grad = jax.grad(policy.entropy)(logits)
        np.testing.assert_allclose(grad, jax.grad(policy.entropy)(logits[:2]).tolist() + [0.0], rtol=1e-6)

    def test_matches_reference(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(3, 5, 6)).astype(np.float32)
        a = rng.integers(0, 6, size=(3, 5))
        lp = ref_log_softmax(logits)
        np.testing.assert_allclose(
            policy.categorical_log_prob(logits, a),
            np.take_along_axis(lp, a[..., None], -1)[..., 0],
            rtol=1e-5,
        )
        np.testing.assert_allclose(policy.entropy(logits), -(np.exp(lp) * lp).sum(-1), rtol=1e-5)
        np.testing.assert_allclose(jax.jit(policy.entropy)(logits), -(np.exp(lp) * lp).sum(-1), rtol=1e-5)


class TestGaussian:
    def test_log_prob_hand_computed(self):
        # N(0, 1) at a = 1: -0.5 - 0.5 ln 2pi = -1.418939
        lp = policy.gaussian_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.ones(1))
        np.testing.assert_allclose(lp, -0.5 - HALF_LOG_2PI, rtol=1e-6)
        # 2-D, mean (1, -1), std (2, 1), a = (3, -1): z = (1, 0)
        # sum = (-0.5 - ln 2 - 0.5 ln 2pi) + (0 - 0 - 0.5 ln 2pi) = -0.5 - ln 2 - ln 2pi
        lp = policy.gaussian_log_prob(
            jnp.asarray([1.0, -1.0]), jnp.log(jnp.asarray([2.0, 1.0])), jnp.asarray([3.0, -1.0])
        )
        np.testing.assert_allclose(lp, -0.5 - math.log(2.0) - 2 * HALF_LOG_2PI, rtol=1e-6)

    def test_entropy_hand_computed(self):
        # per dimension 0.5 ln(2 pi e) + log_std: (1.418939 + 0) + (1.418939 + ln 2)
        ent = policy.gaussian_entropy(jnp.asarray([0.0, math.log(2.0)]))
        np.testing.assert_allclose(ent, 2 * 0.5 * math.log(2 * math.pi * math.e) + math.log(2.0), rtol=1e-6)

    def test_matches_reference_and_monte_carlo_entropy(self):
        rng = np.random.default_rng(1)
        mean = rng.normal(size=(8, 3)).astype(np.float32)
        log_std = rng.normal(scale=0.5, size=(8, 3)).astype(np.float32)
        a = rng.normal(size=(8, 3)).astype(np.float32)
        np.testing.assert_allclose(
            policy.gaussian_log_prob(mean, log_std, a), ref_gaussian_log_prob(mean, log_std, a), rtol=1e-5
        )
        # entropy = -E[log p(a)]: Monte Carlo with 200k samples of one distribution
        samples = mean[0] + np.exp(log_std[0]) * rng.normal(size=(200_000, 3))
        mc = -ref_gaussian_log_prob(mean[0], log_std[0], samples).mean()
        np.testing.assert_allclose(policy.gaussian_entropy(log_std[0]), mc, atol=0.02)


# ------------------------------------------------------------------------------------- losses
class TestReinforce:
    LOGITS = jnp.asarray([[0.0, LN3], [0.0, 0.0]])
    A = jnp.asarray([1, 0])
    G = jnp.asarray([2.0, -1.0])

    def test_hand_computed(self):
        # logp = (ln 0.75, ln 0.5) = (-0.287682, -0.693147)
        # -mean(logp * G) = -(2 * -0.287682 + -1 * -0.693147) / 2 = -(0.117783) / 2 = -0.0588915
        want = -(2 * math.log(0.75) - math.log(0.5)) / 2
        # rtol 1e-5: float32 (the H200 gave 1.3e-6 relative, the CPU less)
        np.testing.assert_allclose(policy.reinforce_loss(self.LOGITS, self.A, self.G), want, rtol=1e-5)

    def test_mask(self):
        # only t=0 counts: -(ln 0.75 * 2) / 1 = 0.575364
        loss = policy.reinforce_loss(self.LOGITS, self.A, self.G, mask_t=jnp.asarray([1.0, 0.0]))
        np.testing.assert_allclose(loss, -2 * math.log(0.75), rtol=1e-6)

    def test_gradient(self):
        g_logits, g_ret = jax.grad(policy.reinforce_loss, argnums=(0, 2))(self.LOGITS, self.A, self.G)
        # d(-logp_a G / T)/dlogits = -(onehot(a) - softmax) * G / T
        # t=0: -((0, 1) - (0.25, 0.75)) * 2 / 2 = (0.25, -0.25);  t=1: -((1, 0) - (.5, .5)) * -1 / 2 = (.25, -.25)
        np.testing.assert_allclose(g_logits, [[0.25, -0.25], [0.25, -0.25]], rtol=1e-6)
        np.testing.assert_allclose(g_ret, [0.0, 0.0])  # returns are not differentiated

    def test_matches_reference_jit_vmap(self):
        rng = np.random.default_rng(2)
        logits = rng.normal(size=(4, 9, 3)).astype(np.float32)
        a = rng.integers(0, 3, size=(4, 9)).astype(np.int32)
        g = rng.normal(size=(4, 9)).astype(np.float32)
        mask = (rng.random((4, 9)) > 0.3).astype(np.float32)
        want = np.array([ref_reinforce(logits[i], a[i], g[i], mask[i]) for i in range(4)])
        f = lambda lg, aa, gg, m: policy.reinforce_loss(lg, aa, gg, mask_t=m)
        np.testing.assert_allclose(f(logits[0], a[0], g[0], mask[0]), want[0], rtol=1e-5)
        np.testing.assert_allclose(jax.jit(f)(logits[0], a[0], g[0], mask[0]), want[0], rtol=1e-5)
        np.testing.assert_allclose(jax.vmap(f)(logits, a, g, mask), want, rtol=1e-5)

    def test_rank_and_type_errors(self):
        with pytest.raises(AssertionError):  # [T, A] logits with [T, 1] actions
            policy.reinforce_loss(self.LOGITS, self.A[:, None], self.G)
        with pytest.raises(AssertionError):  # float actions
            policy.reinforce_loss(self.LOGITS, jnp.asarray([1.0, 0.0]), self.G)


def test_policy_gradient_loss_matches_reinforce():
    logits = jnp.asarray([[0.0, LN3], [0.0, 0.0]])
    a, g = jnp.asarray([1, 0]), jnp.asarray([2.0, -1.0])
    logp = policy.categorical_log_prob(logits, a)
    np.testing.assert_allclose(
        policy.policy_gradient_loss(logp, g), policy.reinforce_loss(logits, a, g), rtol=1e-6
    )
    assert jax.grad(policy.policy_gradient_loss, argnums=1)(logp, g).tolist() == [0.0, 0.0]
    with pytest.raises(AssertionError):
        policy.policy_gradient_loss(logp[:, None], g[:, None])


class TestClippedSurrogate:
    RATIO = jnp.asarray([0.5, 1.5, 1.1, 0.7])
    ADV = jnp.asarray([1.0, 1.0, -1.0, -1.0])

    def test_hand_computed(self):
        # eps = 0.2:  t  rho*A  clip(rho)*A   min
        #             0   0.5     0.8*1       0.5
        #             1   1.5     1.2*1       1.2
        #             2  -1.1     1.1*-1     -1.1
        #             3  -0.7     0.8*-1     -0.8
        # loss = -mean(0.5, 1.2, -1.1, -0.8) = -(-0.2 / 4) = 0.05
        np.testing.assert_allclose(policy.clipped_surrogate_loss(self.RATIO, self.ADV, 0.2), 0.05, rtol=1e-5)

    def test_gradient_zero_where_clipped(self):
        g = jax.grad(policy.clipped_surrogate_loss)(self.RATIO, self.ADV, 0.2)
        # unclipped terms (t=0, 2): d(-rho A / 4)/drho = -A / 4;  clipped terms (t=1, 3): 0
        np.testing.assert_allclose(g, [-0.25, 0.0, 0.25, 0.0], rtol=1e-6)
        g_adv = jax.grad(policy.clipped_surrogate_loss, argnums=1)(self.RATIO, self.ADV, 0.2)
        np.testing.assert_allclose(g_adv, 0.0)

    def test_mask(self):
        # mask out t=0, 2: -(1.2 - 0.8) / 2 = -0.2
        loss = policy.clipped_surrogate_loss(self.RATIO, self.ADV, 0.2, mask_t=jnp.asarray([0, 1, 0, 1]))
        np.testing.assert_allclose(loss, -0.2, rtol=1e-5)

    def test_matches_reference_jit_vmap(self):
        rng = np.random.default_rng(3)
        ratio = np.exp(rng.normal(scale=0.3, size=(5, 11))).astype(np.float32)
        adv = rng.normal(size=(5, 11)).astype(np.float32)
        want = np.array([ref_surrogate(ratio[i], adv[i], 0.2) for i in range(5)])
        f = lambda r, a: policy.clipped_surrogate_loss(r, a, 0.2)
        np.testing.assert_allclose(f(ratio[0], adv[0]), want[0], rtol=1e-5)
        np.testing.assert_allclose(jax.jit(f)(ratio[0], adv[0]), want[0], rtol=1e-5)
        np.testing.assert_allclose(jax.vmap(f)(ratio, adv), want, rtol=1e-5)
        # a traced (vmapped) epsilon, as in a hyperparameter sweep
        eps = jnp.asarray([0.1, 0.2, 0.3])
        swept = jax.vmap(policy.clipped_surrogate_loss, in_axes=(None, None, 0))(ratio[0], adv[0], eps)
        np.testing.assert_allclose(
            swept, [ref_surrogate(ratio[0], adv[0], e) for e in (0.1, 0.2, 0.3)], rtol=1e-5
        )

    def test_rank_errors(self):
        with pytest.raises(AssertionError):
            policy.clipped_surrogate_loss(self.RATIO[None], self.ADV[None], 0.2)
        with pytest.raises(AssertionError):
            policy.clipped_surrogate_loss(self.RATIO, self.ADV[:3], 0.2)


class TestClippedValueLoss:
    def test_hand_computed(self):
        v, v_old, target = jnp.asarray([1.5, 0.5]), jnp.asarray([1.0, 1.0]), jnp.asarray([2.0, 2.0])
        # t=0: (1.5-2)^2 = 0.25; clipped v = 1 + 0.2 = 1.2 -> (1.2-2)^2 = 0.64; max 0.64
        # t=1: (0.5-2)^2 = 2.25; clipped v = 1 - 0.2 = 0.8 -> (0.8-2)^2 = 1.44; max 2.25
        # 0.5 * mean(0.64, 2.25) = 0.7225
        np.testing.assert_allclose(policy.clipped_value_loss(v, v_old, target, 0.2), 0.7225, rtol=1e-6)
        # with a mask on t=1 only: 0.5 * 2.25 = 1.125
        loss = policy.clipped_value_loss(v, v_old, target, 0.2, mask_t=jnp.asarray([0.0, 1.0]))
        np.testing.assert_allclose(loss, 1.125, rtol=1e-6)

    def test_matches_reference_and_target_not_differentiated(self):
        rng = np.random.default_rng(4)
        v, v_old, target = (rng.normal(size=13).astype(np.float32) for _ in range(3))
        np.testing.assert_allclose(
            jax.jit(policy.clipped_value_loss)(v, v_old, target, 0.3),
            ref_value_loss(v, v_old, target, 0.3),
            rtol=1e-5,
        )
        g = jax.grad(policy.clipped_value_loss, argnums=2)(v, v_old, target, 0.3)
        np.testing.assert_allclose(g, 0.0)

    def test_rank_errors(self):
        with pytest.raises(AssertionError):
            policy.clipped_value_loss(jnp.ones((2, 2)), jnp.ones((2, 2)), jnp.ones((2, 2)), 0.2)


def _policy_cases():
    rng = np.random.default_rng(5)
    n = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    a = rng.integers(0, 4, size=(3, 6)).astype(np.int32)
    return {
        "categorical_log_prob": (policy.categorical_log_prob, (n(3, 6, 4), a)),
        "entropy": (policy.entropy, (n(3, 6, 4),)),
        "gaussian_log_prob": (policy.gaussian_log_prob, (n(3, 6, 2), n(3, 6, 2), n(3, 6, 2))),
        "gaussian_entropy": (policy.gaussian_entropy, (n(3, 6, 2),)),
        "policy_gradient_loss": (policy.policy_gradient_loss, (n(3, 6), n(3, 6))),
        "reinforce_loss": (policy.reinforce_loss, (n(3, 6, 4), a, n(3, 6))),
        "clipped_surrogate_loss": (
            lambda r, ad: policy.clipped_surrogate_loss(r, ad, 0.2),
            (np.exp(n(3, 6)), n(3, 6)),
        ),
        "clipped_value_loss": (
            lambda v, o, g: policy.clipped_value_loss(v, o, g, 0.2),
            (n(3, 6), n(3, 6), n(3, 6)),
        ),
    }


@pytest.mark.parametrize("name", list(_policy_cases()))
def test_jit_nojit_vmap_agree(name):
    # every function on a batch of 3 single-stream inputs: vmap == per-example eager == per-example jit
    f, args = _policy_cases()[name]
    eager = np.stack([np.asarray(f(*(x[i] for x in args))) for i in range(3)])
    np.testing.assert_allclose(jax.vmap(f)(*args), eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(f)(*(x[1] for x in args)), eager[1], rtol=1e-5, atol=1e-6)
