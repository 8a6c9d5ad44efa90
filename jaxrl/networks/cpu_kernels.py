"""Building and loading jaxrl's hand-written CPU kernels (XLA FFI), shared by the conv and dense kernels.

A kernel library is one C++ source next to this file (``conv_cpu.cc``, ``dense_cpu.cc``, with the shared
``cpu_kernels.h``), compiled on first use with the system C++ compiler (``$CXX``, else ``c++``/``g++``,
``-O3 -march=native``) against ``jax.ffi.include_dir()`` and kept in a cache directory
(``$JAXRL_KERNEL_CACHE``, default ``~/.cache/jaxrl/kernels``) under a name that hashes the sources, the
compiler, the flags, jaxlib and the CPU's feature flags, so a changed machine or source builds anew.
:func:`load` registers a library's handlers as FFI targets for the CPU platform only (callers select them
with ``lax.platform_dependent``, so other backends never see them) and says False, so that callers use
XLA's own operations, where there is no compiler, no AVX-512, no Linux x86-64, the build fails, or the
library's switch (an environment variable) is ``0``.
"""

from __future__ import annotations

import ctypes
import dataclasses
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

_HERE = Path(__file__).parent
_HEADERS = ("cpu_kernels.h",)
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno")
_log = logging.getLogger(__name__)


def cpu_flags() -> str:
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


def build(source: str) -> Path:
    """Compile ``source`` (a file next to this module) into the cache, once per source/compiler/CPU, and
    return the library's path."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (set $CXX)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    texts = [(_HERE / name).read_text() for name in (source, *_HEADERS)]
    key = hashlib.sha256(
        "\0".join([*texts, cxx, version, " ".join(_FLAGS), jax.__version__, cpu_flags()]).encode()
    ).hexdigest()[:16]
    out = _cache_dir() / f"{Path(source).stem}-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_out = Path(tmp) / out.name
        cmd = [
            cxx,
            *_FLAGS,
            f"-I{jax.ffi.include_dir()}",
            f"-I{_HERE}",
            str(_HERE / source),
            "-o",
            str(tmp_out),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        os.replace(tmp_out, out)  # atomic: concurrent builders (test workers) each write a whole file
    return out


def enabled(switch: str) -> bool:
    """Whether the environment variable ``switch`` leaves the kernels on (anything but ``0``)."""
    return os.environ.get(switch, "1") != "0"


def load(source: str, targets: dict[str, str], switch: str) -> bool:
    """Build ``source`` and register its handlers (``targets``: FFI target name -> exported symbol) for the
    CPU platform; False (use XLA's operations) where ``$switch`` is ``0`` or the kernels cannot run here."""
    if not enabled(switch):
        return False
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    if "avx512f" not in cpu_flags().split():
        return False
    try:
        lib = ctypes.cdll.LoadLibrary(str(build(source)))
        for name, symbol in targets.items():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as err:
        _log.warning("jaxrl %s kernels unavailable, using XLA's operations: %s", Path(source).stem, err)
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Library:
    """One kernel library: its source, its FFI targets (target name, exported symbol), the environment
    variable that turns it off, and what a caller uses without it (for the error message)."""

    source: str
    targets: tuple[tuple[str, str], ...]
    switch: str
    fallback: str

    def available(self) -> bool:
        """Whether the kernels are on (``$switch`` not ``0``, read at each call, i.e. at each trace) and
        built, loaded and registered for the CPU platform (False: use XLA's operations)."""
        return enabled(self.switch) and _loaded(self)

    def require(self) -> None:
        if not self.available():
            raise RuntimeError(
                f"jaxrl's {Path(self.source).stem} kernels are not available here (no AVX-512 on Linux "
                f"x86-64, no C++ compiler, the build failed (see the log), or {self.switch}=0); use "
                f"{self.fallback}"
            )


@functools.cache
def _loaded(lib: Library) -> bool:
    return load(lib.source, dict(lib.targets), lib.switch)
