"""Shared pieces of the policy-gradient tests (REINFORCE, A2C, PPO): a one-parameter policy,
hand-built rollouts, and training on probe environments with the checks their known values give."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl
from jaxrl import rollout
from jaxrl.networks.heads import PolicyOutput


class TinyNet:
    """Two actions with logits ``[0, theta]`` whatever the state (so pi(1) = sigmoid(theta)), and
    ``V(obs) = w * obs[0]``. Quacks like an ``ActorCritic``: ``apply(params, obs)``, ``discrete``."""

    discrete = True

    @staticmethod
    def apply(params, obs):
        lead = obs.shape[:-1]
        logits = jnp.stack([jnp.zeros(lead), jnp.broadcast_to(params["theta"], lead)], axis=-1)
        return PolicyOutput(logits, jnp.zeros((0,)), params["w"] * obs[..., 0])


def transition(
    reward, terminated, truncated, *, action=None, obs=None, next_obs=None, valid=None, value=None
):
    """A ``[T, B]`` :class:`rollout.Transition` from nested lists (obs are 1-d: ``[T, B, 1]``)."""
    reward = jnp.asarray(reward, jnp.float32)
    shape = reward.shape
    terminated = jnp.asarray(terminated, bool)
    truncated = jnp.asarray(truncated, bool)
    valid = jnp.ones(shape, bool) if valid is None else jnp.asarray(valid, bool)
    action = jnp.zeros(shape, jnp.int32) if action is None else jnp.asarray(action, jnp.int32)
    obs = jnp.zeros(shape, jnp.float32) if obs is None else jnp.asarray(obs, jnp.float32)
    next_obs = obs if next_obs is None else jnp.asarray(next_obs, jnp.float32)
    value = jnp.zeros(shape, jnp.float32) if value is None else jnp.asarray(value, jnp.float32)
    ended = jnp.logical_and(jnp.logical_or(terminated, truncated), valid)
    return rollout.Transition(
        obs=obs[..., None],
        action=action,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        next_obs=next_obs[..., None],
        valid=valid,
        extras=(action, value),
        episode_end=ended,
        episode_return=jnp.zeros(shape),
        episode_length=jnp.zeros(shape, jnp.int32),
    )


def assert_trees_close(a, b, **kw):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


# ------------------------------------------------------------------------------------ probes


def obs(x):
    """One 1-d probe observation ``[x]``."""
    return jnp.asarray([x], jnp.float32)


def train_probe(make_config, env, key=None, **fields):
    """``jaxrl.train`` (jitted) of ``make_config(env=env, **fields)``; checks the losses are finite."""
    cfg = make_config(env=env, **fields)
    state, metrics = jax.jit(jaxrl.train)(cfg, jax.random.key(0) if key is None else key)
    assert np.all(np.isfinite(np.asarray(metrics["total_loss"])))
    return cfg, state, metrics


def assert_delayed_reward_values(cfg, state):
    """DelayedReward at gamma = 0.5: V(obs 1) = 1 (reward next step, then the end);
    V(obs 0) = 0 + 0.5 * V(obs 1) = 0.5 (no discount would give 1; a cut trace 0)."""
    value = jaxrl.make_value_fn(cfg, state)
    assert float(value(obs(1.0))) == pytest.approx(1.0, abs=0.1)
    assert float(value(obs(0.0))) == pytest.approx(0.5, abs=0.1)


def assert_action_reward_solved(cfg, state, value_tol=None):
    """ActionReward: the greedy action is 1 at obs +1 and 0 at obs -1 (then, if ``value_tol``,
    V(obs +1) = 1 within it)."""
    act = jaxrl.make_policy(cfg, state)
    assert int(act(obs(1.0), jax.random.key(0))) == 1
    assert int(act(obs(-1.0), jax.random.key(0))) == 0
    if value_tol is not None:
        assert float(jaxrl.make_value_fn(cfg, state)(obs(1.0))) == pytest.approx(1.0, abs=value_tol)


def assert_action_tracks_obs(cfg, state):
    """ContinuousActionReward (reward -(a - obs)^2): the greedy action at obs +1, -1 is about +1, -1."""
    a = jaxrl.make_policy(cfg, state)(jnp.asarray([[1.0], [-1.0]]), jax.random.key(0))
    assert a.shape == (2, 1)
    np.testing.assert_allclose(a[:, 0], [1.0, -1.0], atol=0.2)


def vmapped_runs_equal_separate_runs(cfgs, keys):
    """Train ``cfgs[i]`` with ``keys[i]`` in one vmapped program and as separate jitted runs; the
    members must equal the separate runs (parameters and losses), which must repeat exactly.
    Returns the separate runs ``[(state, metrics), ...]``."""
    s_vmap, m_vmap = jax.jit(jax.vmap(jaxrl.train))(jaxrl.stack_configs(cfgs), keys)
    train = jax.jit(jaxrl.train)
    runs = [train(c, k) for c, k in zip(cfgs, keys, strict=True)]
    for i, (s_i, m_i) in enumerate(runs):
        member = jax.tree_util.tree_map(lambda x, i=i: x[i], s_vmap.params)
        assert_trees_close(member, s_i.params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m_vmap.total_loss[i], m_i.total_loss, rtol=1e-4, atol=1e-6)
    assert_trees_close(train(cfgs[0], keys[0])[0].params, runs[0][0].params, rtol=0, atol=0)  # deterministic
    return runs
