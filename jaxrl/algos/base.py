"""What every algorithm module provides (:class:`Algorithm`, ``register``) and the helpers they share.

An algorithm module defines, in this order: ``Config`` (frozen ``flax.struct.dataclass``; fields that
set shapes are static, ``pytree_node=False``; tunable scalars are leaves so ``jax.vmap`` sweeps them),
``State`` (explicit pytree), ``init(cfg, key)``, ``update`` (one gradient step), ``train_step(cfg, state)``
(collect + update, one iteration), ``num_iterations(cfg)``, and registers an :class:`Algorithm`.

``jaxrl.algos.registry.train(cfg, key)`` is then the same for everyone: ``lax.scan`` of ``train_step`` over
``num_iterations(cfg)`` steps, starting from ``init(cfg, key)``. The runtime driver runs the same
``train_step`` in chunks (``jaxrl.run``), which gives the same result as one ``train`` call.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import envs, rollout


@dataclasses.dataclass(frozen=True)
class Presentation:
    """How a run of the algorithm reads in plots, progress bars and summaries."""

    steps: str = "environment steps"  # what ``env_steps`` counts (the x axis)
    steps_short: str = "env steps"  # the same in summaries
    curve_label: str = "episode return"  # the y axis: ``episode_return``'s meaning
    curve_short: str = "return"  # its name on the progress bar
    #: a metrics field holding held-out evaluations (finite on evaluated iterations, NaN between),
    #: written to eval.csv and summary.json by the driver; None: the driver's greedy env evaluation
    eval_metric: str | None = None
    eval_label: str = "greedy evaluation (mean return)"


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """The functions of one algorithm, looked up by config type (``algorithm_for(cfg)``)."""

    name: str
    config: type
    init: Callable[[Any, jax.Array], Any]
    train_step: Callable[[Any, Any], tuple[Any, Any]]
    num_iterations: Callable[[Any], int]
    #: ``make_policy(cfg, state, deterministic=True) -> act(obs, key) -> action``
    make_policy: Callable[..., Callable]
    #: host-side checks, run before anything is traced; raise ``ValueError`` with what to change.
    validate: Callable[[Any], None]
    description: str = ""
    #: ``make_value_fn(cfg, state) -> value(obs) -> V(obs)``, for algorithms with a critic.
    make_value_fn: Callable[..., Callable] | None = None
    #: env steps consumed by one ``train_step`` (for progress and steps/s), if meaningful.
    steps_per_iteration: Callable[[Any], int] | None = None
    #: ``train_step`` runs host code between jitted calls (e.g. GRPO scoring answers with a Python
    #: verifier) and cannot be traced: ``train``/``run_iterations`` then loop in Python instead of
    #: ``lax.scan``, with the same result layout (metrics stacked on axis 0, as NumPy arrays).
    host_loop: bool = False
    #: ``report(cfg, state) -> str``: lines for the end of ``jaxrl train`` (e.g. GRPO's held-out
    #: accuracy before and after training), for algorithms whose result is not an env return.
    report: Callable[[Any, Any], str] | None = None
    #: ``restart_envs(cfg, restored, fresh) -> state``: a resumed state whose environments were
    #: restarted, for backends whose state lives outside JAX (envpool) and so is not in a checkpoint.
    #: Default :func:`restart_envs` (the fresh environment carry); DQN also drops the transition whose
    #: successor row the restart breaks.
    restart_envs: Callable[[Any, Any, Any], Any] | None = None
    #: ``state_template(cfg, key) -> state`` of ``jax.ShapeDtypeStruct`` leaves, for loading a saved state
    #: when ``init`` cannot be traced with ``jax.eval_shape`` (host-loop algorithms). Default: eval_shape(init).
    state_template: Callable[[Any, Any], Any] | None = None
    #: axis labels and the evaluation metric of its runs (see :class:`Presentation`)
    presentation: Presentation = Presentation()


_REGISTRY: dict[str, Algorithm] = {}


def register(algo: Algorithm) -> Algorithm:
    """Add ``algo`` to the registry (each algorithm module does, on import); looked up through
    :mod:`jaxrl.algos.registry`, which imports every built-in algorithm first."""
    _REGISTRY[algo.name] = algo
    return algo


def registered(name: str) -> Algorithm:
    """The algorithm registered as ``name``, for an algorithm module reading its own runs after its
    package has registered it; everything else looks algorithms up through :mod:`jaxrl.algos.registry`."""
    return _REGISTRY[name]


# ---------------------------------------------------------------------------------------- keys
def as_key(key: Any) -> jax.Array:
    """Accept ``jax.random.key(k)``, ``jax.random.PRNGKey(k)`` or an int seed."""
    if isinstance(key, int):
        return jax.random.key(key)
    return key


# ------------------------------------------------------------------------------------ building
def make_env(cfg: Any, num_envs: int | None = None) -> envs.EpisodeStats:
    """``cfg.env`` (with ``cfg.env_params``), ``num_envs`` wide (default ``cfg.num_envs``), with
    episode statistics: the environment every algorithm trains on."""
    return envs.EpisodeStats(envs.make(cfg.env, num_envs or cfg.num_envs, cfg.env_params))


def env_is_stateful(cfg: Any) -> bool:
    """True if ``cfg.env`` keeps its state outside JAX (envpool): it cannot be checkpointed, vmapped
    into population members or sharded. False for configs without an environment (GRPO)."""
    name = getattr(cfg, "env", None)
    return name is not None and envs.holds_state_outside_jax(name)


def restart_envs(cfg: Any, restored: Any, fresh: Any) -> Any:
    """``restored`` (a state read from a checkpoint) continuing on freshly reset environments: its
    environment carry (``.env``: last time step, episode statistics, backend state) replaced by the one
    of ``fresh`` (``init`` in this process, whose environments the backend now holds).

    Needed where the environments live outside JAX (envpool): the checkpoint holds the last time step of
    episodes the new process no longer has, and stepping on from it would join the old episode's last
    observation to the new episode's next one in one transition. Learner state, replay memory and keys
    stay as restored; the episodes that follow differ from an uninterrupted run's. States without an
    environment carry (REINFORCE resets every update) are returned unchanged."""
    del cfg
    if not hasattr(restored, "env"):
        return restored
    return restored._replace(env=fresh.env)


def init_env_and_params(env: envs.Env, net: Any, key: jax.Array) -> tuple[rollout.EnvCarry, Any, jax.Array]:
    """Reset ``env`` and initialise ``net`` on its first observations: ``(carry, params, key)``, with
    ``key`` what is left for the algorithm's state (``k_net, k_env, key = split(key, 3)``)."""
    k_net, k_env, key = jax.random.split(key, 3)
    carry = rollout.reset(env, k_env)
    return carry, net.init(k_net, carry.timestep.obs), key


# ------------------------------------------------------------------------------------- metrics
def metrics_type(cls: type) -> type:
    """Let a metrics NamedTuple be read by field name too: ``metrics["episode_return"]``."""
    tuple_getitem = tuple.__getitem__

    def __getitem__(self, k):  # noqa: N807
        if isinstance(k, str):
            try:
                return getattr(self, k)
            except AttributeError:
                raise KeyError(k) from None
        return tuple_getitem(self, k)

    cls.__getitem__ = __getitem__
    cls.keys = lambda self: self._fields
    cls.items = lambda self: zip(self._fields, self, strict=True)
    return cls


# ------------------------------------------------------------------------------------ checking
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


# ------------------------------------------------------------------------------ config stacking
def stack_configs(cfgs: list[Any]) -> Any:
    """Stack configs that differ only in tunable (leaf) fields, for ``jax.vmap(jaxrl.train)``.

    Static fields (those that set shapes, the env, flags) must be equal across configs.
    """
    if not cfgs:
        raise ValueError("stack_configs needs at least one config")
    treedefs = [jax.tree_util.tree_structure(c) for c in cfgs]
    for i, td in enumerate(treedefs[1:], start=1):
        if td != treedefs[0]:
            diff = _static_diff(cfgs[0], cfgs[i])
            raise ValueError(
                f"configs 0 and {i} differ in static (shape-setting) fields {diff}; only tunable scalar "
                f"fields can be stacked and vmapped. Run them as separate jobs instead."
            )
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *cfgs)


def _static_diff(a: Any, b: Any) -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        if not f.metadata.get("pytree_node", True) and getattr(a, f.name) != getattr(b, f.name):
            out.append(f.name)
    return out

