"""Hand-written CPU kernels for a dense layer with SiLU, ``silu(x w + b)``, and its gradients (XLA FFI).

SAC's networks are small MLPs (64-64, SiLU) applied to 256-row minibatches, so a gradient step is a few
dozen small matrix products and as many elementwise passes, and XLA CPU runs both below the core's reach:
the activation is a separate pass over memory (forward and again for its derivative), and the weight
gradient ``x^T dz`` takes a slower form than the forward product. ``dense_cpu.cc`` (next to this file) has,
for x86 CPUs with AVX-512, the forward product with the bias and SiLU in its epilogue (an exponential
of its own and a division, a few float32 ulp of the exact function; for training also storing the
activation's derivative for the backward pass), the bias and weight gradients in one loop (the weight
gradient as a register-blocked outer product, as fast as the forward form), and the input gradient
``dz w^T`` with the SiLU derivative of the layer below applied in its epilogue.

Built and loaded by :mod:`jaxrl.networks.cpu_kernels`; where they cannot run here, or
``JAXRL_DENSE_KERNELS=0`` is set, :func:`available` is False and :mod:`jaxrl.networks.dense` uses XLA's
``dot`` and :func:`jaxrl.networks.mlp.silu`'s formula (same results to float tolerance). The FFI targets are
registered for the CPU platform only; callers select them with ``lax.platform_dependent``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.networks import cpu_kernels

_FORWARD, _FORWARD_TRAIN = "jaxrl_dense_silu_forward", "jaxrl_dense_silu_forward_train"
_WEIGHT_GRAD, _INPUT_GRAD = "jaxrl_dense_silu_weight_grad", "jaxrl_dense_silu_input_grad"
_LIBRARY = cpu_kernels.Library(
    "dense_cpu.cc",
    (
        (_FORWARD, "JaxrlDenseSiluForward"),
        (_FORWARD_TRAIN, "JaxrlDenseSiluForwardTrain"),
        (_WEIGHT_GRAD, "JaxrlDenseSiluWeightGrad"),
        (_INPUT_GRAD, "JaxrlDenseSiluInputGrad"),
    ),
    "JAXRL_DENSE_KERNELS",
    "jaxrl.networks.dense.silu_mlp",
)
available = _LIBRARY.available
_require = _LIBRARY.require


def _shape(x: jax.Array, w: jax.Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((x.shape[0], w.shape[1]), jnp.float32)


def forward(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``silu(x w + b)`` for ``x [M, K]``, ``w [K, N]``, ``b [N]`` (CPU only; vmap batches every operand)."""
    _require()
    return jax.ffi.ffi_call(_FORWARD, _shape(x, w), vmap_method="broadcast_all")(x, w, b)


def forward_train(x: jax.Array, w: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(y, d)``: :func:`forward`'s ``y`` and the activation's derivative ``silu'(x w + b)`` (CPU only)."""
    _require()
    out = _shape(x, w)
    return jax.ffi.ffi_call(_FORWARD_TRAIN, (out, out), vmap_method="broadcast_all")(x, w, b)


def weight_grad(x: jax.Array, dz: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(dw, db)``: ``dw = x^T dz``, ``db`` the sum of ``dz``'s rows (CPU only)."""
    _require()
    k, n = x.shape[-1], dz.shape[-1]
    outs = (jax.ShapeDtypeStruct((k, n), jnp.float32), jax.ShapeDtypeStruct((n,), jnp.float32))
    return jax.ffi.ffi_call(_WEIGHT_GRAD, outs, vmap_method="broadcast_all")(x, dz)


def input_grad(dz: jax.Array, w: jax.Array, d_prev: jax.Array) -> jax.Array:
    """``(dz w^T) * d_prev``: the cotangent of the layer below's pre-activation, ``[M, K]`` (CPU only)."""
    _require()
    out = jax.ShapeDtypeStruct(d_prev.shape, jnp.float32)
    return jax.ffi.ffi_call(_INPUT_GRAD, out, vmap_method="broadcast_all")(dz, w.T, d_prev)
