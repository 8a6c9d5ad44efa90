"""How many threads XLA's CPU runtime uses for one program (``set_cpu_threads``).

XLA sizes the CPU client's intra-op thread pool from the CPUs the process may run on when the client
is created, and then spreads a program's independent kernels (and large matrix products) over that
pool. RL programs on a CPU are long chains of tiny kernels (a 4-env step, a 128x64 matmul), and handing
them from thread to thread costs more than it gains (PPO and DQN ran faster on one thread than on
XLA's default pool: ``benchmarks/RESULTS.md``, "CPU threads"). ``jaxrl train`` therefore uses one thread on CPU unless told
otherwise (``--cpu-threads`` / ``JAXRL_CPU_THREADS``); from Python call :func:`set_cpu_threads` before
the first JAX computation. A population of independent members can use every core as separate XLA
devices instead (:func:`set_cpu_devices`).

How: the calling thread's CPU affinity is narrowed to ``n`` CPUs while JAX creates its backends, then
every thread of the process gets the original affinity back. Nothing stays pinned (the scheduler may
run the threads on any CPU); only the pool size changes. Linux only (``os.sched_setaffinity``); elsewhere
it is a no-op that returns ``False``. It changes no result: the same program gives the same numbers
with any pool size.

This module imports nothing from jaxrl, so that benchmark scripts may load it by path into another
framework's interpreter and give the peer the same setting.
"""

from __future__ import annotations

import os

ENV_VAR = "JAXRL_CPU_THREADS"
DEVICES_ENV_VAR = "JAXRL_CPU_DEVICES"
_chosen = False  # set_cpu_threads was called (with any n): the user chose the pool
_warned = False


def backends_initialized() -> bool:
    """Whether JAX has already created its backends (then the pool size is fixed for this process)."""
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def set_cpu_threads(n: int | None) -> bool:
    """Create JAX's backends with an XLA CPU thread pool of ``n`` threads (``None`` or 0: XLA's default,
    one per available CPU). Returns ``True`` if the pool was sized, ``False`` where the platform has no
    affinity API or ``n`` asks for the default. Must run before the first JAX computation in the process:
    raises ``RuntimeError`` otherwise (restart the process and call it first)."""
    global _chosen
    if n is None or n == 0:
        _chosen = True
        return False
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(
            f"set_cpu_threads: n must be a non-negative int (0 or None: XLA's default), got {n!r}"
        )
    if not hasattr(os, "sched_setaffinity"):
        return False
    import jax

    if backends_initialized():
        raise RuntimeError(
            "set_cpu_threads must be called before JAX creates its backends (before the first jax.numpy "
            "operation, jax.devices() or jit call in this process): call it at the top of your script, "
            f"or set {ENV_VAR} for the jaxrl CLI"
        )
    allowed = sorted(os.sched_getaffinity(0))
    _chosen = True
    if n >= len(allowed):
        jax.devices()  # XLA's default already is one thread per available CPU
        return True
    os.sched_setaffinity(0, set(allowed[:n]))
    try:
        jax.devices()  # creates the backends (the CPU client sizes its pool from the affinity now)
    finally:
        for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [0]:
            try:  # threads created meanwhile inherited the narrow mask: give every thread the full one
                os.sched_setaffinity(int(tid), set(allowed))
            except OSError:  # a thread that has exited since the listing
                pass
    return True


def set_cpu_devices(n: int | None) -> bool:
    """Split the CPU into ``n`` XLA devices (``jax_num_cpu_devices``; ``None`` or 1: one device, 0: one
    per available CPU), so that a population (``jaxrl.parallel.train_population``, ``jaxrl train --seeds
    N``, ``jaxrl.run(..., seeds=N)``) runs one share of its members per device, i.e. per core. Members
    never communicate, so a population scales with the cores (``benchmarks/RESULTS.md``). A single run gains nothing
    (it stays on one device). Combine with :func:`set_cpu_threads` (one thread per device is the fast
    setting). Must run before the first JAX computation, like :func:`set_cpu_threads`; returns whether
    more than one device was asked for. Results equal the one-device run up to float rounding (XLA
    compiles a per-device batch of members differently)."""
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"set_cpu_devices: n must be a non-negative int (0: one per CPU), got {n!r}")
    import jax

    if backends_initialized():
        raise RuntimeError(
            "set_cpu_devices must be called before JAX creates its backends (before the first jax.numpy "
            "operation, jax.devices() or jit call in this process): call it at the top of your script, "
            f"or set {DEVICES_ENV_VAR} for the jaxrl CLI"
        )
    if n == 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jax.config.update("jax_num_cpu_devices", n)
    return n > 1


def threads_from_env(default: int) -> int:
    """``JAXRL_CPU_THREADS`` as an int (``default`` when unset); a clear error for anything else."""
    return _int_from_env(ENV_VAR, default, "0: XLA's default")


def devices_from_env(default: int) -> int:
    """``JAXRL_CPU_DEVICES`` as an int (``default`` when unset); a clear error for anything else."""
    return _int_from_env(DEVICES_ENV_VAR, default, "0: one per CPU")


def _int_from_env(var: str, default: int, zero_means: str) -> int:
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{var} must be a non-negative integer ({zero_means}), got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{var} must be a non-negative integer ({zero_means}), got {raw!r}")
    return value


def warn_if_default_pool() -> None:
    """Warn once per process when jaxrl trains on a multi-core CPU with XLA's default thread pool and
    the user has not chosen one (:func:`set_cpu_threads`, ``taskset``): it is slower for RL programs
    (``benchmarks/RESULTS.md``, "CPU threads"). (The hangs once seen with XLA's default pool came from
    batched LAPACK QRs in jax's orthogonal initialiser; :mod:`jaxrl.networks.init` removes them.)"""
    global _warned
    if _chosen or _warned or not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        return
    import jax

    if jax.default_backend() != "cpu":
        return
    _warned = True
    import warnings

    warnings.warn(
        "jaxrl is training on a CPU with XLA's default thread pool (one thread per core). RL programs of "
        "tiny kernels run faster with one thread: call "
        "jaxrl.cpu.set_cpu_threads(1) at the top of your script, before any JAX computation "
        "(set_cpu_threads(0) keeps XLA's default and silences this warning).",
        RuntimeWarning,
        stacklevel=3,
    )
