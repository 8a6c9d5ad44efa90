"""gymnax backend: any ``gymnax.environments.environment.Environment`` meets the jaxrl contract.

gymnax (>= 1.0) already resets on the same step and reports ``terminated`` (natural end) apart from
``truncated`` (``state.time >= params.max_steps_in_episode``), with the true last observation in
``info["final_observation"]``; this adapter batches it with ``jax.vmap`` and maps it onto
:class:`jaxrl.envs.base.TimeStep`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.envs import base


def _convert_space(space: Any) -> base.Space:
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):
        return base.Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        return base.Box(space.low, space.high, tuple(space.shape), space.dtype)
    raise TypeError(f"jaxrl supports gymnax Discrete and Box spaces, not {type(space).__name__}")


class GymnaxEnv:
    """``num_envs`` copies of a gymnax environment, stepped together under ``jax.vmap``."""

    stateful = False

    def __init__(self, env: Any, env_params: Any, num_envs: int, name: str | None = None):
        self.env = env
        self.params = env.default_params if env_params is None else env_params
        self.num_envs = int(num_envs)
        self.name = name or env.name
        self.observation_space = _convert_space(env.observation_space(self.params))
        self.action_space = _convert_space(env.action_space(self.params))
        self.max_episode_steps = int(getattr(self.params, "max_steps_in_episode", 1000))

    def reset(self, key: jax.Array) -> tuple[Any, base.TimeStep]:
        keys = jax.random.split(key, self.num_envs)
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)
        false = jnp.zeros((self.num_envs,), dtype=bool)
        ts = base.TimeStep(
            obs=obs,
            reward=jnp.zeros((self.num_envs,), jnp.float32),
            terminated=false,
            truncated=false,
            next_obs=obs,
            valid=jnp.ones((self.num_envs,), dtype=bool),
        )
        return state, ts

    def step(self, state: Any, action: jax.Array, key: jax.Array) -> tuple[Any, base.TimeStep]:
        keys = jax.random.split(key, self.num_envs)
        obs, state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, in_axes=(0, 0, 0, None)
        )(keys, state, action, self.params)
        ts = base.TimeStep(
            obs=obs,
            reward=reward.astype(jnp.float32),
            terminated=terminated.astype(bool),
            truncated=jnp.logical_and(truncated.astype(bool), ~terminated.astype(bool)),
            next_obs=info["final_observation"],
            valid=jnp.ones((self.num_envs,), dtype=bool),
        )
        return state, ts
