"""Config validation shared by every entry point (``jaxrl.train``, ``jaxrl.run``, the CLI, the parallel
and population paths): the Python API is as strict as the command line.

:func:`validate_config` checks, on the host and before anything is compiled:

1. every field's value against its annotation (``int``, ``float``, ``bool``, ``str``, ``Literal``,
   ``tuple[int, ...]``, ``X | None``): ``PPOConfig(num_envs=2.5)`` or ``total_timesteps="4096"`` is
   refused with the field, the value and what to write instead;
2. the environment's parameters (``env_params``): episode limits must be positive integers;
3. the algorithm's own range checks (``Algorithm.validate``).

Traced or stacked values (a vmapped sweep of tunable leaves) are skipped: they were checked per member.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.errors import UserFunctionError  # noqa: F401  (raised by user-function checks; here for callers)

#: env parameter fields that bound an episode's length: positive integers
EPISODE_LIMIT_FIELDS = ("max_steps_in_episode", "max_episode_steps")


class ConfigTypeError(TypeError, ValueError):
    """A config field holds a value of the wrong type (a ``ValueError`` too, so code catching bad
    settings as ``ValueError``, as the CLI does, reports it the same way)."""


def validate_config(cfg: Any, algo_validate: Callable[[Any], None]) -> None:
    """Raise ``TypeError``/``ValueError`` naming the field and what to write, for any bad value in
    ``cfg``; then run the algorithm's own checks ``algo_validate(cfg)``."""
    check_field_types(cfg)
    check_env_params(cfg)
    algo_validate(cfg)


# ------------------------------------------------------------------------------------- TYPES
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: nothing to check against
        return {}


def check_field_types(cfg: Any) -> None:
    """Every concrete field value of the dataclass ``cfg`` matches its annotation."""
    if not dataclasses.is_dataclass(cfg):
        return
    for f in dataclasses.fields(cfg):
        check_field(type(cfg), f.name, getattr(cfg, f.name))


def check_field(config_cls: type, name: str, value: Any) -> None:
    """Raise :class:`ConfigTypeError` if ``value`` does not fit field ``name`` of ``config_cls``: the one
    check behind both ``Config(name=value)`` (through :func:`validate_config`) and the CLI's
    ``--set name=text`` (``jaxrl.runtime.configs.parse_field``), so both refuse the same values with the
    same message."""
    tp = _hints(config_cls).get(name)
    problem = None if tp is None else _mismatch(tp, value)
    if problem:
        raise ConfigTypeError(
            f"{config_label(config_cls)}.{name} {problem}, got {value!r} ({type(value).__name__})"
        )


_PUBLIC_NAMES = {
    "a2c": "A2CConfig", "dqn": "DQNConfig", "grpo": "GRPOConfig", "ppo": "PPOConfig",
    "qlearning": "QLearningConfig", "reinforce": "ReinforceConfig", "reward_model": "RewardModelConfig",
    "sac": "SACConfig",
}  # fmt: skip


def config_label(cls: type) -> str:
    """The public name of an algorithm's ``Config`` (``PPOConfig``), as users write it."""
    parts = cls.__module__.split(".")
    if cls.__name__ == "Config" and "algos" in parts[:-1]:
        return _PUBLIC_NAMES.get(parts[parts.index("algos") + 1], cls.__name__)
    return cls.__name__


def renamed_fields(**old_to_new: str) -> Callable[[type], type]:
    """Config class decorator: old field names are refused with a message naming the new ones, from the
    constructor and ``replace`` (``TypeError``, as for any unknown keyword argument) and from ``--set`` and
    ``config.json`` (``ValueError``, through :func:`jaxrl.runtime.configs.unknown_field`)."""

    def wrap(cls: type) -> type:
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            for k in kwargs:
                if k in old_to_new:
                    raise TypeError(renamed_message(cls, k))
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        cls.RENAMED_FIELDS = dict(old_to_new)
        return cls

    return wrap


def renamed_message(cls: type, old: str) -> str:
    new = cls.RENAMED_FIELDS[old]
    return f"{config_label(cls)}.{old} was renamed to {new!r} (names say what they count); write {new}=... instead"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)


def _is_array(v: Any) -> bool:
    return isinstance(v, jax.Array | np.ndarray) and not isinstance(v, np.generic)


def _mismatch(tp: Any, v: Any) -> str | None:
    """What is wrong with ``v`` as a value of annotation ``tp`` (``None``: nothing, or not checkable)."""
    if isinstance(v, jax.core.Tracer):
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        problems = [_mismatch(a, v) for a in args if a is not type(None)]
        if any(p is None for p in problems):
            return None
        return problems[0] if len(problems) == 1 else f"must be {_name(tp)}"
    if origin is typing.Literal:
        return None if v in args else f"must be one of {', '.join(map(repr, args))}"
    if origin in (tuple, list) and args and (len(args) == 1 or args[-1] is Ellipsis):
        if not isinstance(v, tuple | list):
            return f"must be a tuple of {_name(args[0])} (e.g. (64, 64))"
        bad = [x for x in v if _mismatch(args[0], x)]
        return f"must hold only {_name(args[0])} values" if bad else None
    if tp is bool:
        return None if isinstance(v, bool | np.bool_) or _is_array(v) else "must be True or False"
    if tp is int:
        if _is_int(v) or (_is_array(v) and np.issubdtype(v.dtype, np.integer)):
            return None
        if isinstance(v, float) and v.is_integer():
            return f"must be an integer (write {int(v):_})"
        return "must be an integer"
    if tp is float:
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)
        return None if ok or _is_array(v) else "must be a number"
    if tp is str:
        return None if isinstance(v, str) else "must be a string"
    return None


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


# -------------------------------------------------------------------------------- ENV PARAMS
def check_env_params(cfg: Any) -> None:
    """Episode limits in ``cfg.env_params`` are positive integers (a horizon of -1 used to train, then
    fail in the final evaluation)."""
    params = getattr(cfg, "env_params", None)
    if params is None:
        return
    for name in EPISODE_LIMIT_FIELDS:
        if not hasattr(params, name):
            continue
        v = getattr(params, name)
        if isinstance(v, jax.core.Tracer) or (_is_array(v) and np.ndim(v) > 0):
            continue
        if not (_is_int(v) or (_is_array(v) and np.issubdtype(v.dtype, np.integer))) or int(v) <= 0:
            raise ValueError(
                f"env_params.{name} must be a positive integer (the episode's step limit), got {v!r}"
            )


# ------------------------------------------------------------ range checks for Algorithm.validate
def is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_positive_ints(label: str, cfg: Any, *names: str) -> None:
    """Raise for the named (static, integer) fields of ``cfg`` that are not positive; ``label`` is the
    config's public name (``"PPOConfig"``)."""
    for name in names:
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(f"{label}.{name} must be a positive integer, got {getattr(cfg, name)!r}")


def check_one_iteration(cfg: Any, label: str, per_iteration: int, what: str, made_of: str, fix: str) -> None:
    """Raise if ``cfg.total_timesteps`` is less than one iteration of ``per_iteration`` env steps
    (``what``: "rollout" or "iteration", ``made_of``: the product that sizes it, ``fix``: what to do)."""
    if cfg.total_timesteps < per_iteration:
        raise ValueError(
            f"{label}.total_timesteps ({cfg.total_timesteps}) is smaller than one {what} "
            f"({made_of} = {per_iteration}); {fix}"
        )


def check_positive(cfg: Any, *names: str) -> None:
    """Raise for non-positive (or non-finite) values of the named config fields, where concrete."""
    for name in names:
        v = getattr(cfg, name)
        if v is None or not is_concrete(v) or jnp.ndim(v) > 0:
            continue
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise ValueError(f"{type(cfg).__name__}.{name} must be a positive number, got {v!r}")


def check_range(cfg: Any, name: str, lo: float, hi: float) -> None:
    v = getattr(cfg, name)
    if v is None or not is_concrete(v) or jnp.ndim(v) > 0:
        return
    if not (lo <= float(v) <= hi):
        raise ValueError(f"{type(cfg).__name__}.{name} must be in [{lo}, {hi}], got {v!r}")


def check_divides(cfg: Any, total: int, parts: int, what: str) -> None:
    if parts <= 0 or total % parts:
        raise ValueError(
            f"{type(cfg).__name__}: {what} ({total}) must divide evenly into {parts}; {_fix(total, parts)}"
        )


def _fix(total: int, parts: int) -> str:
    if parts <= 0:
        return "use a positive number"
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    near = sorted(divisors, key=lambda d: abs(d - parts))[:3]
    return f"choose one of {sorted(near)} instead of {parts}"
