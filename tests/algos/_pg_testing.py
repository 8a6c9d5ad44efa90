"""Shared pieces of the REINFORCE and A2C tests: a one-parameter policy, hand-built rollouts."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import rollout
from jaxrl.networks.heads import PolicyOutput


class TinyNet:
    """Two actions with logits ``[0, theta]`` whatever the state (so pi(1) = sigmoid(theta)), and
    ``V(obs) = w * obs[0]``. Quacks like a flax module: ``apply(params, obs)``."""

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
