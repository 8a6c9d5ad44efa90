"""Test configuration: strict rank promotion, CPU only, one XLA CPU thread (as ``jaxrl train``; set
``JAXRL_CPU_THREADS=0`` for XLA's default pool), a small compilation cache."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from jaxrl import cpu  # noqa: E402

cpu.set_cpu_threads(cpu.threads_from_env(1))  # before any test creates JAX's backends

jax.config.update("jax_numpy_rank_promotion", "raise")
