"""Pieces every ``jaxrl.lm`` family shares: causal (grouped-query) attention over a KV cache, the cache
itself, and rotary position embeddings in transformers' "rotate half" layout.

Positions. ``decode(tokens[B, T], cache, start, offset)`` writes cache slots ``start .. start+T-1``.
``offset[B]`` (optional) is the number of LEFT-padding slots of each row: slots ``< offset[b]`` are never
attended to, and the token in slot ``i`` sits at position ``i - offset[b]``, so a left-padded prompt
gets exactly the logits it gets unpadded (what transformers does with an attention mask).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class KVCache(NamedTuple):
    """Keys and values of every layer: ``k, v: [num_layers, B, S, num_kv_heads, head_dim]``."""

    k: jax.Array
    v: jax.Array


def init_cache(num_layers: int, batch: int, length: int, num_kv_heads: int, head_dim: int, dtype: Any):
    shape = (num_layers, batch, length, num_kv_heads, head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def positions(start: jax.Array | int, t: int, batch: int, offset: jax.Array | None) -> jax.Array:
    """Slot indices ``start .. start+t-1`` as positions ``[B, T]`` (minus each row's left padding)."""
    idx = jnp.broadcast_to(start + jnp.arange(t)[None, :], (batch, t))
    return idx if offset is None else jnp.maximum(idx - offset[:, None], 0)


def write_and_attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    start: jax.Array | int,
    cache: KVCache | None,
    layer: int,
    offset: jax.Array | None,
    sliding_window: int | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """q [B, T, H, Dh], k/v [B, T, KVH, Dh] of slots ``start..start+T-1`` -> (attention output
    [B, T, H * Dh], cache with this chunk written into layer ``layer``)."""
    t = q.shape[1]
    q_idx = start + jnp.arange(t)
    if cache is not None:
        at = (layer, 0, start, 0, 0)
        cache = KVCache(
            jax.lax.dynamic_update_slice(cache.k, k[None].astype(cache.k.dtype), at),
            jax.lax.dynamic_update_slice(cache.v, v[None].astype(cache.v.dtype), at),
        )
        k, v = cache.k[layer], cache.v[layer]
        k_idx = jnp.arange(k.shape[1])
    else:
        k_idx = q_idx
    return attend(q, k, v, q_idx, k_idx, offset, sliding_window), cache


def attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_idx: jax.Array,
    k_idx: jax.Array,
    offset: jax.Array | None,
    sliding_window: int | None = None,
) -> jax.Array:
    """Causal attention, ``H = KVH * G`` query heads sharing each key/value head:
    q [B, T, H, Dh], k/v [B, S, KVH, Dh], slot indices q_idx [T], k_idx [S] -> [B, T, H * Dh].
    Scores are normalised in float32 (as transformers' eager attention)."""
    b, t, h, dh = q.shape
    kvh = k.shape[2]
    q = q.reshape(b, t, kvh, h // kvh, dh)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k).astype(jnp.float32) * (dh**-0.5)
    visible = k_idx[None, :] <= q_idx[:, None]  # [T, S]
    if sliding_window is not None:
        visible = visible & (k_idx[None, :] > q_idx[:, None] - sliding_window)
    visible = visible[None]  # [1, T, S]
    if offset is not None:
        visible = visible & (k_idx[None, None, :] >= offset[:, None, None])  # [B, T, S]
    scores = jnp.where(visible[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(b, t, h * dh)


def rotary(x: jax.Array, pos: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotary embedding ("rotate half" layout): x [B, T, H, Dh], pos [B, T] -> [B, T, H, Dh].
    cos/sin are computed in float32 and cast to x's dtype, as transformers does."""
    angles = pos[..., None].astype(jnp.float32) * inv_freq[None, None, :]  # [B, T, Dh/2]
    emb = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin
