"""Test configuration: strict rank promotion, CPU only, one XLA CPU thread (as ``jaxrl train``; set
``JAXRL_CPU_THREADS=0`` for XLA's default pool), a small compilation cache."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxrl import cpu  # noqa: E402

cpu.set_cpu_threads(cpu.threads_from_env(1))  # before any test creates JAX's backends

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def isolation() -> str:
    """The OS code sandbox (``jaxrl.sandbox``): tests that run code skip where it is missing, unless
    ``JAXRL_REQUIRE_SANDBOX=1`` (CI), where a missing sandbox fails them instead."""
    from jaxrl import sandbox

    try:
        return sandbox.check_available()
    except sandbox.SandboxUnavailable as e:
        if os.environ.get("JAXRL_REQUIRE_SANDBOX", "") not in ("", "0"):
            pytest.fail(f"JAXRL_REQUIRE_SANDBOX is set but the sandbox is unavailable: {e}")
        pytest.skip(f"sandbox unavailable here: {e}")
