"""bfloat16 matrix products with float32 accumulation, forward and backward.

XLA's CPU backend runs a ``bfloat16 x bfloat16`` product fast (on CPUs with ``avx512_bf16``, about 2x
float32) only when it accumulates into float32 (``preferred_element_type=float32``); a plain
``bfloat16 x bfloat16 -> bfloat16`` product, what ``flax.linen.Dense`` emits for bfloat16 weights, takes
a path no faster than float32. And autodiff of ``dot_general(bf16, bf16, preferred_element_type=f32)``
upcasts the operands of the two backward products to float32. :func:`matmul` is the product with a
custom VJP whose three products (``y = x @ w``, ``dx = g @ w.T``, ``dw = x.T @ g``) all take bfloat16
operands and accumulate in float32; :func:`dot_general` is a drop-in for ``flax.linen.Dense``'s
``dot_general`` that routes bfloat16 operands through it and leaves every other dtype (float32: the
default everywhere) to ``lax.dot_general`` unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

_BF16 = jnp.dtype(jnp.bfloat16)


def _dot(a: jax.Array, b: jax.Array, contract: tuple[int, int]) -> jax.Array:
    """``a`` and ``b`` cast to bfloat16, contracted on one axis each, accumulated in float32."""
    dims = (((contract[0],), (contract[1],)), ((), ()))
    return lax.dot_general(a.astype(_BF16), b.astype(_BF16), dims, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def matmul(x: jax.Array, w: jax.Array, transpose_w: bool = False, out_dtype: Any = None) -> jax.Array:
    """``x @ w`` (or ``x @ w.T`` with ``transpose_w``) with bfloat16 operands and float32 accumulation.

    x [..., K], w [K, N] ([N, K] with ``transpose_w``) -> [..., N] in ``out_dtype`` (default: ``x``'s).
    The gradients are computed the same way (bfloat16 operands, float32 accumulation) and returned in
    ``x``'s and ``w``'s dtypes. ``out_dtype=float32`` keeps the accumulator's precision, e.g. for logits
    that go into a log-softmax.
    """
    out = _dot(x, w, (x.ndim - 1, 1 if transpose_w else 0))
    return out.astype(out_dtype or x.dtype)


def _matmul_fwd(x, w, transpose_w, out_dtype):
    return matmul(x, w, transpose_w, out_dtype), (x, w)


def _transpose(a: jax.Array) -> jax.Array:
    """``a.T`` of a 2-D array, written so that XLA materialises it. XLA folds a plain transpose into the
    product that reads it (``x.T @ g`` becomes a product contracting both operands' first axes), and its
    CPU backend runs that form only in float32 (both bfloat16 operands converted: half the speed); a
    transpose spelled through a reshape is not folded, and the product keeps its bfloat16 kernel."""
    m, k = a.shape
    a = a.astype(_BF16)
    if k % 2 == 0:
        return a.reshape(m, k // 2, 2).transpose(1, 2, 0).reshape(k, m)
    if m % 2 == 0:
        return a.reshape(m // 2, 2, k).transpose(2, 0, 1).reshape(k, m)
    return a.T


def _matmul_bwd(transpose_w, out_dtype, res, g):
    x, w = res
    dx = _dot(g, w, (g.ndim - 1, 0 if transpose_w else 1)).astype(x.dtype)  # g @ w.T (g @ w)
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    # dw = g2.T @ x2 [N, K] or x2.T @ g2 [K, N], the transposed operand materialised (see _transpose)
    dw = _dot(_transpose(g2), x2, (1, 0)) if transpose_w else _dot(_transpose(x2), g2, (1, 0))
    return dx, dw.astype(w.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def both_bf16(*xs: jax.Array) -> bool:
    """Every array is bfloat16 (the case :func:`matmul` speeds up)."""
    return all(jnp.dtype(x.dtype) == _BF16 for x in xs)


def dot_general(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_dtype: Any = None,
    **kwargs: Any,
) -> jax.Array:
    """``lax.dot_general``, except that a dense layer's product of two bfloat16 arrays (``lhs [..., K]``
    contracted on its last axis with ``rhs [K, N]``) goes through :func:`matmul`: the same bfloat16
    result (or ``out_dtype``), accumulated in float32, at the CPU's bfloat16 speed forward and
    backward. Every other product, float32 ones included, is ``lax.dot_general`` unchanged."""
    (lc, rc), (lb, rb) = dimension_numbers
    dense = tuple(lc) == (lhs.ndim - 1,) and tuple(rc) == (0,) and not lb and not rb and rhs.ndim == 2
    if dense and both_bf16(lhs, rhs) and preferred_element_type in (None, _BF16):
        return matmul(lhs, rhs, False, out_dtype)
    return lax.dot_general(
        lhs,
        rhs,
        dimension_numbers,
        precision=precision,
        preferred_element_type=preferred_element_type,
        **kwargs,
    )


def logits_dot_general(lhs: jax.Array, rhs: jax.Array, dimension_numbers: Any, **kwargs: Any) -> jax.Array:
    """:func:`dot_general` whose bfloat16 products come out in float32 (an output head's logits)."""
    return dot_general(lhs, rhs, dimension_numbers, out_dtype=jnp.float32, **kwargs)


def tied_logits(embed: Any, hidden: jax.Array) -> jax.Array:
    """Logits of an output head tied to the token embedding ``embed`` (a ``flax.linen.Embed``):
    ``hidden [..., D] -> [..., V]``, float32 through :func:`matmul` for bfloat16 weights (the log-softmax
    after it wants that precision), ``embed.attend`` unchanged otherwise."""
    if both_bf16(hidden, embed.embedding):
        return matmul(hidden, embed.embedding, True, jnp.float32)
    return embed.attend(hidden)
