"""jaxrl.evaluate stops once every episode has finished, with the returns of the full-length scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl
from jaxrl import envs, evaluation, rollout
from jaxrl.algos import ppo

CFG = jaxrl.PPOConfig(env="CartPole-v1", num_envs=4, rollout_steps=8, total_timesteps=64, hidden=(8,))


def reference(cfg, state, key, num_episodes, deterministic, max_steps=None):
    """The previous implementation: a scan over the whole horizon; also each env's first episode end."""
    env = envs.EpisodeStats(envs.make(cfg.env, num_episodes, cfg.env_params, evaluation=True))
    act = ppo.make_policy(cfg, state, deterministic=deterministic)
    k_reset, k_run = jax.random.split(jaxrl.algos.prng.as_key(key))
    carry = rollout.reset(env, k_reset)
    horizon = int(max_steps or env.max_episode_steps + 1)

    def step(c, k):
        env_carry, finished, returns = c
        k_act, k_env = jax.random.split(k)
        env_state, ts = env.step(env_carry.env_state, act(env_carry.timestep.obs, k_act), k_env)
        first = jnp.logical_and(env_state.episode_end, ~finished)
        returns = jnp.where(first, env_state.returned_episode_return, returns)
        return (rollout.EnvCarry(env_state, ts), finished | env_state.episode_end, returns), finished

    init = (carry, jnp.zeros((num_episodes,), bool), jnp.zeros((num_episodes,), jnp.float32))
    (final, finished, returns), was_finished = jax.lax.scan(step, init, jax.random.split(k_run, horizon))
    # steps needed: 1 + the last step at which some env had not finished yet
    needed = jnp.sum(jnp.any(~was_finished, axis=1))
    return jnp.where(finished, returns, final.env_state.episode_return), needed


@pytest.fixture(scope="module")
def state():
    return jax.jit(ppo.init, static_argnums=0)(CFG, jax.random.key(0))


@pytest.mark.parametrize("deterministic, max_steps", [(False, None), (False, 15)])  # greedy: test_api
def test_same_returns_as_the_full_scan_in_fewer_steps(state, deterministic, max_steps):
    kw = dict(deterministic=deterministic, max_steps=max_steps)
    run = jax.jit(lambda s, k: evaluation.run_episodes(CFG, s, k, 8, **kw))
    ref = jax.jit(lambda s, k: reference(CFG, s, k, 8, **kw))
    for seed in range(2):
        (returns, steps), (want, needed) = run(state, jax.random.key(seed)), ref(state, jax.random.key(seed))
        np.testing.assert_array_equal(returns, want)
        assert int(steps) == int(needed)  # stopped right after the last first episode ended
        if max_steps is None:
            assert int(steps) < 501 and (np.asarray(returns) < 500).all()  # untrained: short episodes
        else:
            assert int(steps) == 15 and (np.asarray(returns) <= 15).all()  # capped: partial returns


def test_vmapped_evaluation_equals_separate_ones(state):
    keys = jax.random.split(jax.random.key(3), 3)
    stacked = jax.jit(jax.vmap(lambda k: jaxrl.evaluate(CFG, state, k, 4, deterministic=False)))(keys)
    ref = jax.jit(lambda k: reference(CFG, state, k, 4, False)[0])
    for i in range(3):
        np.testing.assert_array_equal(stacked[i], ref(keys[i]))
