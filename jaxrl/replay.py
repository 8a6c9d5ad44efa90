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

End store (``end_example``, ``end_slots``): the next row is the wrong successor where a same-step-reset
backend started a new episode (its ``obs`` is then the next episode's first observation). Terminal
transitions do not need s_{t+1}, but one cut by a time limit bootstraps from its true final observation.
``add(..., end=x, has_end=mask)`` keeps ``x`` for the environments in ``mask`` only, in a small ring of
``end_slots`` entries per environment, and ``sample`` returns it with ``has_end`` (False where the entry
has been overwritten since, or there never was one). Time-limit cuts of one environment are at least
``max_episode_steps`` steps apart, so ``(rows - 1) // max_episode_steps + 1`` slots keep every cut still
in the buffer (:func:`end_slots_for`).

Validity: ``add`` takes a ``valid [B]`` mask (``TimeStep.valid``: False where a next-step-reset backend
ignored the action). Sampling draws uniformly (with replacement, as DQN does) among written slots; a
sample whose slot is invalid or unwritten comes back with ``weight == 0``, so a weighted mean ignores it
exactly. Invalid transitions are rare (one per episode), so the cost is a slightly smaller batch.

Frame stacks (``frames="obs"``): Atari observations are stacks of the last K frames (``uint8 [84, 84, 4]``,
oldest channel first), and consecutive steps of one environment share K - 1 of them. With ``frames``
naming the example's stacked field, the buffer stores only the newest frame of each step (``[..., 84,
84]``) plus a 1-byte ``age`` per transition and rebuilds the stacks when it reads: channel ``K-1-k``
(``k`` steps back) is the newest frame of row ``t - min(k, age_t)``. This reproduces any frame-stack
that pushes one frame per step and, at an episode start, fills the whole stack with the first frame
(envpool's Atari: every step, its next-step reset step included, pushes one frame; a game start or a
time-limit reset fills the stack; a lost life under episodic life does not): ``age_t`` is 0 where all K
channels are equal, else ``min(age_{t-1} + 1, K - 1)``. ``add`` checks the rebuilt stack against the
one it was given and stores ``age = -1`` (the transition then samples with weight 0) where they differ,
e.g. for the first K - 1 steps after a reset that does not refill the stack; a row whose older frames
were overwritten by the ring (the oldest ``age`` rows) samples with weight 0 too, so every stack read
with weight 1 is bit-equal to the one added. Needs ``rows > K``. ``add`` takes the K - 1 previous rows'
frames from a small ring in the state (``ReplayState.recent``, the newest frames of the last K - 1 rows),
never from the frame store: a read of the store in the step that writes it makes XLA copy the whole
store (on CPU, twice per ``add`` inside a compiled loop), where the write alone is in place.

Memory: ``bytes_per_transition`` = the bytes of one ``example_transition`` + 1 (the valid flag).
E.g. CartPole (obs and next_obs float32[4], action int32, reward float32, terminated/truncated bool):
4*4 + 4*4 + 4 + 4 + 1 + 1 + 1 = 43 bytes. Atari (uint8[84, 84, 4] frames, 28,224 bytes each) with
``next_obs`` stored: ~56.5 KB, 1M transitions ~56 GB; with ``successor=True`` and obs stored once:
~28.2 KB, 1M transitions ~28 GB (what SB3's ``optimize_memory_usage`` gives); with ``frames="obs"`` too,
one 7,056-byte frame and an age byte: ~7.1 KB, 1M transitions ~7.1 GB (plus the K - 1 recent frames per
environment, ``ReplayBuffer.frames_nbytes``).
An end store adds 4 bytes per transition (its slot index) and ``end_slots * num_envs`` entries with a
4-byte tag each (``ReplayBuffer.end_nbytes``): for DQN's final observations of Atari time-limit cuts
(27,000 steps) that is a few frames per environment.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class EndStore(NamedTuple):
    """Entries kept only for some transitions (see "End store" above), ``slots`` per environment."""

    data: Any  # pytree like end_example, every leaf [slots, num_envs, ...]
    row: jax.Array  # [slots, num_envs] int32 main-buffer row whose entry the slot holds (-1: none)
    slot: jax.Array  # [rows, num_envs] int32 slot holding each main row's entry (-1: none)
    next: jax.Array  # [num_envs] int32 slot each environment writes next


class ReplayState(NamedTuple):
    """The buffer's contents; lives in the algorithm's state (so it is vmapped with it)."""

    data: Any  # pytree like example_transition, every leaf [rows, num_envs, ...]
    valid: jax.Array  # [rows, num_envs] bool: written and valid
    position: jax.Array  # [] int32 next row to write
    size: jax.Array  # [] int32 rows written so far (at most rows)
    ends: EndStore | None = None  # entries kept at some transitions only (end_example), else None
    age: jax.Array | None = (
        None  # [rows, num_envs] int8 older frames in the stack (-1: not exact), frames only
    )
    recent: jax.Array | None = None  # [K-1, num_envs, ...] frames only: entry j = frame of row position-1-j


class Sample(NamedTuple):
    """A sampled minibatch."""

    item: Any  # leaves [batch_size, ...]: the sampled transitions
    next_item: Any  # leaves [batch_size, ...]: each one's following transition (successor=True), else None
    weight: jax.Array  # [batch_size] float32: 1 for a valid written slot, 0 for one to ignore
    end: Any = None  # leaves [batch_size, ...]: each one's end-store entry (end_example), else None
    has_end: jax.Array | None = None  # [batch_size] bool: ``end`` holds this transition's entry
    index: jax.Array | None = None  # [batch_size] int32 slots read: row * num_envs + env


def end_slots_for(rows: int, max_episode_steps: int) -> int:
    """End-store slots per environment that keep every time-limit cut among the ``rows`` steps of one
    environment the buffer holds: cuts are at least ``M = max_episode_steps`` apart, so there are at
    most ``(rows - 1) // M + 1`` of them."""
    return min(rows, (rows - 1) // max(int(max_episode_steps), 1) + 1)


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
    end_slots: int = 0  # end-store entries per environment (0: no end store)
    end_nbytes: int = 0  # memory of the end store (entries, their row tags, the per-row slot index)
    read: Callable[..., Sample] | None = None  # read(state, row [N], env [N]): the given slots, as sample
    frame_stack: int = 0  # K: frames per stacked observation when stored deduplicated (frames=...), else 0
    frames_nbytes: int = 0  # memory of the ring of the K - 1 most recent frames per environment (frames)

    @property
    def nbytes(self) -> int:
        """Memory of the whole preallocated buffer (end store and recent-frames ring included)."""
        return self.capacity * self.bytes_per_transition + self.end_nbytes + self.frames_nbytes


def _spec(x: Any) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of an array, ``jax.ShapeDtypeStruct`` or Python scalar."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = jnp.asarray(x)
    return tuple(x.shape), jnp.dtype(x.dtype)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What :func:`make_replay` derives from its arguments; the buffer's functions below take it first."""

    capacity: int
    num_envs: int
    rows: int
    successor: bool
    treedef: Any  # of the stored transition (with ``frames``: one frame in place of the stack)
    specs: tuple  # (shape, dtype) of each stored leaf, without the [rows, num_envs] axes
    end_store: bool
    end_def: Any
    end_specs: tuple
    end_slots: int
    frames: str | None
    stack_spec: tuple | None  # (shape, dtype) of the whole stack (with ``frames``)
    k_stack: int  # K frames per stack (with ``frames``), else 0


def make_replay(
    capacity: int,
    example_transition: Any,
    *,
    num_envs: int = 1,
    successor: bool = False,
    end_example: Any = None,
    end_slots: int = 0,
    frames: str | None = None,
) -> ReplayBuffer:
    """Build a ring buffer of ``capacity`` transitions shaped like ``example_transition``.

    Args:
      capacity: transitions to hold; must be a multiple of ``num_envs`` (rows of ``num_envs`` each).
      example_transition: a pytree of arrays for ONE transition (no batch axis); shapes and dtypes
        of the stored leaves are taken from it (values are ignored).
      num_envs: transitions per ``add`` call (the environment batch ``B``).
      successor: if True, ``sample`` also returns the same environment's next transition and never
        samples the newest row (its successor is not written yet).
      end_example: a pytree for ONE end-store entry (e.g. a final observation), or None for no end store.
      end_slots: end-store entries kept per environment (:func:`end_slots_for`); >= 1 with end_example.
      frames: the name of a field of ``example_transition`` (a NamedTuple) holding a stack of frames on
        its last axis, to store one frame per transition and rebuild the stacks on reading (see
        "Frame stacks" above); None stores the field as it is.
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
    stack_spec, k_stack = None, 0
    if frames is not None:
        if not hasattr(example_transition, "_replace") or not hasattr(example_transition, frames):
            raise ValueError(f"make_replay: frames={frames!r} must name a field of a NamedTuple example")
        stack_spec = _spec(getattr(example_transition, frames))
        k_stack = stack_spec[0][-1] if stack_spec[0] else 0
        if k_stack < 2:
            raise ValueError(
                f"make_replay: frames={frames!r} needs a stack of >= 2 frames on the last axis, got shape "
                f"{stack_spec[0]}"
            )
        if rows <= k_stack:
            raise ValueError(f"make_replay: frames needs more than {k_stack} rows, got {rows}")
        frame = jax.ShapeDtypeStruct(stack_spec[0][:-1], stack_spec[1])
        example_transition = example_transition._replace(**{frames: frame})
    leaves, treedef = jax.tree_util.tree_flatten(example_transition)
    if not leaves:
        raise ValueError("make_replay: example_transition has no array leaves")
    specs = [_spec(x) for x in leaves]
    bytes_per_transition = (
        sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in specs) + 1 + (frames is not None)
    )
    end_slots = int(end_slots) if end_example is not None else 0
    if end_example is not None and end_slots < 1:
        raise ValueError(f"make_replay: an end store needs end_slots >= 1, got {end_slots}")
    end_leaves, end_def = jax.tree_util.tree_flatten(end_example)
    end_specs = [_spec(x) for x in end_leaves]
    end_bytes = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in end_specs)
    end_nbytes = (end_slots * num_envs * (end_bytes + 4) + capacity * 4) if end_example is not None else 0
    frames_nbytes = 0
    if frames is not None:
        frames_nbytes = (
            (k_stack - 1) * num_envs * int(np.prod(stack_spec[0][:-1])) * np.dtype(stack_spec[1]).itemsize
        )
    lay = _Layout(
        capacity=capacity,
        num_envs=num_envs,
        rows=rows,
        successor=successor,
        treedef=treedef,
        specs=tuple(specs),
        end_store=end_example is not None,
        end_def=end_def,
        end_specs=tuple(end_specs),
        end_slots=end_slots,
        frames=frames,
        stack_spec=stack_spec,
        k_stack=k_stack,
    )
    return ReplayBuffer(
        capacity=capacity,
        num_envs=num_envs,
        rows=rows,
        successor=successor,
        bytes_per_transition=bytes_per_transition,
        init=functools.partial(_init, lay),
        add=functools.partial(_add, lay),
        sample=functools.partial(_sample, lay),
        end_slots=end_slots,
        end_nbytes=end_nbytes,
        read=functools.partial(_read, lay),
        frame_stack=k_stack,
        frames_nbytes=frames_nbytes,
    )


def _init(lay: _Layout) -> ReplayState:
    data = [jnp.zeros((lay.rows, lay.num_envs) + s, d) for s, d in lay.specs]
    return ReplayState(
        data=jax.tree_util.tree_unflatten(lay.treedef, data),
        valid=jnp.zeros((lay.rows, lay.num_envs), bool),
        position=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
        ends=_init_ends(lay) if lay.end_store else None,
        age=None if lay.frames is None else jnp.full((lay.rows, lay.num_envs), -1, jnp.int8),
        recent=None
        if lay.frames is None
        else jnp.zeros((lay.k_stack - 1, lay.num_envs) + lay.stack_spec[0][:-1], lay.stack_spec[1]),
    )


def _init_ends(lay: _Layout) -> EndStore:
    data = [jnp.zeros((lay.end_slots, lay.num_envs) + s, d) for s, d in lay.end_specs]
    return EndStore(
        data=jax.tree_util.tree_unflatten(lay.end_def, data),
        row=jnp.full((lay.end_slots, lay.num_envs), -1, jnp.int32),
        slot=jnp.full((lay.rows, lay.num_envs), -1, jnp.int32),
        next=jnp.zeros((lay.num_envs,), jnp.int32),
    )


def _check(lay: _Layout, what: str, tree: Any, tdef: Any, tspecs: tuple) -> None:
    t_leaves, t_def = jax.tree_util.tree_flatten(tree)
    if t_def != tdef:
        raise ValueError(f"replay add: {what} structure {t_def} differs from the example's {tdef}")
    for i, (x, (s, d)) in enumerate(zip(t_leaves, tspecs, strict=True)):
        if tuple(x.shape) != (lay.num_envs,) + s or x.dtype != d:
            raise ValueError(
                f"replay add: {what} leaf {i} has shape {tuple(x.shape)} dtype {x.dtype}; expected "
                f"{(lay.num_envs,) + s} {d} (num_envs first, then the example's shape and dtype)"
            )


def _add_ends(lay: _Layout, ends: EndStore, position: jax.Array, end: Any, has_end: jax.Array) -> EndStore:
    """Keep ``end`` for the environments in ``has_end``, each in its own next slot."""
    num_envs, columns = lay.num_envs, jnp.arange(lay.num_envs)
    slot = ends.next  # [B]
    put = lambda buf, x: buf.at[slot, columns].set(
        jnp.where(has_end.reshape((num_envs,) + (1,) * (x.ndim - 1)), x, buf[slot, columns])
    )
    return EndStore(
        data=jax.tree_util.tree_map(put, ends.data, end),
        row=put(ends.row, jnp.full((num_envs,), position, jnp.int32)),
        slot=jax.lax.dynamic_update_index_in_dim(ends.slot, jnp.where(has_end, slot, -1), position, 0),
        next=(slot + has_end.astype(jnp.int32)) % lay.end_slots,
    )


def _add(
    lay: _Layout,
    state: ReplayState,
    batch: Any,
    valid: jax.Array | None = None,
    end: Any = None,
    has_end: jax.Array | None = None,
) -> ReplayState:
    """Write one row: ``batch`` leaves ``[num_envs, ...]`` (shapes/dtypes as the example), and
    ``valid [num_envs]`` bool (default all True). Overwrites the oldest row when full. With an end
    store, ``end`` (leaves ``[num_envs, ...]`` like ``end_example``) is kept where ``has_end [num_envs]``.
    With ``frames``, that field of ``batch`` is the whole stack; only its newest frame is stored."""
    num_envs, frames = lay.num_envs, lay.frames
    age = recent = None
    if frames is not None:
        stack = getattr(batch, frames)
        if tuple(stack.shape) != (num_envs,) + lay.stack_spec[0] or stack.dtype != lay.stack_spec[1]:
            raise ValueError(
                f"replay add: {frames} has shape {tuple(stack.shape)} dtype {stack.dtype}; expected "
                f"{(num_envs,) + lay.stack_spec[0]} {lay.stack_spec[1]} (num_envs first, then the example's)"
            )
        batch = batch._replace(**{frames: stack[..., -1]})
        age, recent = _frame_age(lay, state, stack)
    _check(lay, "batch", batch, lay.treedef, lay.specs)
    if (end is None) != (not lay.end_store) or (end is None) != (has_end is None):
        raise ValueError("replay add: pass end and has_end exactly when the buffer has an end store")
    if end is not None:
        _check(lay, "end", end, lay.end_def, lay.end_specs)
    if valid is None:
        valid = jnp.ones((num_envs,), bool)
    if tuple(valid.shape) != (num_envs,):
        raise ValueError(f"replay add: valid must have shape ({num_envs},), got {tuple(valid.shape)}")
    write = lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, state.position, 0)
    data = jax.tree_util.tree_map(write, state.data, batch)
    ends = None if end is None else _add_ends(lay, state.ends, state.position, end, has_end.astype(bool))
    return ReplayState(
        data=data,
        valid=write(state.valid, valid.astype(bool)),
        position=(state.position + 1) % lay.rows,
        size=jnp.minimum(state.size + 1, lay.rows),
        ends=ends,
        age=None if age is None else write(state.age, age),
        recent=recent,
    )


def _stack(k_stack: int, lagged: jax.Array, age: jax.Array) -> jax.Array:
    """Stacks ``[N, ..., K]`` from ``lagged [K, N, ...]`` (entry ``j``: the newest frame ``j`` rows back)
    and ``age [N]``: channel ``K-1-k`` is entry ``min(k, age)``, oldest channel first."""
    age = age.reshape(age.shape + (1,) * (lagged.ndim - 2))
    chans = [lagged[0]]
    for k in range(1, k_stack):  # selects, not a gather (XLA:CPU gathers byte by byte)
        chans.append(jnp.where(age >= k, lagged[k], chans[-1]))
    return jnp.stack(chans[::-1], axis=-1)


def _frame_age(lay: _Layout, state: ReplayState, stack: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``age [num_envs]`` int8 of the stacks about to be written at ``position`` (see "Frame stacks"),
    -1 where rebuilding them from the previous rows would not give them back exactly; and the
    recent-frames ring after this write. The previous rows' frames come from ``state.recent`` (equal to
    the store's rows ``position - 1 .. position - K + 1``, zeros where unwritten, as the store's are),
    so the frame store is only written here, in place."""
    num_envs, k_stack = lay.num_envs, lay.k_stack
    lagged = jnp.concatenate([stack[None, ..., -1], state.recent], axis=0)  # [K, num_envs, ...]
    same = (stack == stack[..., -1:]).reshape(num_envs, -1).all(axis=1)  # all K channels equal
    prev_age = state.age[(state.position - 1) % lay.rows]
    # after a row that was not exact (or none), assume a full history: exact again K-1 steps on
    age = jnp.where(prev_age >= 0, jnp.minimum(prev_age + 1, k_stack - 1), k_stack - 1)
    age = jnp.where(same, 0, age).astype(jnp.int32)
    exact = (_stack(k_stack, lagged, age) == stack).reshape(num_envs, -1).all(axis=1)
    exact = jnp.logical_and(exact, age <= state.size)  # the rows it reads were written
    return jnp.where(exact, age, -1).astype(jnp.int8), lagged[: k_stack - 1]


def _sample(lay: _Layout, state: ReplayState, key: jax.Array, batch_size: int) -> Sample:
    """``batch_size`` slots drawn uniformly with replacement among the written rows (and, with
    ``successor``, excluding the newest row); ``weight`` 0 marks invalid or unwritten slots."""
    rows, num_envs = lay.rows, lay.num_envs
    oldest = (state.position - state.size) % rows
    n = state.size - 1 if lay.successor else state.size  # sampleable rows, oldest first
    # one draw over the n * num_envs sampleable slots, then a 1-D gather on the flattened buffer
    i = jax.random.randint(key, (batch_size,), 0, jnp.maximum(n, 1) * num_envs)
    s = _read(lay, state, (oldest + i // num_envs) % rows, i % num_envs)
    return s._replace(weight=s.weight * (n > 0))


def _get(lay: _Layout, x: jax.Array, r: jax.Array, env: jax.Array) -> jax.Array:
    """``x [rows, num_envs, ...]`` at slots ``(r [N] mod rows, env [N])``, as a 1-D gather."""
    flat = (r % lay.rows) * lay.num_envs + env  # in bounds for envs in range
    return x.reshape((lay.capacity,) + x.shape[2:]).at[flat].get(mode="promise_in_bounds")


def _take(lay: _Layout, state: ReplayState, r: jax.Array, env: jax.Array) -> tuple[Any, jax.Array]:
    """Row ``r``'s transitions and, with ``frames``, whether their stacks are exact (else True)."""
    item = jax.tree_util.tree_map(lambda x: _get(lay, x, r, env), state.data)
    if lay.frames is None:
        return item, jnp.ones(r.shape, bool)
    # rebuild the stack from the newest frames of this and earlier rows, all still in the ring
    age = _get(lay, state.age, r, env).astype(jnp.int32)
    since_oldest = (r - (state.position - state.size)) % lay.rows
    exact = (age >= 0) & (age <= since_oldest)
    stored = getattr(state.data, lay.frames)
    at = jnp.maximum(age, 0)
    lagged = [_get(lay, stored, r - jnp.minimum(k, at), env) for k in range(lay.k_stack - 1, -1, -1)]
    return item._replace(**{lay.frames: jnp.stack(lagged, axis=-1)}), exact


def _read(lay: _Layout, state: ReplayState, row: jax.Array, env: jax.Array) -> Sample:
    """The transitions in slots ``(row [N], env [N])`` as a :class:`Sample` (what ``sample`` returns
    for the slots it draws); ``weight`` 0 where a slot is invalid or unwritten, or (``frames``) its
    stack, or its successor's, cannot be rebuilt exactly."""
    row, env = jnp.asarray(row, jnp.int32), jnp.asarray(env, jnp.int32)
    item, ok = _take(lay, state, row, env)
    ok = ok & _get(lay, state.valid, row, env)
    next_item = None
    if lay.successor:
        next_item, next_exact = _take(lay, state, (row + 1) % lay.rows, env)
        ok = ok & next_exact  # s' is rebuilt too (with frames): both stacks must be exact
    weight = ok.astype(jnp.float32)
    index = row * lay.num_envs + env
    if not lay.end_store:
        return Sample(item=item, next_item=next_item, weight=weight, index=index)
    ends = state.ends
    slot = ends.slot[row, env]  # [N]; -1 where the transition kept no entry
    at = jnp.maximum(slot, 0)
    has_end = jnp.logical_and(slot >= 0, ends.row[at, env] == row)  # not overwritten since
    end = jax.tree_util.tree_map(lambda x: x[at, env], ends.data)
    return Sample(item=item, next_item=next_item, weight=weight, end=end, has_end=has_end, index=index)
