"""jaxrl.networks.matmul: bfloat16 products with float32 accumulation, forward and backward; float32
products untouched."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxrl.networks import matmul

BF16 = jnp.bfloat16


def _operands(transpose_w):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 5, 24)), BF16)
    w = jnp.asarray(rng.normal(size=(16, 24) if transpose_w else (24, 16)) * 0.2, BF16)
    g = jnp.asarray(rng.normal(size=(3, 5, 16)), jnp.float32)
    return x, w, g


def _reference(x, w, transpose_w):
    """The same product in float32 on the bfloat16 values (float32 operands, float32 autodiff)."""
    x32, w32 = x.astype(jnp.float32), w.astype(jnp.float32)
    return lambda a, b: a @ (b.T if transpose_w else b), (x32, w32)


@pytest.mark.parametrize("transpose_w", [False, True])
def test_values_and_gradients_match_float32_on_the_bf16_values(transpose_w):
    x, w, g = _operands(transpose_w)
    f32, (x32, w32) = _reference(x, w, transpose_w)
    # forward with float32 output: the float32 product of the bf16 values (float32 accumulation)
    out = matmul.matmul(x, w, transpose_w, jnp.float32)
    assert out.dtype == jnp.float32 and out.shape == (3, 5, 16)
    np.testing.assert_allclose(out, f32(x32, w32), rtol=1e-5, atol=1e-5)
    # default output dtype: x's, i.e. the float32 result rounded once to bfloat16
    y = matmul.matmul(x, w, transpose_w)
    assert y.dtype == BF16
    np.testing.assert_array_equal(y, f32(x32, w32).astype(BF16))
    # gradients: those of the float32 product, with the cotangent and the results rounded to bf16
    _, vjp = jax.vjp(lambda a, b: matmul.matmul(a, b, transpose_w, jnp.float32), x, w)
    dx, dw = vjp(g)
    assert dx.dtype == BF16 and dw.dtype == BF16
    _, vjp32 = jax.vjp(f32, x32, w32)
    dx32, dw32 = vjp32(g.astype(BF16).astype(jnp.float32))
    np.testing.assert_array_equal(dx, dx32.astype(BF16))  # one rounding of the float32 accumulator
    np.testing.assert_allclose(np.asarray(dw, np.float32), dw32, rtol=1e-2, atol=1e-2)
    assert float(jnp.max(jnp.abs(dw.astype(jnp.float32) - dw32))) > 0  # rounded: not a float32 path


def test_dot_general_leaves_float32_products_alone_and_routes_bf16_dense_ones():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, 7, 12)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(12, 9)), jnp.float32)
    dims = (((2,), (0,)), ((), ()))
    np.testing.assert_array_equal(matmul.dot_general(x, w, dims), lax.dot_general(x, w, dims))
    # float32 models compile to exactly the same program as before
    f = lambda a, b: jnp.sum(jnp.tanh(matmul.dot_general(a, b, dims)))  # noqa: E731
    ref = lambda a, b: jnp.sum(jnp.tanh(lax.dot_general(a, b, dims)))  # noqa: E731
    assert jax.jit(jax.grad(f)).lower(x, w).as_text() == jax.jit(jax.grad(ref)).lower(x, w).as_text()
    # bfloat16: every product of the forward and backward pass takes bf16 operands, f32 accumulation
    xb, wb = x.astype(BF16), w.astype(BF16)
    loss = lambda a, b: jnp.sum(jnp.tanh(matmul.dot_general(a, b, dims).astype(jnp.float32)))  # noqa: E731
    hlo = jax.jit(jax.grad(loss, (0, 1)))
    dots = [ln for ln in hlo.lower(xb, wb).as_text().splitlines() if "dot_general" in ln]
    assert len(dots) == 3
    assert all("bf16>, tensor<" in d and "-> tensor<" in d and "xf32>" in d.split("->")[1] for d in dots)
    # a product that is not a dense layer's (batch dimensions) is left to lax.dot_general
    bdims = (((2,), (1,)), ((0,), (0,)))
    wb3 = jnp.asarray(rng.normal(size=(4, 12, 5)), BF16)
    np.testing.assert_array_equal(matmul.dot_general(xb, wb3, bdims), lax.dot_general(xb, wb3, bdims))


@pytest.mark.parametrize("transpose_w", [False, True])
def test_compiled_backward_keeps_every_product_in_bfloat16(transpose_w):
    """XLA folds a plain ``x.T`` into the weight-gradient product, and its CPU backend then converts both
    bfloat16 operands to float32 (half the speed): every product of the compiled gradient must still
    read bfloat16 operands."""
    if jax.default_backend() != "cpu":
        pytest.skip("checks XLA's CPU lowering")
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(4, 32, 64)), BF16)
    w = jnp.asarray(rng.normal(size=(48, 64) if transpose_w else (64, 48)), BF16)
    loss = lambda a, b: jnp.sum(jnp.tanh(matmul.matmul(a, b, transpose_w, jnp.float32)))  # noqa: E731
    text = jax.jit(jax.grad(loss, (0, 1))).lower(x, w).compile().as_text()
    dtype = dict(re.findall(r"%([\w.\-]+) = (\w+)\[", text))  # instruction -> element type
    dots = re.findall(r"= \w+\[[\d,]*\]\{[\d,]*\} dot\(%([\w.\-]+), %([\w.\-]+)\)", text)
    assert len(dots) == 3, text
    assert all(dtype[a] == "bf16" and dtype[b] == "bf16" for a, b in dots), dots
