"""A jittable replay memory: a ring buffer held in the algorithm's state, with pure functions.

``make_replay(capacity, example_transition, num_envs=B)`` checks its arguments and returns a
:class:`ReplayBuffer` of pure functions (the flashbax pattern)::

    buf = replay.make_replay(10_000, example, num_envs=10)
    rs = buf.init()                              # ReplayState, every leaf preallocated
    rs = buf.add(rs, batch, valid)               # batch leaves [B, ...]: one step of B environments
    s = buf.sample(rs, key, batch_size=128)      # s.item leaves [128, ...], s.weight [128]

Layout: every leaf of ``example_transition`` (one transition, no batch axis) is stored as
``[rows, B, ...]`` with ``rows = capacity // B``; ``add`` writes one row (all B environments' transitions
of one step) at ``position`` and wraps around, overwriting the oldest row. Dtypes are kept as given
(uint8 frames stay uint8). Each environment's column is in time order, so a sampled slot can also return
the same environment's *following* transition (``successor=True``): an algorithm may then store
observations once and read s_{t+1} from the next row, halving the memory for image observations.

Validity: ``add`` takes a ``valid [B]`` mask (``TimeStep.valid``: False where a next-step-reset backend
ignored the action). Sampling draws uniformly (with replacement, as DQN does) among written slots; a
sample whose slot is invalid or unwritten comes back with ``weight == 0``, so a weighted mean ignores it
exactly. Invalid transitions are rare (one per episode), so the cost is a slightly smaller batch.

Memory: ``bytes_per_transition`` = the bytes of one ``example_transition`` + 1 (the valid flag).
E.g. CartPole (obs and next_obs float32[4], action int32, reward float32, terminated/truncated bool):
4*4 + 4*4 + 4 + 4 + 1 + 1 + 1 = 43 bytes. Atari (uint8[84, 84, 4] frames, 28,224 bytes each) with
``next_obs`` stored: ~56.5 KB, 1M transitions ~56 GB; with ``successor=True`` and obs stored once:
~28.2 KB, 1M transitions ~28 GB (what SB3's ``optimize_memory_usage`` gives). Storing only the newest
frame of each stack would need ~7 KB; that is left to the Atari backend (stacks span rows of one column).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ReplayState(NamedTuple):
    """The buffer's contents; lives in the algorithm's state (so it is vmapped with it)."""

    data: Any  # pytree like example_transition, every leaf [rows, num_envs, ...]
    valid: jax.Array  # [rows, num_envs] bool: written and valid
    position: jax.Array  # [] int32 next row to write
    size: jax.Array  # [] int32 rows written so far (at most rows)


class Sample(NamedTuple):
    """A sampled minibatch."""

    item: Any  # leaves [batch_size, ...]: the sampled transitions
    next_item: Any  # leaves [batch_size, ...]: each one's following transition (successor=True), else None
    weight: jax.Array  # [batch_size] float32: 1 for a valid written slot, 0 for one to ignore


@dataclasses.dataclass(frozen=True)
class ReplayBuffer:
    """What :func:`make_replay` returns: sizes and the pure functions ``init``, ``add``, ``sample``."""

    capacity: int  # transitions held (rows * num_envs)
    num_envs: int  # transitions per add (B)
    rows: int  # capacity // num_envs
    successor: bool  # sample() also returns each slot's following transition
    bytes_per_transition: int  # memory of one stored transition, incl. its valid flag
    init: Callable[[], ReplayState]
    add: Callable[..., ReplayState]
    sample: Callable[..., Sample]

    @property
    def nbytes(self) -> int:
        """Memory of the whole preallocated buffer."""
        return self.capacity * self.bytes_per_transition


def _spec(x: Any) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of an array, ``jax.ShapeDtypeStruct`` or Python scalar."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = jnp.asarray(x)
    return tuple(x.shape), jnp.dtype(x.dtype)


def make_replay(
    capacity: int, example_transition: Any, *, num_envs: int = 1, successor: bool = False
) -> ReplayBuffer:
    """Build a ring buffer of ``capacity`` transitions shaped like ``example_transition``.

    Args:
      capacity: transitions to hold; must be a multiple of ``num_envs`` (rows of ``num_envs`` each).
      example_transition: a pytree of arrays for ONE transition (no batch axis); shapes and dtypes
        of the stored leaves are taken from it (values are ignored).
      num_envs: transitions per ``add`` call (the environment batch ``B``).
      successor: if True, ``sample`` also returns the same environment's next transition and never
        samples the newest row (its successor is not written yet).
    """
    capacity, num_envs = int(capacity), int(num_envs)
    if num_envs < 1:
        raise ValueError(f"make_replay: num_envs must be >= 1, got {num_envs}")
    if capacity < num_envs or capacity % num_envs:
        raise ValueError(
            f"make_replay: capacity ({capacity}) must be a positive multiple of num_envs ({num_envs}) "
            f"(the buffer stores rows of num_envs transitions); use e.g. {max(1, capacity // num_envs) * num_envs}"
        )
    rows = capacity // num_envs
    if successor and rows < 2:
        raise ValueError(f"make_replay: successor=True needs at least 2 rows, got capacity {capacity}")
    leaves, treedef = jax.tree_util.tree_flatten(example_transition)
    if not leaves:
        raise ValueError("make_replay: example_transition has no array leaves")
    specs = [_spec(x) for x in leaves]
    bytes_per_transition = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in specs) + 1

    def init() -> ReplayState:
        data = [jnp.zeros((rows, num_envs) + s, d) for s, d in specs]
        return ReplayState(
            data=jax.tree_util.tree_unflatten(treedef, data),
            valid=jnp.zeros((rows, num_envs), bool),
            position=jnp.zeros((), jnp.int32),
            size=jnp.zeros((), jnp.int32),
        )

    def add(state: ReplayState, batch: Any, valid: jax.Array | None = None) -> ReplayState:
        """Write one row: ``batch`` leaves ``[num_envs, ...]`` (shapes/dtypes as the example), and
        ``valid [num_envs]`` bool (default all True). Overwrites the oldest row when full."""
        b_leaves, b_def = jax.tree_util.tree_flatten(batch)
        if b_def != treedef:
            raise ValueError(f"replay add: batch structure {b_def} differs from the example's {treedef}")
        for i, (x, (s, d)) in enumerate(zip(b_leaves, specs, strict=True)):
            if tuple(x.shape) != (num_envs,) + s or x.dtype != d:
                raise ValueError(
                    f"replay add: leaf {i} has shape {tuple(x.shape)} dtype {x.dtype}; expected "
                    f"{(num_envs,) + s} {d} (num_envs first, then the example's shape and dtype)"
                )
        if valid is None:
            valid = jnp.ones((num_envs,), bool)
        if tuple(valid.shape) != (num_envs,):
            raise ValueError(f"replay add: valid must have shape ({num_envs},), got {tuple(valid.shape)}")
        write = lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, state.position, 0)
        data = jax.tree_util.tree_map(write, state.data, batch)
        return ReplayState(
            data=data,
            valid=write(state.valid, valid.astype(bool)),
            position=(state.position + 1) % rows,
            size=jnp.minimum(state.size + 1, rows),
        )

    def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Sample:
        """``batch_size`` slots drawn uniformly with replacement among the written rows (and, with
        ``successor``, excluding the newest row); ``weight`` 0 marks invalid or unwritten slots."""
        oldest = (state.position - state.size) % rows
        n = state.size - 1 if successor else state.size  # sampleable rows, oldest first
        # one draw over the n * num_envs sampleable slots, then a 1-D gather on the flattened buffer
        i = jax.random.randint(key, (batch_size,), 0, jnp.maximum(n, 1) * num_envs)
        row, env = (oldest + i // num_envs) % rows, i % num_envs

        def take(r: jax.Array) -> Any:
            flat = r * num_envs + env  # always in bounds by construction
            get = lambda x: x.reshape((capacity,) + x.shape[2:]).at[flat].get(mode="promise_in_bounds")
            return jax.tree_util.tree_map(get, state.data), get(state.valid)

        item, valid = take(row)
        weight = jnp.logical_and(valid, n > 0).astype(jnp.float32)
        next_item = take((row + 1) % rows)[0] if successor else None
        return Sample(item=item, next_item=next_item, weight=weight)

    return ReplayBuffer(
        capacity=capacity,
        num_envs=num_envs,
        rows=rows,
        successor=successor,
        bytes_per_transition=bytes_per_transition,
        init=init,
        add=add,
        sample=sample,
    )
