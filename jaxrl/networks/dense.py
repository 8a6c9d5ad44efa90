"""SiLU MLPs, ``silu(... silu(x w_0 + b_0) ... w_L + b_L)``, that run in fused AVX-512 kernels on the CPU.

:func:`silu_mlp` is the whole stack of layers as one function with a custom VJP (:func:`dense_silu`: one
layer). On the CPU backend, where :mod:`jaxrl.networks.dense_kernels` builds (x86-64 Linux with AVX-512
and a C++ compiler; off with ``JAXRL_DENSE_KERNELS=0``), each layer's forward pass is one kernel with the
bias and SiLU in the product's epilogue (storing the activation's derivative when differentiated), and
the backward pass per layer one kernel for the weight and bias gradients (XLA's own product for fewer
than 16 input columns) and one for the cotangent handed to the layer below, ``(dz w^T) * silu'`` of that
layer, so no separate pass multiplies by the derivative; the first layer's input gradient is XLA's
product. Each is its own call, dropped by XLA where nothing reads it (the weight gradients where only
the input's is wanted, the input gradient of a network's input). Elsewhere (other backends, other dtypes
than float32, the switch off) the same custom VJP runs XLA's ``dot`` and
:func:`jaxrl.networks.mlp.silu`'s formula: the same function to float32 rounding (the products sum in
another order, the kernel's sigmoid is its own few-ulp exponential).

A ``custom_vjp`` supports reverse mode only: ``jax.jvp``/``jax.jacfwd`` through :func:`silu_mlp` raise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxrl.networks import dense_kernels


def silu_and_grad(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SiLU ``z sigmoid(z)`` through tanh (``jaxrl.networks.mlp.silu``) and its derivative ``s + y (1 - s)``."""
    s = 0.5 + 0.5 * jnp.tanh(0.5 * z)
    y = z * s
    return y, s + y * (1.0 - s)


def _xla_forward(x, w, b):
    return silu_and_grad(jnp.dot(x, w) + b[None, :])[0]


def _xla_forward_train(x, w, b):
    return silu_and_grad(jnp.dot(x, w) + b[None, :])


def _xla_weight_grad(x, dz):
    return jnp.dot(x.T, dz), jnp.sum(dz, axis=0)


def _xla_input_grad(dz, w, d_prev):
    return jnp.dot(dz, w.T) * d_prev


# below this many input columns XLA's weight-gradient product beats the kernel's (RESULTS.md, SAC)
_KERNEL_WEIGHT_GRAD_MIN_INPUTS = 16


def _pick(cpu, xla, *args):
    if not (dense_kernels.available() and all(a.dtype == jnp.float32 for a in args)):
        return xla(*args)
    return lax.platform_dependent(*args, cpu=cpu, default=xla)


@jax.custom_vjp
def _silu_mlp_rows(x, layers):  # x [M, K]: silu_mlp folds the leading axes into the rows
    for w, b in layers:
        x = _pick(dense_kernels.forward, _xla_forward, x, w, b)
    return x


def _fwd(x, layers):
    xs, ds = [], []
    for w, b in layers:
        xs.append(x)
        x, d = _pick(dense_kernels.forward_train, _xla_forward_train, x, w, b)
        ds.append(d)
    return x, (xs, [w for w, _ in layers], ds)


def _bwd(residuals, g):
    xs, ws, ds = residuals
    dz = g * ds[-1]
    grads = []
    # per layer from the top: its weight and bias gradients, then the cotangent of the layer below's
    # pre-activation in one call with that layer's SiLU derivative applied; separate calls, so that XLA
    # drops whichever nothing reads (weight gradients where only the input's is wanted, the input gradient
    # of the first layer); for a few input columns (a first layer) XLA's weight-gradient product is faster
    for i in reversed(range(len(ws))):
        if xs[i].shape[-1] < _KERNEL_WEIGHT_GRAD_MIN_INPUTS:
            grads.append(_xla_weight_grad(xs[i], dz))
        else:
            grads.append(_pick(dense_kernels.weight_grad, _xla_weight_grad, xs[i], dz))
        if i > 0:
            dz = _pick(dense_kernels.input_grad, _xla_input_grad, dz, ws[i], ds[i - 1])
    return jnp.dot(dz, ws[0].T), grads[::-1]


_silu_mlp_rows.defvjp(_fwd, _bwd)


def supports(x: jax.Array) -> bool:
    """Whether :func:`silu_mlp` runs the kernels (on the CPU backend) for float32 weights and this input:
    float32 and the kernels available."""
    return x.dtype == jnp.dtype(jnp.float32) and dense_kernels.available()


def silu_mlp(x: jax.Array, layers: list[tuple[jax.Array, jax.Array]]) -> jax.Array:
    """``silu(... silu(x @ w_0 + b_0) ... @ w_L + b_L)`` for ``x [..., K]`` and ``layers`` = ``[(w_i, b_i)]``
    (``w_i [K_i, N_i]``, ``b_i [N_i]``) -> ``[..., N_L]`` (float32)."""
    if not layers:
        return x
    lead = x.shape[:-1]
    y = _silu_mlp_rows(x.reshape(-1, x.shape[-1]), [tuple(layer) for layer in layers])
    return y.reshape(*lead, y.shape[-1])


def dense_silu(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``silu(x @ w + b)`` for ``x [..., K]``, ``w [K, N]``, ``b [N]`` -> ``[..., N]`` (float32)."""
    return silu_mlp(x, [(w, b)])
