"""The one env-stepping scan every on-policy algorithm uses, and episode statistics from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl import sharding
from jaxrl.envs import base, wrappers


class EnvCarry(NamedTuple):
    """What the rollout threads between iterations: env state and the last time step."""

    env_state: wrappers.EpisodeStatsState
    timestep: base.TimeStep


class Transition(NamedTuple):
    """A batch of transitions, time-major: every leaf is ``[T, B, ...]``.

    ``obs`` is s_t (acted on), ``next_obs`` the true s_{t+1}; ``extras`` are what the policy returned
    alongside the action (log-probabilities, values, ...). ``episode_end`` marks steps where an
    episode finished (done and valid; a whole game on envpool Atari, see ``EpisodeStats``) and
    ``episode_return``/``episode_length`` then hold its figures.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    valid: jax.Array
    extras: Any
    episode_end: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)

    def discount(self, gamma: jax.Array | float) -> jax.Array:
        """``gamma * (1 - terminated)``: truncation keeps the bootstrap."""
        return gamma * (1.0 - self.terminated.astype(jnp.float32))

    @property
    def trace_end(self) -> jax.Array:
        """Where eligibility traces are cut: an episode ended, or the step was invalid."""
        return jnp.logical_or(self.done, ~self.valid)


ActFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]]


def reset(env: base.Env, key: jax.Array) -> EnvCarry:
    env_state, ts = env.reset(key)
    return EnvCarry(env_state, ts)


def rollout(
    env: base.Env,
    act: ActFn,
    carry: EnvCarry,
    key: jax.Array,
    num_steps: int,
    *,
    act_noise: Callable[[jax.Array], Any] | None = None,
) -> tuple[EnvCarry, Transition]:
    """Step ``env`` (an :class:`~jaxrl.envs.wrappers.EpisodeStats`-wrapped batch) ``num_steps`` times.

    ``act(obs[B, ...], key) -> (action[B, ...], extras)`` is the behaviour policy.
    Returns the new carry and a ``[num_steps, B, ...]`` :class:`Transition`.

    Step ``t`` uses ``k_act, k_env = split(split(key, num_steps)[t])``. All keys are drawn before the loop,
    in batched calls, and so is any randomness that depends on the keys only: ``act_noise(k_act) -> noise``
    (optional) gives ``act`` that noise in place of its key, and the env's ``prepare_keys`` (gymnax)
    draws its step and reset randomness ahead. On CPU each random draw inside the loop is a small loop of
    its own, so this is several times faster per step; the numbers are the same.
    """
    step_keys = jax.vmap(jax.random.split)(jax.random.split(key, num_steps))  # [T, 2]
    k_act, k_env = step_keys[:, 0], step_keys[:, 1]
    act_in = k_act if act_noise is None else jax.vmap(act_noise)(k_act)
    env_in = env.prepare_keys(k_env)

    def step(c: EnvCarry, xs: tuple[Any, Any]):
        a_in, e_in = xs
        obs = c.timestep.obs
        action, extras = act(obs, a_in)
        env_state, ts = env.step(c.env_state, action, e_in)
        # Split the env batch over devices when running data-parallel (a no-op otherwise).
        env_state, ts = sharding.shard_batch((env_state, ts))
        tr = Transition(
            obs=obs,
            action=action,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
            next_obs=ts.next_obs,
            valid=ts.valid,
            extras=extras,
            episode_end=env_state.episode_end,
            episode_return=env_state.returned_episode_return,
            episode_length=env_state.returned_episode_length,
        )
        return EnvCarry(env_state, ts), tr

    return jax.lax.scan(step, carry, (act_in, env_in))


def mean_episode_return(traj: Transition, previous: jax.Array) -> jax.Array:
    """Mean return of the episodes that finished in ``traj``; ``previous`` if none did (carry forward)."""
    n = jnp.sum(traj.episode_end)
    total = jnp.sum(jnp.where(traj.episode_end, traj.episode_return, 0.0))
    return jnp.where(n > 0, total / jnp.maximum(n, 1), previous)


def flatten_time_batch(tree: Any) -> Any:
    """``[T, B, ...] -> [T * B, ...]`` for every leaf."""
    return jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)
