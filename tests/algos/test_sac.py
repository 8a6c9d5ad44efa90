"""SAC: the squashed-Gaussian log-probability and the three losses against hand-computed numbers and a
NumPy reference, the probe environment, refusals, and (slow) learning Pendulum-v1 on fixed seeds."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl
from jaxrl.algos import offpolicy, registry, sac

TINY = dict(hidden=(32, 32), minibatch_size=32, buffer_size=512, learning_starts=64)


class TestSquashedGaussianLogProb:
    def test_hand_computed(self):
        # u = 0, N(0, 1): log N = -0.5 log(2 pi) = -0.9189385; tanh'(0) = 1, no correction.
        got = sac.squashed_gaussian_log_prob(jnp.zeros((1,)), jnp.zeros((1,)), jnp.zeros((1,)))
        np.testing.assert_allclose(got, -0.9189385, rtol=1e-6)
        # u = 1, mean 0.5, std 0.5: z = 1, log N = -0.5 - log 0.5 - 0.9189385 = -0.7257913;
        # log(1 - tanh(1)^2) = -2 log cosh(1) = -2 * 0.4337808 = -0.8675616  ->  -0.7257913 + 0.8675616 = 0.1417703
        got = sac.squashed_gaussian_log_prob(jnp.array([0.5]), jnp.log(jnp.array([0.5])), jnp.array([1.0]))
        np.testing.assert_allclose(got, 0.1417703, rtol=1e-5)

    def test_sums_dimensions_and_stays_finite_where_tanh_saturates(self):
        mean, log_std = jnp.array([0.5, -1.0]), jnp.array([-0.3, 0.2])
        u = jnp.array([0.7, 30.0])  # tanh(30) == 1 in float32: the naive log(1 - tanh^2) is -inf
        got = sac.squashed_gaussian_log_prob(mean, log_std, u)
        each = [
            sac.squashed_gaussian_log_prob(mean[i : i + 1], log_std[i : i + 1], u[i : i + 1])
            for i in range(2)
        ]
        np.testing.assert_allclose(got, sum(each), rtol=1e-6)
        assert np.isfinite(got)
        # the exact Jacobian of tanh at 30: log(1 - tanh(30)^2) = log(4) - 60 - 2 log(1 + e^-60) ~ -58.6137
        np.testing.assert_allclose(
            each[1] - (-0.5 * (31.0 / math.exp(0.2)) ** 2 - 0.2 - 0.9189385), 58.6137056, rtol=1e-6
        )


@functools.cache
def _setup(seed=0, n=6):
    cfg = sac.Config(**TINY)
    env = sac.make_env(cfg)
    nets = sac.make_networks(cfg, env)
    state = jax.jit(sac.init, static_argnums=0)(cfg, jax.random.key(seed))
    k = jax.random.split(jax.random.key(seed + 1), 4)
    batch = offpolicy.Batch(
        obs=jax.random.normal(k[0], (n, 3)),
        action=jax.random.uniform(k[1], (n, 1), minval=-1, maxval=1),
        reward=jax.random.normal(k[2], (n,)),
        terminated=jnp.array([False, True, False, False, True, False][:n]),
        next_obs=jax.random.normal(k[3], (n, 3)),
        weight=jnp.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0][:n]),
    )
    learner = sac.Learner(
        state.actor_params,
        state.critic_params,
        # a different target network, so that a mix-up of online and target critics shows
        jax.tree_util.tree_map(lambda x: x * 0.5, state.critic_params),
        jnp.log(jnp.float32(0.3)),
        state.actor_opt,
        state.critic_opt,
        state.alpha_opt,
    )
    return cfg, nets, learner, batch


def _q(nets, params, obs, action, j):
    return np.asarray(nets.critic.apply(jax.tree_util.tree_map(lambda x: x[j], params), obs, action))


class TestLosses:
    def test_critic_loss_matches_reference(self):
        cfg, nets, learner, b = _setup()
        key = jax.random.key(7)
        got, q_mean = jax.jit(sac.critic_loss, static_argnums=2)(
            learner.critic_params, learner, nets, b, key, 0.9
        )
        # reference: the same next action (same key), then the formula written out in NumPy
        a2, logp2 = sac.sample_action(nets.actor, learner.actor_params, b.next_obs, key)
        q_next = np.minimum(*(_q(nets, learner.target_critic_params, b.next_obs, a2, j) for j in range(2)))
        y = np.asarray(b.reward) + 0.9 * (1 - np.asarray(b.terminated)) * (q_next - 0.3 * np.asarray(logp2))
        w = np.asarray(b.weight)
        want = sum(
            np.sum(0.5 * (_q(nets, learner.critic_params, b.obs, b.action, j) - y) ** 2 * w) for j in range(2)
        )
        np.testing.assert_allclose(got, want / w.sum(), rtol=1e-5)
        np.testing.assert_allclose(
            q_mean, np.sum(_q(nets, learner.critic_params, b.obs, b.action, 0) * w) / w.sum(), rtol=1e-5
        )

    def test_critic_target_not_differentiated(self):
        """The gradient flows through Q(s, a) only: the same gradient as a loss on a constant target."""
        cfg, nets, learner, b = _setup()
        key = jax.random.key(3)
        g = jax.jit(
            jax.grad(lambda p: sac.critic_loss(p, learner._replace(critic_params=p), nets, b, key, 0.9)[0])
        )(learner.critic_params)
        g_fixed = jax.jit(jax.grad(lambda p: sac.critic_loss(p, learner, nets, b, key, 0.9)[0]))(
            learner.critic_params
        )
        for x, y in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_fixed), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)

    def test_actor_loss_matches_reference(self):
        cfg, nets, learner, b = _setup()
        key = jax.random.key(5)
        got, logp = jax.jit(sac.actor_loss, static_argnums=2)(learner.actor_params, learner, nets, b, key)
        a, logp_ref = sac.sample_action(nets.actor, learner.actor_params, b.obs, key)
        q = np.minimum(*(_q(nets, learner.critic_params, b.obs, a, j) for j in range(2)))
        w = np.asarray(b.weight)
        np.testing.assert_allclose(got, np.sum((0.3 * np.asarray(logp_ref) - q) * w) / w.sum(), rtol=1e-5)
        np.testing.assert_allclose(logp, logp_ref, rtol=1e-5, atol=1e-6)

    def test_alpha_loss_hand_computed(self):
        # alpha = 2, log pi = [-1, -3] (entropy 2 > target 1): -2 * ((-1 - 1) + (-3 - 1)) / 2 = 6, and
        # d/dlog_alpha (-alpha x) = -alpha x: the gradient is also 6 (descent lowers alpha).
        log_alpha = jnp.log(jnp.float32(2.0))
        loss, grad = jax.value_and_grad(sac.alpha_loss)(log_alpha, jnp.array([-1.0, -3.0]), jnp.ones(2), -1.0)
        np.testing.assert_allclose([loss, grad], [6.0, 6.0], rtol=1e-6)

    def test_update_moves_targets_by_tau(self):
        cfg, nets, learner, b = _setup()
        new, losses = jax.jit(sac.update, static_argnums=(0, 1))(
            cfg, nets, learner, sac.Minibatch(b, jax.random.key(0))
        )
        want = jax.tree_util.tree_map(
            lambda o, t: cfg.tau * o + (1 - cfg.tau) * t, new.critic_params, learner.target_critic_params
        )
        for x, y in zip(
            jax.tree_util.tree_leaves(new.target_critic_params), jax.tree_util.tree_leaves(want), strict=True
        ):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        assert all(np.isfinite(v) for v in losses)
        np.testing.assert_allclose(losses.alpha, 0.3, rtol=1e-6)  # the temperature the step used


def test_probe_continuous_action_reward():
    """One-step episodes, reward -(a - obs)^2 with obs = +-1: the greedy action must follow obs and
    Q(s, a) must give the reward (a sign or bootstrap bug on terminal steps breaks both)."""
    cfg = sac.Config(env="probe:ContinuousActionReward", num_envs=8, total_timesteps=8 * 250, **TINY)
    cfg = cfg.replace(learning_rate=3e-3, gamma=0.5)
    state, metrics = jaxrl.train(cfg, jax.random.key(0))
    act = jaxrl.make_policy(cfg, state)
    obs = jnp.array([[1.0], [-1.0]])
    a = np.asarray(act(obs, jax.random.key(1)))[:, 0]
    assert a[0] > 0.6 and a[1] < -0.6, a
    env = sac.make_env(cfg)
    nets = sac.make_networks(cfg, env)
    q = nets.q(state.critic_params, obs, jnp.array([[0.5], [0.5]]))  # env actions 1 and 1 (scaled [-2, 2])
    np.testing.assert_allclose(np.asarray(q), [[0.0, -4.0]] * 2, atol=0.6)
    assert np.all(np.isfinite(np.asarray(metrics.critic_loss)))


def test_registered_and_refuses_discrete_actions():
    assert registry.get("sac").config is sac.Config
    with pytest.raises(ValueError, match="continuous .*DQNConfig or PPOConfig"):
        registry.train(sac.Config(env="CartPole-v1"), 0)
    with pytest.raises(ValueError, match="minibatch_size must be a positive integer"):
        sac.validate(sac.Config(minibatch_size=0))


@pytest.mark.slow
def test_learns_pendulum_four_seeds():
    """Greedy return >= -200 on Pendulum-v1 (random: about -1200) for each of 4 fixed seeds."""
    cfg = sac.Config()
    states, _ = jax.jit(jax.vmap(registry.train, in_axes=(None, 0)))(
        cfg, jax.random.split(jax.random.key(0), 4)
    )
    for i in range(4):
        st = jax.tree_util.tree_map(lambda x, i=i: x[i], states)
        ret = float(np.mean(jaxrl.evaluate(cfg, st, jax.random.key(100 + i), num_episodes=16)))
        assert ret >= -200, (i, ret)
