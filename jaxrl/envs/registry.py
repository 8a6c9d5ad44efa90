"""Environment names -> backends. Backends are imported only when a name asks for them.

Names:
  ``"CartPole-v1"``, ``"FrozenLake-misc"``, ...      gymnax (the default backend)
  ``"gymnax:CartPole-v1"``                           gymnax, explicitly
  ``"envpool:Pong-v5"``                              envpool (optional extra ``jaxrl[envpool]``)
  ``"probe:DelayedReward"``                          probe environments for tests
A gymnax ``Environment`` *instance* is accepted too (with ``env_params`` or its defaults).
"""

from __future__ import annotations

import difflib
from typing import Any

import jax

from jaxrl.envs import base

ENVPOOL_PREFIX = "envpool:"
GYMNAX_PREFIX = "gymnax:"
PROBE_PREFIX = "probe:"


def gymnax_names() -> list[str]:
    with jax.ensure_compile_time_eval():  # see make()
        import gymnax

    return list(gymnax.registered_envs)


def probe_names() -> list[str]:
    from jaxrl.envs import probes

    return [PROBE_PREFIX + n for n in probes.PROBES]


def available_names() -> list[str]:
    """Every name ``make`` accepts without an optional extra (envpool names are listed by envpool)."""
    return gymnax_names() + probe_names()


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, available_names(), n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(
        f"Unknown environment {name!r}.{hint} Run `jaxrl envs` (or see jaxrl.envs.available_names()) "
        f"for the full list; envpool tasks are named 'envpool:<Task>', e.g. 'envpool:Pong-v5'."
    )


def check_name(env: Any) -> None:
    """Raise a clear ``ValueError`` for an unknown name, without building anything heavy."""
    if not isinstance(env, str):
        return
    if env.startswith(ENVPOOL_PREFIX):
        return  # validated by the envpool adapter, which knows its task list
    name = env.removeprefix(GYMNAX_PREFIX)
    if name not in available_names():
        raise _unknown(env)


def make(env: Any, num_envs: int, env_params: Any = None, **kwargs: Any) -> base.Env:
    """Build a batched :class:`~jaxrl.envs.base.Env` with ``num_envs`` copies of ``env``."""
    # Eagerly, even when called inside a trace (algorithms build their env in train_step): gymnax
    # modules build jnp constants at import time (FrozenLake's direction table) and constructors
    # build jnp arrays; first imported under jit they would be tracers leaking into later traces.
    with jax.ensure_compile_time_eval():
        return _make(env, num_envs, env_params, **kwargs)


def _make(env: Any, num_envs: int, env_params: Any = None, **kwargs: Any) -> base.Env:
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if isinstance(env, str):
        if env.startswith(ENVPOOL_PREFIX):
            from jaxrl.envs import envpool as envpool_backend  # lazy: optional extra

            return envpool_backend.EnvpoolEnv(
                env.removeprefix(ENVPOOL_PREFIX), num_envs, env_params, **kwargs
            )
        from jaxrl.envs import gymnax as gymnax_backend

        if env.startswith(PROBE_PREFIX):
            from jaxrl.envs import probes

            cls = probes.PROBES.get(env.removeprefix(PROBE_PREFIX))
            if cls is None:
                raise _unknown(env)
            return gymnax_backend.GymnaxEnv(cls(), env_params, num_envs, name=env)
        import gymnax

        name = env.removeprefix(GYMNAX_PREFIX)
        if name not in gymnax.registered_envs:
            raise _unknown(env)
        genv, default_params = gymnax.make(name)
        return gymnax_backend.GymnaxEnv(
            genv, default_params if env_params is None else env_params, num_envs, name=name
        )
    # A user-supplied gymnax environment instance.
    if hasattr(env, "step_env") and hasattr(env, "default_params"):
        from jaxrl.envs import gymnax as gymnax_backend

        return gymnax_backend.GymnaxEnv(env, env_params, num_envs)
    raise TypeError(
        f"env must be an environment name (str) or a gymnax Environment instance, got {type(env).__name__}"
    )


def holds_state_outside_jax(env: Any) -> bool:
    """True for backends whose state lives outside JAX (envpool), from the name or instance alone:
    nothing is built (an envpool pool would be)."""
    if isinstance(env, str):
        return env.startswith(ENVPOOL_PREFIX)
    return bool(getattr(env, "stateful", False))


def env_name(env: Any) -> str:
    return env if isinstance(env, str) else getattr(env, "name", type(env).__name__)
