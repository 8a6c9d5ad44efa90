"""Hand-written CPU kernels for a VALID convolution's forward pass and both gradients (XLA FFI).

XLA CPU runs convolutions through its YNNPACK library on one thread per op. For the Nature CNN's
first layer (8x8 stride 4 over 4 channels) that library is far from the core's FMA peak, and that
layer is the largest part of a DQN update on CPU. ``conv_cpu.cc`` (next to this file) is a direct
convolution for x86 CPUs with AVX-512: no im2col, output channels held in vector registers, pixels
(forward, input gradient) or kernel rows (kernel gradient) broadcast, work split over XLA's intra-op
thread pool. The other layers' convolutions, and their gradients, are faster this way too, so the
kernels serve every layer whose output channels (and, for the input gradient, ``KW * C_in``) are
multiples of 16.

The library is compiled on first use with the system C++ compiler (``$CXX``, else ``c++``/``g++``,
``-O3 -march=native``) against ``jax.ffi.include_dir()`` and kept in a cache directory
(``$JAXRL_KERNEL_CACHE``, default ``~/.cache/jaxrl/kernels``) under a name that hashes the source,
the compiler, the flags, jaxlib and the CPU's feature flags, so a changed machine or source builds
anew. Where there is no compiler, no AVX-512, no Linux x86-64, the build fails, or
``JAXRL_CONV_KERNELS=0`` is set, :func:`available` is False and :mod:`jaxrl.networks.conv` uses
XLA's own convolutions (same results to float tolerance). The FFI targets are registered for the CPU
platform only; callers select them with ``lax.platform_dependent`` so other backends never see them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

_SOURCE = Path(__file__).with_name("conv_cpu.cc")
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno")
_FORWARD, _KERNEL_GRAD, _INPUT_GRAD = "jaxrl_conv_forward", "jaxrl_conv_kernel_grad", "jaxrl_conv_input_grad"
_log = logging.getLogger(__name__)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    if os.environ.get("JAXRL_KERNEL_CACHE"):
        return Path(os.environ["JAXRL_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "jaxrl" / "kernels"


def _build() -> Path:
    """Compile ``conv_cpu.cc`` into the cache (once per source/compiler/CPU) and return the library."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (set $CXX)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        "\0".join(
            [_SOURCE.read_text(), cxx, version, " ".join(_FLAGS), jax.__version__, _cpu_flags()]
        ).encode()
    ).hexdigest()[:16]
    out = _cache_dir() / f"conv_cpu-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_out = Path(tmp) / out.name
        cmd = [cxx, *_FLAGS, f"-I{jax.ffi.include_dir()}", str(_SOURCE), "-o", str(tmp_out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        os.replace(tmp_out, out)  # atomic: concurrent builders (test workers) each write a whole file
    return out


@functools.cache
def available() -> bool:
    """Whether the kernels are built, loaded and registered for the CPU platform (False: use XLA's)."""
    if os.environ.get("JAXRL_CONV_KERNELS", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    if "avx512f" not in _cpu_flags().split():
        return False
    try:
        lib = ctypes.cdll.LoadLibrary(str(_build()))
        jax.ffi.register_ffi_target(_FORWARD, jax.ffi.pycapsule(lib.JaxrlConvForward), platform="cpu")
        jax.ffi.register_ffi_target(_KERNEL_GRAD, jax.ffi.pycapsule(lib.JaxrlConvKernelGrad), platform="cpu")
        jax.ffi.register_ffi_target(_INPUT_GRAD, jax.ffi.pycapsule(lib.JaxrlConvInputGrad), platform="cpu")
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        _log.warning("jaxrl conv kernels unavailable, using XLA's convolutions: %s", err)
        return False
    return True


def supports(x: jax.Array, kernel: jax.Array) -> bool:
    """Whether these operands can take the kernels: float32, output channels a multiple of 16."""
    return (
        x.dtype == jnp.float32 and kernel.dtype == jnp.float32 and kernel.shape[-1] % 16 == 0
    ) and available()


def supports_input_grad(kernel: jax.Array) -> bool:
    """Whether :func:`input_grad` takes this kernel: also ``KW * C_in`` a multiple of 16."""
    return kernel.shape[1] * kernel.shape[2] % 16 == 0


def _require() -> None:
    if not available():
        raise RuntimeError(
            "jaxrl's conv kernels are not available here (no AVX-512 on Linux x86-64, no C++ compiler, "
            "the build failed (see the log), or JAXRL_CONV_KERNELS=0); use jaxrl.networks.conv.conv2d"
        )


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
