"""Building the environment an algorithm trains on, and restarting it on resume.

Shared by every RL algorithm: :func:`make_env` (the config's env with episode statistics),
:func:`init_env_and_params` (reset and initialise a network on the first observations),
:func:`env_is_stateful` and :func:`restart_envs` (backends whose state lives outside JAX).
"""

from __future__ import annotations

from typing import Any

import jax

from jaxrl import envs, rollout


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
