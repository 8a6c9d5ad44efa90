"""A 2-D convolution whose gradients XLA CPU runs fast inside loops.

XLA CPU's fast convolution kernels (Eigen's; since jaxlib 0.10 mostly YNNPACK's) take the canonical
layout ``NHWC x HWIO -> NHWC``. At top level XLA rewrites the two gradient convolutions of
``lax.conv_general_dilated`` into that layout; inside a while loop (a rolled ``lax.scan``, which is
where every ``jaxrl.train`` update runs) it does not, and they fall to a generic emitter 10-18x
slower (``benchmarks/RESULTS.md``, "CPU convolutions"). :func:`conv2d` is the same convolution with a
custom VJP that writes both gradients as ``NHWC x HWIO -> NHWC`` convolutions with explicit
transposes, so XLA picks the fast kernel wherever the code runs:

- kernel gradient: ``x`` with its channel and batch axes swapped (``[C_in, H, W, N]``) convolved with
  ``dy`` as a kernel (``[OH, OW, N, C_out]``), the stride becoming a kernel dilation;
- input gradient: ``dy`` dilated by the stride and padded by ``kernel - 1``, convolved with the
  spatially flipped kernel with its in/out axes swapped.

Both are the textbook transposes of a strided VALID convolution, so the results equal
``lax.conv_general_dilated``'s own gradients (bit-equal on CPU in the tests, float tolerance in
general). :class:`Conv` is a drop-in for ``flax.linen.Conv`` (VALID padding, same parameter names and
shapes) that uses :func:`conv2d` on the CPU backend and the plain ``lax`` convolution elsewhere
(cuDNN picks its own layouts; the plain path stays the default on GPU/TPU).

On x86 CPUs with AVX-512 and a C++ compiler, :func:`conv2d`'s forward pass and both gradients run in
hand-written kernels instead (:mod:`jaxrl.networks.conv_kernels`: direct convolutions that use the
FMA units better than XLA's library does for these shapes, on XLA's intra-op threads), where the
output channels are multiples of 16; elsewhere, and with ``JAXRL_CONV_KERNELS=0``, the XLA
convolutions above. Both agree to float32 rounding (the sums run in another order).

A ``custom_vjp`` supports reverse mode only: ``jax.jvp``/``jax.jacfwd`` through :func:`conv2d` raise;
use ``impl="lax"`` where forward-mode derivatives are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxrl.networks import conv_kernels

_NHWC = ("NHWC", "HWIO", "NHWC")
IMPLS = ("auto", "lax", "cpu")


def _conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=_NHWC)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """VALID 2-D convolution, ``x: [N, H, W, C_in]``, ``kernel: [KH, KW, C_in, C_out]`` ->
    ``[N, OH, OW, C_out]`` with ``OH = (H - KH) // stride + 1``; gradients in the canonical layout."""
    return _forward(x, kernel, stride)


def _forward(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    if not conv_kernels.supports(x, kernel):
        return _conv(x, kernel, stride)
    return lax.platform_dependent(
        x, kernel, cpu=partial(conv_kernels.forward, stride=stride), default=partial(_conv, stride=stride)
    )


def _conv2d_fwd(x, kernel, stride):
    return _forward(x, kernel, stride), (x, kernel)


def _conv2d_bwd(stride, residuals, dy):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    oh, ow = dy.shape[1:3]
    used_h, used_w = (oh - 1) * stride + kh, (ow - 1) * stride + kw  # rows/cols the forward pass read
    # d kernel[i, j, c, o] = sum_{n, p, q} x[n, p*s + i, q*s + j, c] dy[n, p, q, o]:
    # a conv of x as [C_in, H, W, N] ("batch" C_in, "features" N) with dy as an [OH, OW, N, C_out]
    # kernel dilated by the stride, giving [C_in, KH, KW, C_out].
    with jax.named_scope("d_kernel"):  # named for profiles (benchmarks/dqn_update_ops.py)
        d_kernel = _kernel_grad(x, dy, kernel, stride, used_h, used_w)
    # d x = (dy dilated by the stride, padded by kernel - 1, plus the rows/cols the forward pass
    # never read) convolved with the flipped kernel, in/out swapped: [KH, KW, C_out, C_in].
    with jax.named_scope("d_input"):
        d_x = _input_grad(x, dy, kernel, stride, used_h, used_w)
    return d_x, d_kernel


def _xla_input_grad(dy, kernel, x, stride, used_h, used_w):
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    return lax.conv_general_dilated(
        dy,
        flipped,
        (1, 1),
        ((kh - 1, kh - 1 + h - used_h), (kw - 1, kw - 1 + w - used_w)),
        lhs_dilation=(stride, stride),
        dimension_numbers=_NHWC,
    ).astype(x.dtype)


def _input_grad(x, dy, kernel, stride, used_h, used_w):
    xla = partial(_xla_input_grad, x=x, stride=stride, used_h=used_h, used_w=used_w)
    usable = conv_kernels.supports(x, kernel) and conv_kernels.supports_input_grad(kernel)
    if not (usable and dy.dtype == jnp.float32):
        return xla(dy, kernel)
    cpu = partial(conv_kernels.input_grad, x_shape=x.shape, stride=stride)
    return lax.platform_dependent(dy, kernel, cpu=cpu, default=xla)


def _xla_kernel_grad(x, dy, kernel, stride, used_h, used_w):
    x_t = jnp.transpose(x[:, :used_h, :used_w, :], (3, 1, 2, 0))
    dy_t = jnp.transpose(dy, (1, 2, 0, 3))
    d_kernel = lax.conv_general_dilated(
        x_t, dy_t, (1, 1), "VALID", rhs_dilation=(stride, stride), dimension_numbers=_NHWC
    )
    return jnp.transpose(d_kernel, (1, 2, 0, 3)).astype(kernel.dtype)


def _kernel_grad(x, dy, kernel, stride, used_h, used_w):
    xla = partial(_xla_kernel_grad, kernel=kernel, stride=stride, used_h=used_h, used_w=used_w)
    if not (conv_kernels.supports(x, kernel) and dy.dtype == jnp.float32):
        return xla(x, dy)
    cpu = partial(conv_kernels.kernel_grad, kernel_shape=kernel.shape, stride=stride)
    return lax.platform_dependent(x, dy, cpu=cpu, default=xla)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def use_cpu_conv(impl: str) -> bool:
    """Whether ``impl`` ("auto" | "lax" | "cpu") means :func:`conv2d`; "auto" means it on the CPU backend."""
    if impl not in IMPLS:
        raise ValueError(f"conv impl must be one of {IMPLS}, got {impl!r}")
    return impl == "cpu" or (impl == "auto" and jax.default_backend() == "cpu")


class Conv(nn.Module):
    """``flax.linen.Conv(features, (kernel, kernel), strides=(stride, stride), padding="VALID")`` with
    the same parameters (``kernel [KH, KW, C_in, C_out]``, ``bias [C_out]``) and, on the CPU backend,
    :func:`conv2d`'s loop-friendly gradients. Inputs ``[N, H, W, C_in]``."""

    features: int
    kernel_size: int
    stride: int = 1
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()
    #: "auto" (conv2d on the CPU backend, plain lax elsewhere), "lax" or "cpu" (force one).
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        x = x.astype(jnp.result_type(x, kernel))
        y = conv2d(x, kernel, self.stride) if use_cpu_conv(self.impl) else _conv(x, kernel, self.stride)
        return y + bias.reshape((1, 1, 1, -1))
