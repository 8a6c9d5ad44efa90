"""Hand-written CPU kernels for a VALID convolution's forward pass and both gradients (XLA FFI).

XLA CPU runs convolutions through its YNNPACK library on one thread per op. For the Nature CNN's
first layer (8x8 stride 4 over 4 channels) that library is far from the core's FMA peak, and that
layer is the largest part of a DQN update on CPU. ``conv_cpu.cc`` (next to this file) is a direct
convolution for x86 CPUs with AVX-512: no im2col, output channels held in vector registers, pixels
(forward, input gradient) or kernel rows (kernel gradient) broadcast, work split over XLA's intra-op
thread pool. The other layers' convolutions, and their gradients, are faster this way too, so the
kernels serve every layer whose output channels (and, for the input gradient, ``KW * C_in``) are
multiples of 16.

The library is built and loaded by :mod:`jaxrl.networks.cpu_kernels` (compiled on first use into a
cache directory). Where it cannot run here, or ``JAXRL_CONV_KERNELS=0`` is set, :func:`available` is False
and :mod:`jaxrl.networks.conv` uses XLA's own convolutions (same results to float tolerance). The FFI
targets are registered for the CPU platform only; callers select them with ``lax.platform_dependent`` so
other backends never see them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.networks import cpu_kernels

_FORWARD, _KERNEL_GRAD, _INPUT_GRAD = "jaxrl_conv_forward", "jaxrl_conv_kernel_grad", "jaxrl_conv_input_grad"


_LIBRARY = cpu_kernels.Library(
    "conv_cpu.cc",
    (
        (_FORWARD, "JaxrlConvForward"),
        (_KERNEL_GRAD, "JaxrlConvKernelGrad"),
        (_INPUT_GRAD, "JaxrlConvInputGrad"),
    ),
    "JAXRL_CONV_KERNELS",
    "jaxrl.networks.conv.conv2d",
)
available = _LIBRARY.available
_require = _LIBRARY.require


def supports(x: jax.Array, kernel: jax.Array) -> bool:
    """Whether these operands can take the kernels: float32, output channels a multiple of 16."""
    return (
        x.dtype == jnp.float32 and kernel.dtype == jnp.float32 and kernel.shape[-1] % 16 == 0
    ) and available()


def supports_input_grad(kernel: jax.Array) -> bool:
    """Whether :func:`input_grad` takes this kernel: also ``KW * C_in`` a multiple of 16."""
    return kernel.shape[1] * kernel.shape[2] % 16 == 0


def forward(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """VALID convolution ``[N, H, W, C] x [KH, KW, C, O] -> [N, OH, OW, O]`` (CPU only)."""
    _require()
    (n, h, w, _), (kh, kw, _, o) = x.shape, kernel.shape
    out = jax.ShapeDtypeStruct((n, (h - kh) // stride + 1, (w - kw) // stride + 1, o), jnp.float32)
    call = jax.ffi.ffi_call(_FORWARD, out, vmap_method="broadcast_all")
    return call(x, kernel, stride=np.int64(stride))


def kernel_grad(x: jax.Array, dy: jax.Array, kernel_shape: tuple[int, ...], stride: int) -> jax.Array:
    """The kernel gradient ``sum_p x-patch(p) (x) dy[p]`` of :func:`forward`, ``[KH, KW, C, O]`` (CPU only)."""
    _require()
    out = jax.ShapeDtypeStruct(tuple(kernel_shape), jnp.float32)
    call = jax.ffi.ffi_call(_KERNEL_GRAD, out, vmap_method="broadcast_all")
    return call(x, dy, stride=np.int64(stride))


def input_grad(dy: jax.Array, kernel: jax.Array, x_shape: tuple[int, ...], stride: int) -> jax.Array:
    """The input gradient of :func:`forward`, ``[N, H, W, C]`` (rows/cols it never read get zeros;
    CPU only; needs :func:`supports_input_grad`)."""
    _require()
    out = jax.ShapeDtypeStruct(tuple(x_shape), jnp.float32)
    call = jax.ffi.ffi_call(_INPUT_GRAD, out, vmap_method="broadcast_all")
    return call(dy, kernel, stride=np.int64(stride))
