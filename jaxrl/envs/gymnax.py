"""gymnax backend: any ``gymnax.environments.environment.Environment`` meets the jaxrl contract.

gymnax (>= 1.0) already resets on the same step and reports ``terminated`` (natural end) apart from
``truncated`` (``state.time >= params.max_steps_in_episode``), with the true last observation in
``info["final_observation"]``; this adapter batches it with ``jax.vmap`` and maps it onto
:class:`jaxrl.envs.base.TimeStep`.

Randomness drawn ahead (speed, same numbers): gymnax's ``step`` splits its key into a step key and a reset
key and computes a reset state on every step, both of which depend on the key only. :meth:`GymnaxEnv.
prepare_keys` draws them for a whole rollout in one batched call, and ``step`` then takes that step's slice
(a :class:`PreparedStep`) in place of its key, so the loop over time holds no random-number code. This is
used only for environments that keep gymnax's own ``Environment.step``; the result is bit-for-bit what
``step(state, action, key)`` gives with the same keys.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class PreparedStep(NamedTuple):
    """One step's randomness, drawn ahead by :meth:`GymnaxEnv.prepare_keys`: leaves ``[..., B, ...]``."""

    key_step: jax.Array  # [..., B] keys for gymnax's step_env
    reset_obs: Any  # [..., B, *obs] observation of the state an episode ending here resets to
    reset_state: Any  # [..., B] that state


def _default_step(env: Any) -> bool:
    """True if ``env`` keeps gymnax's ``Environment.step`` (step_env + auto-reset), so it can be split."""
    try:
        from gymnax.environments.environment import Environment
    except ImportError:  # pragma: no cover
        return False
    return isinstance(env, Environment) and type(env).step is Environment.step


class GymnaxEnv(base.Env):
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
        # only then is step's randomness known ahead (see the module docstring)
        self.draws_ahead = _default_step(env)

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

    def prepare_keys(self, keys: jax.Array) -> PreparedStep | jax.Array:
        """``keys [T]`` (what ``step`` would be given at each of T steps) -> a :class:`PreparedStep` with
        leaves ``[T, B, ...]``; pass its ``t``-th slice to ``step`` in place of ``keys[t]``. An
        environment with its own ``step`` (``draws_ahead`` False) gets its keys back unchanged."""
        if not self.draws_ahead:
            return keys
        per_env = jax.vmap(lambda k: jax.random.split(k, self.num_envs))(keys)  # as step does
        pairs = jax.vmap(jax.vmap(jax.random.split))(per_env)  # as gymnax's step does, per env
        key_step, key_reset = pairs[:, :, 0], pairs[:, :, 1]
        reset = jax.vmap(jax.vmap(self.env.reset_env, in_axes=(0, None)), in_axes=(0, None))
        reset_obs, reset_state = reset(key_reset, self.params)
        return PreparedStep(key_step, reset_obs, reset_state)

    def _step_prepared(self, state: Any, action: jax.Array, prep: PreparedStep) -> tuple:
        """gymnax's ``Environment.step`` with its randomness given (same operations, same results)."""
        env, params = self.env, self.params

        def one(key_step, state, action, obs_re, state_re):
            obs_st, state_st, reward, terminated, info = env.step_env(key_step, state, action, params)
            truncated = env.is_truncated(state_st, params)
            done = jnp.logical_or(terminated, truncated)
            state = jax.tree_util.tree_map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
            obs = jax.tree_util.tree_map(lambda x, y: jax.lax.select(done, x, y), obs_re, obs_st)
            return obs, state, reward, terminated, truncated, {"final_observation": obs_st}

        return jax.vmap(one)(prep.key_step, state, action, prep.reset_obs, prep.reset_state)

    def step(self, state: Any, action: jax.Array, key: Any) -> tuple[Any, base.TimeStep]:
        """``key``: a PRNG key, or a slice of what :meth:`prepare_keys` returned."""
        if isinstance(key, PreparedStep):
            out = self._step_prepared(state, action, key)
        else:
            keys = jax.random.split(key, self.num_envs)
            out = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, state, action, self.params)
        obs, state, reward, terminated, truncated, info = out
        ts = base.TimeStep(
            obs=obs,
            reward=reward.astype(jnp.float32),
            terminated=terminated.astype(bool),
            truncated=jnp.logical_and(truncated.astype(bool), ~terminated.astype(bool)),
            next_obs=info["final_observation"],
            valid=jnp.ones((self.num_envs,), dtype=bool),
        )
        return state, ts
