"""jaxrl.losses.grpo: group advantages, the clipped GRPO objective, KL penalty, aggregation modes."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import grpo


# ------------------------------------------------------------------------------ plain references
def ref_grpo(logp, logp_old, adv, mask, eps_lo, eps_hi, mode, logp_ref=None, beta=0.0):
    n, t = logp.shape
    per = np.zeros((n, t))
    kl = np.zeros((n, t))
    for i in range(n):
        for j in range(t):
            r = math.exp(logp[i, j] - logp_old[i, j])
            per[i, j] = -min(r * adv[i], min(max(r, 1 - eps_lo), 1 + eps_hi) * adv[i])
            if logp_ref is not None:
                d = logp_ref[i, j] - logp[i, j]
                kl[i, j] = math.exp(d) - d - 1
    per = per + beta * kl

    def agg(x):
        if mode == "sequence":
            return np.mean([np.sum(x[i] * mask[i]) / max(mask[i].sum(), 1) for i in range(n)])
        if mode == "token":
            return np.sum(x * mask) / max(mask.sum(), 1)
        return np.sum(x * mask) / (n * t)

    return agg(per)


# ---------------------------------------------------------------------------------- advantages
class TestGroupAdvantages:
    def test_hand_computed(self):
        # rewards (1, 0, 0, 1): mean 0.5, population std 0.5 -> (+1, -1, -1, +1) (eps = 0)
        adv = grpo.group_advantages(jnp.asarray([1.0, 0.0, 0.0, 1.0]), eps=0.0)
        np.testing.assert_allclose(adv, [1.0, -1.0, -1.0, 1.0], rtol=1e-6)
        # scale none only centres: (0.5, -0.5, -0.5, 0.5)
        adv = grpo.group_advantages(jnp.asarray([1.0, 0.0, 0.0, 1.0]), scale="none")
        np.testing.assert_allclose(adv, [0.5, -0.5, -0.5, 0.5], rtol=1e-6)

    def test_identical_rewards_give_zero_not_nan(self):
        for scale in grpo.ADVANTAGE_SCALES:
            adv = grpo.group_advantages(jnp.full((8,), 0.7), scale=scale)
            assert np.all(np.isfinite(adv))
            np.testing.assert_array_equal(adv, np.zeros(8))
        # also with eps = 0 the centred numerator is exactly 0 ... but 0/0 would be NaN: eps > 0 default
        adv = grpo.group_advantages(jnp.ones((3, 4)), scale="batch")
        np.testing.assert_array_equal(adv, np.zeros((3, 4)))

    def test_group_smaller_than_two_is_a_clear_error(self):
        with pytest.raises(ValueError, match="at least 2 answers"):
            grpo.group_advantages(jnp.asarray([1.0]))
        with pytest.raises(ValueError, match="at least 2 answers"):
            grpo.group_advantages(jnp.ones((5, 1)))

    def test_batch_form_equals_vmap_and_batch_scale(self):
        r = jax.random.uniform(jax.random.key(0), (5, 6))
        per_group = jax.vmap(lambda x: grpo.group_advantages(x, scale="group"))(r)
        np.testing.assert_allclose(grpo.group_advantages(r, scale="group"), per_group, rtol=1e-6)
        # "batch": per-group centring, one std over the batch (reference in NumPy)
        rn = np.asarray(r)
        want = (rn - rn.mean(1, keepdims=True)) / (rn.std() + 1e-4)
        np.testing.assert_allclose(grpo.group_advantages(r, scale="batch"), want, rtol=1e-5)

    def test_jit_agrees_and_unknown_scale(self):
        r = jnp.asarray([3.0, 1.0, 2.0])
        f = jax.jit(lambda x: grpo.group_advantages(x))
        np.testing.assert_allclose(f(r), grpo.group_advantages(r), rtol=1e-6)
        with pytest.raises(ValueError, match="unknown advantage scale"):
            grpo.group_advantages(r, scale="global")


# --------------------------------------------------------------------------------------- loss
def _random_inputs(key, n=6, t=5):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    logp = -jax.random.uniform(k1, (n, t), minval=0.1, maxval=3.0)
    logp_old = logp + 0.4 * jax.random.normal(k2, (n, t))
    adv = jax.random.normal(k3, (n,))
    mask = (jax.random.uniform(k4, (n, t)) < 0.7).astype(jnp.float32).at[:, 0].set(1.0)
    logp_ref = logp + 0.3 * jax.random.normal(k5, (n, t))
    return logp, logp_old, adv, mask, logp_ref


class TestGRPOLoss:
    def test_hand_computed_clipping_both_signs(self):
        # one token each; eps = 0.2.  rho = exp(logp - logp_old):
        #  row 0: rho = 1.5, A = +1 -> min(1.5, 1.2) = 1.2 (clipped high)      -> loss -1.2
        #  row 1: rho = 0.5, A = -1 -> min(-0.5, -0.8) = -0.8 (clipped low)   -> loss +0.8
        #  row 2: rho = 1.5, A = -1 -> min(-1.5, -1.2) = -1.5 (not clipped)   -> loss +1.5
        #  row 3: rho = 0.5, A = +1 -> min(0.5, 0.8) = 0.5 (not clipped)      -> loss -0.5
        rho = jnp.asarray([1.5, 0.5, 1.5, 0.5])
        logp = jnp.log(rho)[:, None]
        adv = jnp.asarray([1.0, -1.0, -1.0, 1.0])
        mask = jnp.ones((4, 1))
        loss, d = grpo.grpo_loss(logp, jnp.zeros((4, 1)), adv, mask, clip_eps_low=0.2)
        np.testing.assert_allclose(loss, (-1.2 + 0.8 + 1.5 - 0.5) / 4, rtol=1e-6)
        np.testing.assert_allclose(d.clip_fraction, 0.5)  # rows 0 and 1
        np.testing.assert_allclose(d.ratio_mean, 1.0, rtol=1e-6)
        np.testing.assert_allclose(d.ratio_max, 1.5, rtol=1e-6)
        # gradient of each row w.r.t. its logp: clipped rows 0; others -A * rho
        g = jax.grad(lambda lp: grpo.grpo_loss(lp, jnp.zeros((4, 1)), adv, mask)[0])(logp)
        np.testing.assert_allclose(g[:, 0], [0.0, 0.0, 1.5 / 4, -0.5 / 4], rtol=1e-6)

    def test_asymmetric_clip_higher(self):
        # rho = 1.25, A = +1: clipped at 1.2 with eps_high 0.2, not with eps_high 0.28
        logp, z = jnp.log(jnp.asarray([[1.25]])), jnp.zeros((1, 1))
        a, m = jnp.ones((1,)), jnp.ones((1, 1))
        lo, _ = grpo.grpo_loss(logp, z, a, m, clip_eps_low=0.2)
        hi, d = grpo.grpo_loss(logp, z, a, m, clip_eps_low=0.2, clip_eps_high=0.28)
        np.testing.assert_allclose([lo, hi], [-1.2, -1.25], rtol=1e-6)
        assert float(d.clip_fraction) == 0.0

    @pytest.mark.parametrize("mode", grpo.AGGREGATIONS)
    def test_matches_reference(self, mode):
        logp, logp_old, adv, mask, logp_ref = _random_inputs(jax.random.key(1))
        loss, d = grpo.grpo_loss(
            logp,
            logp_old,
            adv,
            mask,
            logp_ref=logp_ref,
            beta=0.1,
            clip_eps_low=0.2,
            clip_eps_high=0.3,
            aggregation=mode,
        )
        want = ref_grpo(
            *map(np.asarray, (logp, logp_old, adv, mask)), 0.2, 0.3, mode, np.asarray(logp_ref), 0.1
        )
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        jitted = jax.jit(
            lambda *a: grpo.grpo_loss(*a, logp_ref=logp_ref, beta=0.1, clip_eps_high=0.3, aggregation=mode)[0]
        )
        np.testing.assert_allclose(jitted(logp, logp_old, adv, mask), loss, rtol=1e-6)
        assert d.kl > 0

    def test_dr_grpo_hand_computed_no_length_bias(self):
        # one group of 2 answers, rewards (1, 0), lengths 1 and 3 of T = 4 slots, ratio 1 (first step).
        # Dr. GRPO: advantages only centred (+0.5, -0.5); loss = -sum(A_i * len_i) / (N * T)
        # = -(0.5 * 1 - 0.5 * 3) / 8 = 0.125; d loss / d logp = -A_i / (N * T) = -/+0.0625 on every
        # token, whatever the answer's length (GRPO's per-sequence mean gives -0.25 and +0.0833).
        scale, mode = grpo.VARIANTS["dr_grpo"]
        adv = grpo.group_advantages(jnp.asarray([1.0, 0.0]), scale=scale)
        np.testing.assert_allclose(adv, [0.5, -0.5])
        mask = jnp.asarray([[1.0, 0, 0, 0], [1, 1, 1, 0]])
        logp = jnp.full((2, 4), -1.0)

        def loss(lp, mode=mode):
            return grpo.grpo_loss(lp, logp, adv, mask, aggregation=mode, max_tokens=4)[0]

        np.testing.assert_allclose(loss(logp), 0.125, rtol=1e-6)
        np.testing.assert_allclose(
            jax.grad(loss)(logp), [[-0.0625, 0, 0, 0], [0.0625, 0.0625, 0.0625, 0]], rtol=1e-6
        )
        np.testing.assert_allclose(
            jax.grad(lambda lp: loss(lp, "sequence"))(logp),
            [[-0.25, 0, 0, 0], [1 / 12, 1 / 12, 1 / 12, 0]],
            rtol=1e-5,
        )
        # with GRPO's std scaling the same rewards give (+1, -1): Dr. GRPO's are half of them
        np.testing.assert_allclose(grpo.group_advantages(jnp.asarray([1.0, 0.0]), eps=0.0), [1.0, -1.0])

    def test_zero_advantage_zero_gradient(self):
        logp, logp_old, _, mask, _ = _random_inputs(jax.random.key(2))
        for mode in grpo.AGGREGATIONS:
            g = jax.grad(
                lambda lp, m=mode: grpo.grpo_loss(lp, logp_old, jnp.zeros(6), mask, aggregation=m)[0]
            )(logp)
            np.testing.assert_array_equal(g, np.zeros_like(g))

    def test_one_update_beta0_equals_reinforce_with_group_mean_baseline(self):
        """First (only) update on a rollout: pi = pi_old, so rho = 1 and nothing is clipped; with
        beta = 0 and scale "none" the gradient is REINFORCE with the group-mean baseline."""
        g_size, t = 4, 3
        key = jax.random.key(3)
        w = jax.random.normal(key, (2 * g_size, t, 5))  # a tiny "policy": logits = w * theta
        actions = jax.random.randint(jax.random.key(4), (2 * g_size, t), 0, 5)
        mask = jnp.ones((2 * g_size, t)).at[0, 2].set(0.0).at[5, 1:].set(0.0)
        rewards = jnp.asarray([1.0, 0.0, 0.0, 1.0, 0.3, 0.3, 0.9, 0.0])

        def logp_fn(theta):
            lp = jax.nn.log_softmax(w * theta, axis=-1)
            return jnp.take_along_axis(lp, actions[..., None], axis=-1)[..., 0]

        adv = grpo.group_advantages(rewards.reshape(2, g_size), scale="none").reshape(-1)

        def grpo_obj(theta):
            lp = logp_fn(theta)
            return grpo.grpo_loss(lp, jax.lax.stop_gradient(lp), adv, mask, aggregation="sequence")[0]

        def reinforce(theta):  # -(1/N) sum_i (R_i - mean_group R) * (1/|o_i|) sum_t log pi(a_it)
            lp = logp_fn(theta)
            base = np.repeat(np.asarray(rewards).reshape(2, g_size).mean(1), g_size)
            per_seq = jnp.sum(lp * mask, 1) / jnp.sum(mask, 1)
            return -jnp.mean((rewards - base) * per_seq)

        theta = jnp.asarray(0.7)
        g1, g2 = jax.jit(lambda th: (jax.grad(grpo_obj)(th), jax.grad(reinforce)(th)))(theta)
        np.testing.assert_allclose(g1, g2, rtol=1e-5)
        _, d = grpo.grpo_loss(logp_fn(theta), logp_fn(theta), adv, mask)
        assert float(d.clip_fraction) == 0.0 and float(d.kl) == 0.0

    def test_kl_k3_hand_computed_and_zero_at_reference(self):
        # d = logp_ref - logp = ln 2: k3 = 2 - ln 2 - 1 = 0.306853
        np.testing.assert_allclose(grpo.k3_kl(jnp.asarray(0.0), jnp.log(2.0)), 1 - math.log(2), rtol=1e-6)
        logp, logp_old, adv, mask, _ = _random_inputs(jax.random.key(5))
        base, _ = grpo.grpo_loss(logp, logp_old, adv, mask)
        same, d = grpo.grpo_loss(logp, logp_old, adv, mask, logp_ref=logp, beta=1.0)
        np.testing.assert_allclose(same, base, rtol=1e-6)
        assert float(d.kl) == 0.0

    def test_masked_tokens_do_not_matter(self):
        logp, logp_old, adv, mask, _ = _random_inputs(jax.random.key(6))
        noisy = jnp.where(mask > 0, logp_old, 123.0)
        for mode in grpo.AGGREGATIONS:
            a = grpo.grpo_loss(logp, logp_old, adv, mask, aggregation=mode)[0]
            b = grpo.grpo_loss(logp, noisy, adv, mask, aggregation=mode)[0]
            np.testing.assert_allclose(a, b, rtol=1e-6)

    def test_vmap_over_clip_range(self):
        logp, logp_old, adv, mask, _ = _random_inputs(jax.random.key(7))
        eps = jnp.asarray([0.1, 0.2, 0.3])
        batched = jax.vmap(lambda e: grpo.grpo_loss(logp, logp_old, adv, mask, clip_eps_low=e)[0])(eps)
        single = [grpo.grpo_loss(logp, logp_old, adv, mask, clip_eps_low=float(e))[0] for e in eps]
        np.testing.assert_allclose(batched, single, rtol=1e-6)

    def test_rank_errors_and_unknown_aggregation(self):
        logp, logp_old, adv, mask, _ = _random_inputs(jax.random.key(8))
        with pytest.raises(AssertionError):
            grpo.grpo_loss(logp[0], logp_old[0], adv, mask[0])
        with pytest.raises(ValueError, match="unknown loss aggregation"):
            grpo.grpo_loss(logp, logp_old, adv, mask, aggregation="mean")
