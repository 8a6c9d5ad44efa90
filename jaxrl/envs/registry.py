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
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxrl.envs import base


def gymnax_names() -> list[str]:
    with jax.ensure_compile_time_eval():  # see make()
        import gymnax

    return list(gymnax.registered_envs)


def _probe_classes() -> dict[str, Any]:
    from jaxrl.envs import probes

    return probes.PROBES


def _make_gymnax(name: str, num_envs: int, env_params: Any, full_name: str, **kwargs: Any) -> base.Env:
    import gymnax

    from jaxrl.envs import gymnax as gymnax_backend

    genv, default_params = gymnax.make(name)
    params = default_params if env_params is None else env_params
    return gymnax_backend.GymnaxEnv(genv, params, num_envs, name=name)


def _make_probe(name: str, num_envs: int, env_params: Any, full_name: str, **kwargs: Any) -> base.Env:
    from jaxrl.envs import gymnax as gymnax_backend

    return gymnax_backend.GymnaxEnv(_probe_classes()[name](), env_params, num_envs, name=full_name)


def _make_envpool(name: str, num_envs: int, env_params: Any, full_name: str, **kwargs: Any) -> base.Env:
    from jaxrl.envs import envpool as envpool_backend  # lazy: optional extra

    return envpool_backend.EnvpoolEnv(name, num_envs, env_params, **kwargs)


class Backend(NamedTuple):
    """One environment backend, chosen by a name's ``"<prefix>:"``."""

    #: ``make(name without prefix, num_envs, env_params, full_name, **kwargs) -> Env``
    make: Callable[..., base.Env]
    #: the names it accepts (without prefix), listed without building anything; None: the backend
    #: validates names itself (envpool knows its task list)
    names: Callable[[], list[str]] | None
    #: its environments keep their state outside JAX (no checkpoint, vmap or sharding of them)
    stateful: bool = False
    #: for a backend whose names are not listed: how they are written, shown by ``jaxrl envs``
    pattern: str = ""


DEFAULT_BACKEND = "gymnax"
BACKENDS: dict[str, Backend] = {
    "gymnax": Backend(_make_gymnax, gymnax_names),
    "probe": Backend(_make_probe, lambda: list(_probe_classes())),
    "envpool": Backend(
        _make_envpool,
        None,
        stateful=True,
        pattern="envpool:<Task>  (optional extra jaxrl[envpool], e.g. envpool:Pong-v5, envpool:Breakout-v5)",
    ),
}


def _split(env: str) -> tuple[Backend, str]:
    """The backend of a name and the name it is given (prefix removed; default backend: gymnax)."""
    prefix, colon, rest = env.partition(":")
    if colon and prefix in BACKENDS:
        return BACKENDS[prefix], rest
    return BACKENDS[DEFAULT_BACKEND], env


def probe_names() -> list[str]:
    return ["probe:" + n for n in _probe_classes()]


def available_names() -> list[str]:
    """Every name ``make`` accepts from a backend that lists its names (the default backend's without a
    prefix); see :func:`name_patterns` for the others (envpool's names are listed by envpool)."""
    out = []
    for prefix, backend in BACKENDS.items():
        if backend.names is not None:
            names = backend.names()
            out += names if prefix == DEFAULT_BACKEND else [f"{prefix}:{n}" for n in names]
    return out


def name_patterns() -> list[str]:
    """How the names of the backends that do not list them are written, one line each."""
    return [b.pattern for b in BACKENDS.values() if b.names is None]


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, available_names(), n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    others = "; ".join(name_patterns())
    return ValueError(
        f"Unknown environment {name!r}.{hint} Run `jaxrl envs` (or see jaxrl.envs.available_names()) "
        f"for the full list; also accepted: {others}."
    )


def check_name(env: Any) -> None:
    """Raise a clear ``ValueError`` for an unknown name, without building anything heavy."""
    if not isinstance(env, str):
        return
    backend, name = _split(env)
    if backend.names is not None and name not in backend.names():
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
        check_name(env)
        backend, name = _split(env)
        return backend.make(name, num_envs, env_params, env, **kwargs)
    # A user-supplied gymnax environment instance.
    if hasattr(env, "step_env") and hasattr(env, "default_params"):
        from jaxrl.envs import gymnax as gymnax_backend

        return gymnax_backend.GymnaxEnv(env, env_params, num_envs)
    raise TypeError(
        f"env must be an environment name (str) or a gymnax Environment instance, got {type(env).__name__}"
    )


def holds_state_outside_jax(env: Any) -> bool:
    """True for backends whose state lives outside JAX (envpool), from the name alone: nothing is built
    (an envpool pool would be). A gymnax ``Environment`` instance keeps its state in JAX."""
    return isinstance(env, str) and _split(env)[0].stateful


def env_name(env: Any) -> str:
    return env if isinstance(env, str) else getattr(env, "name", type(env).__name__)
