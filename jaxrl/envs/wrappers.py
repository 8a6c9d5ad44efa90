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


class EpisodeStats(base.Env):
    """Tracks undiscounted episode return and length; invalid (ignored-action) steps are not counted.

    After ``step``, where ``episode_end`` the ``returned_*`` fields hold the finished episode's figures.
    What counts as an episode's reward and end is the backend's :meth:`~jaxrl.envs.base.Env.
    episode_signal` (``ts.reward`` and ``ts.done & ts.valid`` unless the backend says otherwise).
    """

    def __init__(self, env: base.Env):
        self.env = env
        self.num_envs = env.num_envs
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.max_episode_steps = env.max_episode_steps
        self.stateful = env.stateful
        self.name = env.name
        self.params = env.params
        self.frame_stack = env.frame_stack

    def prepare_keys(self, keys: jax.Array) -> Any:
        # ``step`` passes its key argument through unchanged, so the backend's prepared keys work here.
        return self.env.prepare_keys(keys)

    def episode_signal(self, state: EpisodeStatsState, ts: base.TimeStep) -> tuple[jax.Array, jax.Array]:
        return self.env.episode_signal(state.env_state, ts)

    def reset(self, key: jax.Array) -> tuple[EpisodeStatsState, base.TimeStep]:
        env_state, ts = self.env.reset(key)
        zf = jnp.zeros((self.num_envs,), jnp.float32)
        zi = jnp.zeros((self.num_envs,), jnp.int32)
        return EpisodeStatsState(env_state, zf, zi, zf, zi, jnp.zeros((self.num_envs,), bool)), ts

    def step(
        self, state: EpisodeStatsState, action: jax.Array, key: jax.Array
    ) -> tuple[EpisodeStatsState, base.TimeStep]:
        env_state, ts = self.env.step(state.env_state, action, key)
        reward, ended = self.env.episode_signal(env_state, ts)
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
