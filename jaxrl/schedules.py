"""Step-indexed schedules (exploration rates, step sizes): pure functions of a step count.

Unlike ``optax.linear_schedule`` these accept *traced* endpoints and durations, so a config field such
as ``exploration_fraction`` can be a vmapped (swept) hyperparameter::

    eps = schedules.linear(1.0, 0.05, 0.5 * total_timesteps, env_steps)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Scalar = jax.Array | float | int


def linear(start: Scalar, end: Scalar, duration: Scalar, step: Scalar) -> jax.Array:
    """``start + (end - start) * min(step / duration, 1)``; ``end`` for ``duration <= 0``.

    Args:
      start: value at step 0.
      end: value from step ``duration`` on.
      duration: number of steps of the linear ramp (may be traced, non-integer).
      step: the current step (scalar or any shape; the result has its shape).
    Returns:
      float32 array shaped like ``step``.
    """
    step = jnp.asarray(step, jnp.float32)
    duration = jnp.asarray(duration, jnp.float32)
    frac = jnp.where(duration > 0, jnp.clip(step / jnp.maximum(duration, 1e-12), 0.0, 1.0), 1.0)
    return jnp.asarray(start, jnp.float32) + frac * (
        jnp.asarray(end, jnp.float32) - jnp.asarray(start, jnp.float32)
    )


def crossed(before: Scalar, after: Scalar, period: Scalar) -> jax.Array:
    """True if a multiple of ``period`` lies in ``(before, after]``: an event due every ``period`` steps
    (a target-network copy, a log line) happens in an iteration that advances the counter from
    ``before`` to ``after`` (several steps at once, e.g. one per environment).

    ``crossed(0, 10, 500) == False``, ``crossed(490, 500, 500) == True``, ``crossed(495, 505, 500) == True``.
    """
    before = jnp.asarray(before)
    after = jnp.asarray(after)
    return (after // period) > (before // period)
