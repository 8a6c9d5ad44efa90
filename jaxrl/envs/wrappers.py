"""Wrappers that keep the :mod:`jaxrl.envs.base` contract (typed state, no info dicts)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.envs import base


class EpisodeStatsState(NamedTuple):
    """Per-env running and last-finished episode statistics, all ``[B]``."""

    env_state: Any
    episode_return: jax.Array  # undiscounted return of the running episode
    episode_length: jax.Array  # steps taken in the running episode
    returned_episode_return: jax.Array  # return of the last finished episode (0 before any)
    returned_episode_length: jax.Array  # length of the last finished episode
    episode_end: jax.Array  # an episode finished with the last step (returned_* hold its figures)


class EpisodeStats:
    """Tracks undiscounted episode return and length; invalid (ignored-action) steps are not counted.

    After ``step``, where ``episode_end`` (``ts.done & ts.valid``) the ``returned_*`` fields hold the
    finished episode's figures.

    A backend may define ``episode_signal(env_state, ts) -> (reward [B], ended [B])`` to count episodes
    differently from the learning signal: envpool's Atari counts whole games with raw scores while the
    agent learns from clipped rewards with a lost life as terminal. Without it: ``(ts.reward,
    ts.done & ts.valid)``.
    """

    def __init__(self, env: base.Env):
        self.env = env
        self.num_envs = env.num_envs
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.max_episode_steps = env.max_episode_steps
        self.stateful = env.stateful
        self.name = getattr(env, "name", type(env).__name__)
        # A backend that draws a rollout's randomness ahead (GymnaxEnv.prepare_keys): ``step`` passes
        # the key argument through unchanged, so the wrapper offers the same thing.
        if hasattr(env, "prepare_keys"):
            self.prepare_keys = env.prepare_keys

    def reset(self, key: jax.Array) -> tuple[EpisodeStatsState, base.TimeStep]:
        env_state, ts = self.env.reset(key)
        zf = jnp.zeros((self.num_envs,), jnp.float32)
        zi = jnp.zeros((self.num_envs,), jnp.int32)
        return EpisodeStatsState(env_state, zf, zi, zf, zi, jnp.zeros((self.num_envs,), bool)), ts

    def step(
        self, state: EpisodeStatsState, action: jax.Array, key: jax.Array
    ) -> tuple[EpisodeStatsState, base.TimeStep]:
        env_state, ts = self.env.step(state.env_state, action, key)
        signal = getattr(self.env, "episode_signal", None)
        if signal is None:
            reward, ended = ts.reward, jnp.logical_and(ts.done, ts.valid)
        else:
            reward, ended = signal(env_state, ts)
        ret = state.episode_return + jnp.where(ts.valid, reward, 0.0)
        length = state.episode_length + ts.valid.astype(jnp.int32)
        new = EpisodeStatsState(
            env_state=env_state,
            episode_return=jnp.where(ended, 0.0, ret),
            episode_length=jnp.where(ended, 0, length),
            returned_episode_return=jnp.where(ended, ret, state.returned_episode_return),
            returned_episode_length=jnp.where(ended, length, state.returned_episode_length),
            episode_end=ended,
        )
        return new, ts
