"""The environment contract every jaxrl backend implements.

An :class:`Env` is a *batched*, functional environment: it holds no mutable state of its own (envpool's
C++ pool is the one documented exception, see ``jaxrl.envs.envpool``); the caller threads ``state``.

    state, ts = env.reset(key)                 # ts: TimeStep with [B, ...] leaves
    state, ts = env.step(state, action, key)   # action: [B] int32 or [B, *action_shape] float32

Every leaf of a :class:`TimeStep` has a leading batch axis ``B = env.num_envs``.

Auto-reset convention (**same-step reset, with the true final observation**):
  when the transition ``(s_t, a_t) -> s_{t+1}`` ends an episode, ``step`` returns
  ``next_obs = s_{t+1}`` (the true last observation, for bootstrapping), and ``obs`` is already the first
  observation of the next episode. Otherwise ``next_obs == obs``. The agent always acts on ``obs``.

  ``terminated``: s_{t+1} is terminal; its value is 0, so never bootstrap: ``discount = gamma * (1 - terminated)``.
  ``truncated``: the episode was cut (time limit); s_{t+1} is not terminal: bootstrap from V(next_obs).
  Both may be read together as "the episode ended" (``terminated | truncated``), which cuts traces.

  ``valid``: False for a transition whose action the environment ignored. Backends with *next-step*
  reset (envpool) spend one step after an episode end on resetting: that step's action has no effect,
  its reward is 0 and it is not part of any episode. Such a backend reports the episode end as usual
  (``next_obs == obs`` is then the true final observation) and marks the following transition
  ``valid = False``; algorithms give invalid transitions zero weight and treat them as trace cuts.
  Same-step backends (gymnax) always report ``valid = True``. No algorithm needs to know which kind
  of backend it runs on.

Spaces describe a *single* environment (no batch axis).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Discrete:
    """``n`` actions or states, values ``0 .. n-1`` (int32)."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: Any = jnp.int32


@dataclasses.dataclass(frozen=True)
class Box:
    """A box of shape ``shape``; ``low``/``high`` are scalars or arrays broadcastable to ``shape``."""

    low: Any
    high: Any
    shape: tuple[int, ...]
    dtype: Any = jnp.float32


Space = Discrete | Box


class TimeStep(NamedTuple):
    """What an environment returns; every leaf has a leading batch axis ``[B]``.

    obs:        [B, *obs_shape] observation to act on next (start of a new episode after an end).
    reward:     [B] float32 reward of the transition that led here (0 after ``reset``).
    terminated: [B] bool, the transition reached a terminal state: no bootstrap.
    truncated:  [B] bool, the episode was cut (time limit) in a non-terminal state: bootstrap.
    next_obs:   [B, *obs_shape] true s_{t+1} of the transition (== obs unless an episode ended).
    valid:      [B] bool, False if the env ignored the action (next-step reset backends).
    """

    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    valid: jax.Array

    @property
    def done(self) -> jax.Array:
        """[B] bool: the episode ended with this transition (terminated or truncated)."""
        return jnp.logical_or(self.terminated, self.truncated)


@runtime_checkable
class Env(Protocol):
    """A batched functional environment (see the module docstring for the full contract).

    Backends subclass it (``class GymnaxEnv(base.Env)``) and so inherit the defaults of the optional
    hooks below; a backend overrides only the hooks it has. Callers use the hooks directly, never
    ``getattr``/``hasattr``: every environment has all of them.
    """

    num_envs: int
    observation_space: Space
    action_space: Space
    #: longest episode the backend allows (its time limit); used to bound evaluation loops.
    max_episode_steps: int
    #: True if the backend holds state outside JAX (envpool): no vmap over seeds, one pool per run.
    stateful: bool
    #: the name it was made from (``"CartPole-v1"``, ``"envpool:Pong-v5"``), for messages and logs.
    name: str
    #: the backend's parameters, what ``env_params`` overrides (a gymnax ``EnvParams``, envpool's
    #: ``EnvpoolParams``); None for a backend without any.
    params: Any = None
    #: observations are stacks of this many frames on the last axis, one new frame per step and the
    #: stack refilled with the first frame at an episode start (envpool Atari); 0: not a frame stack.
    #: The replay memory may then store each frame once (``replay.make_replay(frames=...)``).
    frame_stack: int = 0

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]: ...

    def step(self, state: Any, action: jax.Array, key: jax.Array) -> tuple[Any, TimeStep]: ...

    def prepare_keys(self, keys: jax.Array) -> Any:
        """``keys [T]`` (the key ``step`` would get at each of T steps) -> what ``step`` takes in their
        place, slice ``t`` at step ``t``. A backend whose step randomness depends on the key only draws it
        here for a whole rollout in one batched call (gymnax, see :mod:`jaxrl.envs.gymnax`); the default
        returns the keys unchanged."""
        return keys

    def episode_signal(self, state: Any, ts: TimeStep) -> tuple[jax.Array, jax.Array]:
        """``(reward [B], ended [B])`` that episode statistics count, given the state and time step
        ``step`` returned. A backend may count episodes apart from the learning signal (envpool Atari:
        whole games with raw scores, while the agent learns from clipped rewards with a lost life as
        terminal). Default: the time step's reward, and ``done & valid``."""
        del state
        return ts.reward, jnp.logical_and(ts.done, ts.valid)


def is_discrete(space: Space) -> bool:
    return isinstance(space, Discrete)


def num_actions(space: Space) -> int:
    """Number of discrete actions, or the size of a flat continuous action vector."""
    if isinstance(space, Discrete):
        return space.n
    size = 1
    for d in space.shape:
        size *= d
    return size
