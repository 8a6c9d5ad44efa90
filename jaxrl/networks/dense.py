"""A dense layer with SiLU, ``silu(x w + b)``, that runs in fused AVX-512 kernels on the CPU.

:func:`dense_silu` is the layer as one function with a custom VJP. On the CPU backend, where
:mod:`jaxrl.networks.dense_kernels` builds (x86-64 Linux with AVX-512 and a C++ compiler; off with
``JAXRL_DENSE_KERNELS=0``), the forward pass is one kernel with the bias and SiLU in the product's
epilogue, and the backward pass one kernel for the weight and bias gradients (XLA's own for fewer than
16 input columns) and XLA's product for the input gradient; each dropped by XLA where nothing reads it
(e.g. the input gradient of a network's first layer). Elsewhere (other backends, other dtypes than
float32, the switch off) it is XLA's ``dot`` and :func:`jaxrl.networks.mlp.silu`'s formula with the same
custom VJP: the same function to float32 rounding (the products sum in another order, the kernel's
sigmoid is its own few-ulp exponential).

A ``custom_vjp`` supports reverse mode only: ``jax.jvp``/``jax.jacfwd`` through :func:`dense_silu` raise.
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


def _xla_weight_grad(x, d, dy):
    dz = dy * d
    return jnp.dot(x.T, dz), jnp.sum(dz, axis=0)


def _xla_input_grad(d, dy, w):
    return jnp.dot(dy * d, w.T)


# below this many input columns XLA's weight-gradient product beats the kernel's (RESULTS.md, SAC)
_KERNEL_WEIGHT_GRAD_MIN_INPUTS = 16


def _pick(cpu, xla, *args):
    if not (dense_kernels.available() and all(a.dtype == jnp.float32 for a in args)):
        return xla(*args)
    return lax.platform_dependent(*args, cpu=cpu, default=xla)


@jax.custom_vjp
def _dense_silu2(x, w, b):
    return _pick(dense_kernels.forward, _xla_forward, x, w, b)


def _fwd(x, w, b):
    y, d = _pick(dense_kernels.forward_train, _xla_forward_train, x, w, b)
    return y, (x, w, d)


def _bwd(residuals, dy):
    x, w, d = residuals
    # separate calls, so that XLA drops whichever nothing reads (the input gradient of a network's first
    # layer, the weight gradients where only the input's is wanted, e.g. the critics in SAC's actor loss);
    # for a few input columns (the first layer) XLA's own weight-gradient product is the faster one
    if x.shape[-1] < _KERNEL_WEIGHT_GRAD_MIN_INPUTS:
        dw, db = _xla_weight_grad(x, d, dy)
    else:
        dw, db = _pick(dense_kernels.weight_grad, _xla_weight_grad, x, d, dy)
    return _xla_input_grad(d, dy, w), dw, db


_dense_silu2.defvjp(_fwd, _bwd)


def supports(x: jax.Array) -> bool:
    """Whether :func:`dense_silu` runs the kernels (on the CPU backend) for float32 weights and this input:
    float32 and the kernels available."""
    return x.dtype == jnp.dtype(jnp.float32) and dense_kernels.available()


def dense_silu(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``silu(x @ w + b)`` for ``x [..., K]``, ``w [K, N]``, ``b [N]`` -> ``[..., N]`` (float32)."""
    lead = x.shape[:-1]
    y = _dense_silu2(x.reshape(-1, x.shape[-1]), w, b)
    return y.reshape(*lead, w.shape[-1])
