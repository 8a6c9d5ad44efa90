"""Randomness drawn ahead of the loop (GymnaxEnv.prepare_keys, rollout(act_noise=...)) gives the same
transitions as drawing it step by step: same keys, same operations (up to float rounding, since XLA may
fuse the physics differently; episode ends must agree exactly)."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs, policies, rollout
from jaxrl.envs import base
from jaxrl.envs.gymnax import GymnaxEnv, PreparedStep
from jaxrl.networks.heads import PolicyOutput


def _compare(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype == bool or np.issubdtype(x.dtype, np.integer):
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["CartPole-v1", "Pendulum-v1"])
def test_prepared_step_equals_keyed_step(name):
    env = envs.make(name, 3, None)
    assert env.draws_ahead
    state, _ = env.reset(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 250)  # CartPole episodes end within 250 random steps
    if envs.is_discrete(env.action_space):
        actions = jax.random.randint(jax.random.key(2), (250, 3), 0, env.action_space.n)
    else:
        actions = jax.random.uniform(jax.random.key(2), (250, 3, 1), minval=-2.0, maxval=2.0)

    def run(prepared):
        xs = env.prepare_keys(keys) if prepared else keys
        return jax.lax.scan(lambda s, x: env.step(s, x[1], x[0]), state, (xs, actions))

    keyed, prepared = jax.jit(lambda: run(False))(), jax.jit(lambda: run(True))()
    _compare(keyed, prepared)
    if name == "CartPole-v1":
        assert int(keyed[1].terminated.sum()) > 0  # the reset branch was exercised


def test_env_with_its_own_step_is_not_prepared():
    class OwnStep(gymnax.environments.classic_control.CartPole):
        def step(self, key, state, action, params=None):
            return super().step(key, state, action, params)

    own = GymnaxEnv(OwnStep(), None, 2)
    keys = jax.random.split(jax.random.key(0), 3)
    assert not own.draws_ahead and own.prepare_keys(keys) is keys  # stepped with its keys, as given
    prepared = envs.EpisodeStats(envs.make("CartPole-v1", 2, None)).prepare_keys(keys)
    assert isinstance(prepared, PreparedStep) and prepared.key_step.shape == (
        3,
        2,
    )  # the wrapper passes it on


@pytest.mark.parametrize("discrete", [True, False])
def test_sampling_from_drawn_noise_equals_policies_sample(discrete):
    k_logits, k = jax.random.split(jax.random.key(3))
    logits = jax.random.normal(k_logits, (5, 3))
    out = PolicyOutput(logits, jnp.zeros((0,)) if discrete else jnp.array([0.3, -0.2, 0.1]), jnp.zeros((5,)))
    for key in jax.random.split(k, 20):
        want = policies.sample(out, key, discrete)
        got = policies.sample_with_noise(out, policies.sample_noise(key, logits.shape, discrete), discrete)
        np.testing.assert_array_equal(np.asarray(want), np.asarray(got))


def test_rollout_with_noise_and_prepared_env_equals_keyed_rollout():
    class Hide(base.Env):  # the same env with the default prepare_keys: the rollout steps with plain keys
        def __init__(self, env):
            self._env = env
            self.num_envs, self.action_space = env.num_envs, env.action_space

        def step(self, state, action, key):
            return self._env.step(state, action, key)

    env = envs.EpisodeStats(envs.make("CartPole-v1", 4, None))
    logits = jnp.array([0.3, -0.1])
    shape = (4, 2)

    def act_key(obs, key):
        a = policies.sample(
            PolicyOutput(jnp.broadcast_to(logits, shape), jnp.zeros((0,)), obs[:, 0]), key, True
        )
        return a, a

    def act_noise(obs, noise):
        a = policies.sample_with_noise(
            PolicyOutput(jnp.broadcast_to(logits, shape), jnp.zeros((0,)), obs[:, 0]), noise, True
        )
        return a, a

    carry = rollout.reset(env, jax.random.key(4))
    key = jax.random.key(5)
    slow = jax.jit(lambda: rollout.rollout(Hide(env), act_key, carry, key, 200))()
    fast = jax.jit(
        lambda: rollout.rollout(
            env, act_noise, carry, key, 200, act_noise=lambda k: policies.sample_noise(k, shape, True)
        )
    )()
    _compare(slow, fast)
    assert int(slow[1].episode_end.sum()) > 0
