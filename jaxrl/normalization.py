"""Running mean/variance of observations (parallel Welford / Chan et al. merge), as a pytree."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RunningStats(NamedTuple):
    mean: jax.Array  # [*obs_shape]
    var: jax.Array  # [*obs_shape]
    count: jax.Array  # []


def init(shape: tuple[int, ...]) -> RunningStats:
    return RunningStats(
        jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32)
    )


def update(stats: RunningStats, x: jax.Array, weights: jax.Array | None = None) -> RunningStats:
    """Merge a batch ``x [N, *obs_shape]`` (optional weights ``[N]``, 0 to skip a row)."""
    x = x.astype(jnp.float32)
    w = jnp.ones(x.shape[:1], jnp.float32) if weights is None else weights.astype(jnp.float32)
    wb = w.reshape(w.shape + (1,) * (x.ndim - 1))
    n = jnp.sum(w)
    safe_n = jnp.maximum(n, 1e-8)
    b_mean = jnp.sum(x * wb, axis=0) / safe_n
    b_var = jnp.sum(wb * jnp.square(x - b_mean[None]), axis=0) / safe_n
    total = stats.count + n
    delta = b_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + b_var * n + jnp.square(delta) * stats.count * n / total
    return RunningStats(mean, m2 / total, total)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0) -> jax.Array:
    """``x [..., *obs_shape]`` -> standardised and clipped, same shape (explicit broadcasting, so it
    also runs under ``jax_numpy_rank_promotion="raise"``)."""
    mean = jnp.broadcast_to(stats.mean, x.shape)
    std = jnp.broadcast_to(jnp.sqrt(stats.var + 1e-8), x.shape)
    return jnp.clip((x.astype(jnp.float32) - mean) / std, -clip, clip)
