"""The parts every off-policy algorithm shares: replay-backed storage of rollouts, minibatches with
true next observations, target networks, and restarting environments after a resume.

DQN and SAC build on these; a new off-policy algorithm defines its networks, losses and ``update`` and
reuses the rest. Transitions are stored as :class:`Stored` rows; a minibatch comes back as
:class:`Batch` with s' resolved (from the stored ``next_obs``, or from the next row and the end store
when observations are stored once, see :mod:`jaxrl.replay`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import replay, rollout
from jaxrl.algos import env_building


class Stored(NamedTuple):
    """One transition as the replay memory holds it (``next_obs`` None if not stored)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array | None


class Batch(NamedTuple):
    """A training minibatch, all leaves ``[N, ...]``."""

    obs: jax.Array  # s_t
    action: jax.Array  # a_t (int32 for discrete actions, float32 [N, D] for continuous)
    reward: jax.Array  # r_{t+1}
    terminated: jax.Array  # bool: s_{t+1} terminal (no bootstrap)
    next_obs: jax.Array  # true s_{t+1}
    weight: jax.Array  # float32 1 for a real transition, 0 to ignore (invalid / unwritten / unusable)


def make_buffer(
    capacity: int,
    num_envs: int,
    example_obs: jax.Array,
    example_action: jax.ShapeDtypeStruct,
    *,
    store_next_obs: bool = True,
    max_episode_steps: int | None = None,
    dedup_frames: bool = False,
) -> replay.ReplayBuffer:
    """The replay memory for observations shaped like ``example_obs`` (one observation, no batch axis)
    and actions like ``example_action``.

    With ``store_next_obs=False`` the buffer reads s' from the next row and keeps the true final
    observations of time-limit cuts in an end store sized for ``max_episode_steps`` (the env's time
    limit, required then); ``dedup_frames`` stores each step's newest frame of a frame stack only.
    """
    f, b = jnp.float32, jnp.bool_
    obs = jax.ShapeDtypeStruct(example_obs.shape, example_obs.dtype)
    example = Stored(
        obs=obs,
        action=example_action,
        reward=jax.ShapeDtypeStruct((), f),
        terminated=jax.ShapeDtypeStruct((), b),
        truncated=jax.ShapeDtypeStruct((), b),
        next_obs=obs if store_next_obs else None,
    )
    if store_next_obs:
        return replay.make_replay(capacity, example, num_envs=num_envs)
    if max_episode_steps is None:
        raise ValueError("store_next_obs=False needs the environment's max_episode_steps (its time limit)")
    rows = capacity // num_envs
    return replay.make_replay(
        capacity,
        example,
        num_envs=num_envs,
        successor=True,
        end_example=obs,
        end_slots=replay.end_slots_for(rows, max_episode_steps),
        frames="obs" if dedup_frames else None,
    )


def store(
    buf: replay.ReplayBuffer, replay_state: replay.ReplayState, traj: rollout.Transition, store_next_obs: bool
) -> replay.ReplayState:
    """Add a ``[T, B]`` rollout to the replay memory, one row per step (``traj.action`` as acted)."""

    def add(rs, t):
        next_obs = t.next_obs if store_next_obs else None
        item = Stored(t.obs, t.action, t.reward, t.terminated, t.truncated, next_obs)
        if store_next_obs:
            return buf.add(rs, item, t.valid), None
        # the true s' of a time-limit cut, which the next row may not hold, goes to the end store
        cut = jnp.logical_and(t.truncated, t.valid)
        return buf.add(rs, item, t.valid, end=t.next_obs, has_end=cut), None

    replay_state, _ = jax.lax.scan(add, replay_state, traj)
    return replay_state


def to_batch(sample: replay.Sample) -> Batch:
    """A replay :class:`~jaxrl.replay.Sample` as a training :class:`Batch`."""
    item = sample.item
    if item.next_obs is not None:
        return Batch(item.obs, item.action, item.reward, item.terminated, item.next_obs, sample.weight)
    # obs stored once: s' is the same env's next observation, except after an episode end on a
    # same-step-reset backend (then it is the next episode's first obs). Terminal s' is never
    # bootstrapped from; a time-limit cut's true s' comes from the end store. A cut whose entry was
    # overwritten (only if cuts come more often than the env's time limit) gets weight 0.
    cut = item.truncated
    at_cut = cut.reshape(cut.shape + (1,) * (item.obs.ndim - 1))
    next_obs = jnp.where(at_cut, sample.end, sample.next_item.obs)
    weight = sample.weight * (1.0 - jnp.logical_and(cut, ~sample.has_end).astype(jnp.float32))
    return Batch(item.obs, item.action, item.reward, item.terminated, next_obs, weight)


def sample_batches(
    buf: replay.ReplayBuffer, replay_state: replay.ReplayState, key: jax.Array, num: int, batch_size: int
) -> Batch:
    """``num`` uniform minibatches of ``batch_size`` transitions, leaves ``[num, batch_size, ...]``."""
    sample = lambda k: to_batch(buf.sample(replay_state, k, batch_size))
    return jax.vmap(sample)(jax.random.split(key, num))


def update_target(online: Any, target: Any, tau: jax.Array | float, refresh: jax.Array | bool = True) -> Any:
    """``tau * online + (1 - tau) * target`` (tau 1: a copy) where ``refresh``, else ``target``."""
    return jax.tree_util.tree_map(
        lambda new, old: jnp.where(refresh, new, old), optax.incremental_update(online, target, tau), target
    )


def restart_envs(cfg: Any, restored: Any, fresh: Any) -> Any:
    """:func:`env_building.restart_envs`, and with ``cfg.store_next_obs=False`` the newest replay row (in
    ``state.replay``) made invalid: its s' would be read from the next row, which now holds the
    restarted episodes' first observations (one transition per environment dropped, so none joins two
    episodes)."""
    state = env_building.restart_envs(cfg, restored, fresh)
    if getattr(cfg, "store_next_obs", True):
        return state
    rs = state.replay
    newest = (rs.position - 1) % rs.valid.shape[0]
    return state._replace(replay=rs._replace(valid=rs.valid.at[newest].set(False)))
