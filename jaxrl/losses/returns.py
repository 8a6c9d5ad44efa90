"""Returns and advantages on one stream of experience (time-major ``[T]``; vmap for batches).

Discount convention everywhere: ``discount_t = gamma * (1 - terminated_t)``. Termination zeroes the
bootstrap; truncation never does (it only cuts traces, see :func:`truncated_gae`).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def discounted_returns(
    r_t: jax.Array, discount_t: jax.Array, bootstrap: jax.Array | float = 0.0
) -> jax.Array:
    """Reward-to-go ``G_t = r_t + discount_t * G_{t+1}``, with ``G_T = bootstrap``.

    Args:
      r_t: [T] rewards.
      discount_t: [T] discounts (gamma, or 0 where the episode terminated at t).
      bootstrap: [] value used after the last step (0 for complete episodes).
    Returns:
      [T] returns.
    """
    chex.assert_rank([r_t, discount_t], 1)
    chex.assert_equal_shape([r_t, discount_t])
    bootstrap = jnp.asarray(bootstrap, dtype=r_t.dtype)

    def body(g, xs):
        r, d = xs
        g = r + d * g
        return g, g

    _, g_t = jax.lax.scan(body, bootstrap, (r_t, discount_t), reverse=True)
    return g_t


def gae(r_t: jax.Array, discount_t: jax.Array, values: jax.Array, lambda_: jax.Array | float) -> jax.Array:
    """Generalised advantage estimation (Schulman et al. 2016, arXiv:1506.02438) on one episode.

    ``delta_t = r_t + discount_t * V_{t+1} - V_t``;  ``A_t = delta_t + discount_t * lambda * A_{t+1}``.

    Assumes ``values[t+1]`` is the value of the state that follows ``t`` in the same episode; for a
    rollout that crosses episode ends (auto-reset), use :func:`truncated_gae`.

    Args:
      r_t: [T] rewards.
      discount_t: [T] discounts, ``gamma * (1 - terminated_t)``.
      values: [T+1] state values V(s_0) .. V(s_T) (the last one bootstraps).
      lambda_: [] or [T] trace-decay parameter.
    Returns:
      [T] advantages.
    """
    chex.assert_rank([r_t, discount_t, values], 1)
    chex.assert_equal_shape([r_t, discount_t])
    chex.assert_shape(values, (r_t.shape[0] + 1,))
    end_t = jnp.zeros_like(r_t, dtype=bool)
    return truncated_gae(r_t, discount_t, values[:-1], values[1:], end_t, lambda_)


def truncated_gae(
    r_t: jax.Array,
    discount_t: jax.Array,
    v_tm1: jax.Array,
    v_t: jax.Array,
    end_t: jax.Array,
    lambda_: jax.Array | float,
) -> jax.Array:
    """GAE for rollouts that cross episode ends, truncation-aware.

    ``delta_t = r_t + discount_t * v_t[t] - v_tm1[t]``;
    ``A_t = delta_t + discount_t * lambda * (1 - end_t) * A_{t+1}``.

    ``v_t[t]`` is V of the *true* next state of transition t (the final observation when an episode
    ended there), so a truncated step (``discount_t = gamma``, ``end_t = True``) bootstraps from
    V(s_final) while the trace is still cut; a terminated step has ``discount_t = 0``.

    Args:
      r_t: [T] rewards.
      discount_t: [T] ``gamma * (1 - terminated_t)``.
      v_tm1: [T] V(s_t), values of the states the actions were taken in.
      v_t: [T] V(s_{t+1}), values of the true next states.
      end_t: [T] bool, the episode ended at t (terminated or truncated, or an invalid step): cut trace.
      lambda_: [] or [T] trace-decay parameter.
    Returns:
      [T] advantages; value targets are ``advantages + v_tm1``.
    """
    chex.assert_rank([r_t, discount_t, v_tm1, v_t, end_t], 1)
    chex.assert_equal_shape([r_t, discount_t, v_tm1, v_t, end_t])
    lambda_ = jnp.broadcast_to(jnp.asarray(lambda_, dtype=r_t.dtype), r_t.shape)
    delta_t = r_t + discount_t * v_t - v_tm1
    trace_t = discount_t * lambda_ * (1.0 - end_t.astype(r_t.dtype))

    def body(acc, xs):
        delta, trace = xs
        acc = delta + trace * acc
        return acc, acc

    _, adv = jax.lax.scan(body, jnp.zeros((), r_t.dtype), (delta_t, trace_t), reverse=True)
    return adv


def td_targets(r_t: jax.Array, discount_t: jax.Array, v_t: jax.Array) -> jax.Array:
    """One-step TD targets ``r_t + discount_t * V(s_{t+1})``; shapes ``[T]`` in and out."""
    chex.assert_equal_shape([r_t, discount_t, v_t])
    return r_t + discount_t * v_t
