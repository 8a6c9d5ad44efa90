"""Greedy evaluation of any trained agent on fresh environments."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import envs, rollout
from jaxrl.algos import checks, prng, registry


def evaluate(
    cfg: Any,
    state: Any,
    key: Any,
    num_episodes: int = 32,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> jax.Array:
    """Run ``num_episodes`` episodes in parallel with the agent's (greedy) policy.

    Returns ``[num_episodes]`` undiscounted returns of each environment's first complete episode.
    Episodes still running after ``max_steps`` (default: the env's time limit) count their partial
    return. Stepping stops as soon as every environment has finished an episode (a ``lax.while_loop``
    capped at ``max_steps``), so a short Atari game does not pay for the 27,000-step time limit; the
    returns are those of the full-length scan (later steps could not change them). Traceable:
    ``jax.vmap`` it over stacked states/configs (the loop then runs until every member has finished).
    """
    return run_episodes(cfg, state, key, num_episodes, deterministic=deterministic, max_steps=max_steps)[0]


def run_episodes(
    cfg: Any,
    state: Any,
    key: Any,
    num_episodes: int = 32,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """:func:`evaluate`'s returns ``[num_episodes]`` and the number of vector steps it took ``[]``."""
    algo = registry.algorithm_for(cfg)
    if int(num_episodes) < 1:
        raise ValueError(f"evaluate: num_episodes must be a positive integer, got {num_episodes!r}")
    if max_steps is not None and int(max_steps) < 1:
        raise ValueError(f"evaluate: max_steps must be a positive integer, got {max_steps!r}")
    checks.check_env_params(cfg)
    key = prng.as_key(key)
    # evaluation=True: backends with training-only shaping (envpool Atari: episodic life, reward
    # clipping) return full-episode raw scores; other backends ignore it.
    env = envs.EpisodeStats(envs.make(cfg.env, num_episodes, cfg.env_params, evaluation=True))
    act = algo.make_policy(cfg, state, deterministic=deterministic)
    k_reset, k_run = jax.random.split(key)
    carry = rollout.reset(env, k_reset)
    horizon = int(max_steps or env.max_episode_steps + 1)
    if horizon < 1:  # an env whose own time limit is not positive
        raise ValueError(f"{cfg.env}: the episode step limit is {env.max_episode_steps}; it must be positive")
    step_keys = jax.random.split(k_run, horizon)  # step t uses step_keys[t], however early the loop stops

    def step(c):
        t, env_carry, finished, returns = c
        k_act, k_env = jax.random.split(step_keys[t])
        action = act(env_carry.timestep.obs, k_act)
        env_state, ts = env.step(env_carry.env_state, action, k_env)
        ended = env_state.episode_end
        first = jnp.logical_and(ended, ~finished)
        returns = jnp.where(first, env_state.returned_episode_return, returns)
        return t + 1, rollout.EnvCarry(env_state, ts), finished | ended, returns

    def running(c):
        t, _, finished, _ = c
        return jnp.logical_and(t < horizon, ~jnp.all(finished))

    zeros = jnp.zeros((num_episodes,), jnp.float32)
    init = (jnp.zeros((), jnp.int32), carry, jnp.zeros((num_episodes,), bool), zeros)
    steps, final, finished, returns = jax.lax.while_loop(running, step, init)
    return jnp.where(finished, returns, final.env_state.episode_return), steps
