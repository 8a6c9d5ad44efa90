"""Value-based losses on a single transition (vmap over a batch). Each returns per-element values."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def q_learning(
    q_tm1: jax.Array,
    a_tm1: jax.Array,
    r_t: jax.Array,
    discount_t: jax.Array,
    q_t: jax.Array,
    *,
    stop_target_gradients: bool = True,
) -> jax.Array:
    """Q-learning TD error (Watkins 1989; Mnih et al. 2015 with a target network as ``q_t``).

    ``td = r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]``.

    Args:
      q_tm1: [A] Q-values at s_{t-1}.
      a_tm1: [] int action taken at s_{t-1}.
      r_t: [] reward.
      discount_t: [] ``gamma * (1 - terminated)``: 0 at termination, gamma at truncation.
      q_t: [A] Q-values at s_t (the target network's, for DQN).
    Returns:
      [] TD error (its square/Huber is the loss; gradient flows through ``q_tm1`` only by default).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    chex.assert_type([a_tm1], [int])
    target = r_t + discount_t * jnp.max(q_t)
    if stop_target_gradients:
        target = jax.lax.stop_gradient(target)
    return target - q_tm1[a_tm1]


def double_q_learning(
    q_tm1: jax.Array,
    a_tm1: jax.Array,
    r_t: jax.Array,
    discount_t: jax.Array,
    q_t_target: jax.Array,
    q_t_online: jax.Array,
    *,
    stop_target_gradients: bool = True,
) -> jax.Array:
    """Double Q-learning TD error (van Hasselt et al. 2016, arXiv:1509.06461).

    ``td = r_t + discount_t * q_t_target[argmax_a q_t_online[a]] - q_tm1[a_tm1]``: the online network
    chooses the next action, the target network values it.

    Args:
      q_tm1: [A], a_tm1: [] int, r_t: [], discount_t: [], q_t_target: [A], q_t_online: [A].
    Returns:
      [] TD error.
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_online], [1, 0, 0, 0, 1, 1])
    chex.assert_type([a_tm1], [int])
    best = jnp.argmax(q_t_online)
    target = r_t + discount_t * q_t_target[best]
    if stop_target_gradients:
        target = jax.lax.stop_gradient(target)
    return target - q_tm1[a_tm1]


def huber_loss(x: jax.Array, delta: float = 1.0) -> jax.Array:
    """Elementwise Huber loss: ``0.5 x^2`` for ``|x| <= delta``, ``delta (|x| - 0.5 delta)`` beyond."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    return 0.5 * quadratic**2 + delta * (abs_x - quadratic)


def l2_loss(x: jax.Array) -> jax.Array:
    """Elementwise ``0.5 x^2``."""
    return 0.5 * jnp.square(x)
