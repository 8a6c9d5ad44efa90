"""jaxrl.replay: layout, wrap-around, sampling only written/valid slots, successor reads, checks."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import replay


class T(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array


def example(obs_shape=(3,), obs_dtype=jnp.float32):
    return T(jnp.zeros(obs_shape, obs_dtype), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))


def jitted(buf):
    """(add, sample) compiled once each (eager dispatch op by op is slow on a loaded CPU)."""
    return jax.jit(buf.add), jax.jit(buf.sample, static_argnums=2)


def row(value, num_envs=2, obs_shape=(3,), obs_dtype=jnp.float32):
    """One add: env e of row ``value`` holds obs = 10 * value + e (every element), action = e."""
    ids = 10 * value + jnp.arange(num_envs)
    obs = jnp.broadcast_to(ids.reshape((num_envs,) + (1,) * len(obs_shape)), (num_envs,) + obs_shape)
    return T(obs.astype(obs_dtype), jnp.arange(num_envs, dtype=jnp.int32), ids.astype(jnp.float32))


class TestMake:
    def test_shapes_dtypes_and_bytes(self):
        buf = replay.make_replay(6, example((84, 84, 4), jnp.uint8), num_envs=2)
        rs = buf.init()
        assert buf.rows == 3
        assert rs.data.obs.shape == (3, 2, 84, 84, 4) and rs.data.obs.dtype == jnp.uint8  # uint8 kept
        assert rs.data.action.dtype == jnp.int32 and rs.valid.shape == (3, 2)
        # 84*84*4 uint8 = 28224, int32 action 4, float32 reward 4, valid flag 1
        assert buf.bytes_per_transition == 28224 + 4 + 4 + 1
        assert buf.nbytes == 6 * (28224 + 9)

    def test_accepts_shape_dtype_structs(self):
        ex = T(
            jax.ShapeDtypeStruct((2,), jnp.uint8),
            jax.ShapeDtypeStruct((), jnp.int32),
            jax.ShapeDtypeStruct((), jnp.float32),
        )
        assert replay.make_replay(4, ex, num_envs=2).bytes_per_transition == 2 + 4 + 4 + 1

    @pytest.mark.parametrize("capacity, num_envs", [(5, 2), (1, 2), (0, 1)])
    def test_capacity_must_hold_whole_rows(self, capacity, num_envs):
        with pytest.raises(ValueError, match="multiple of num_envs"):
            replay.make_replay(capacity, example(), num_envs=num_envs)

    def test_successor_needs_two_rows(self):
        with pytest.raises(ValueError, match="2 rows"):
            replay.make_replay(2, example(), num_envs=2, successor=True)


class TestAdd:
    def test_wraps_around_overwriting_oldest(self):
        buf = replay.make_replay(6, example(), num_envs=2)  # 3 rows
        add, _ = jitted(buf)
        rs = buf.init()
        for v in range(5):  # rows 0..4 written into slots 0,1,2,0,1
            rs = add(rs, row(v))
        assert int(rs.position) == 2 and int(rs.size) == 3
        np.testing.assert_array_equal(rs.data.reward[:, 0], [30.0, 40.0, 20.0])
        np.testing.assert_array_equal(rs.data.reward[:, 1], [31.0, 41.0, 21.0])
        assert bool(rs.valid.all())

    def test_shape_and_dtype_errors_are_clear(self):
        buf = replay.make_replay(6, example(), num_envs=2)
        rs = buf.init()
        with pytest.raises(ValueError, match="num_envs first"):
            buf.add(rs, row(0, num_envs=3))
        with pytest.raises(ValueError, match="dtype"):
            buf.add(rs, row(0, obs_dtype=jnp.uint8))
        with pytest.raises(ValueError, match="structure"):
            buf.add(rs, (row(0).obs, row(0).action))
        with pytest.raises(ValueError, match="valid"):
            buf.add(rs, row(0), jnp.ones((3,), bool))

    def test_jit_matches_eager(self):
        buf = replay.make_replay(6, example(), num_envs=2)
        eager, jitted = buf.init(), buf.init()
        add = jax.jit(buf.add)
        for v in range(4):
            eager = buf.add(eager, row(v), jnp.array([True, v % 2 == 0]))
            jitted = add(jitted, row(v), jnp.array([True, v % 2 == 0]))
        jax.tree_util.tree_map(np.testing.assert_array_equal, eager, jitted)


class TestSample:
    def test_empty_buffer_gives_zero_weights(self):
        buf = replay.make_replay(6, example(), num_envs=2)
        s = jitted(buf)[1](buf.init(), jax.random.key(0), 32)
        assert float(s.weight.sum()) == 0.0

    def test_only_written_rows_are_sampled(self):
        buf = replay.make_replay(20, example(), num_envs=2)  # 10 rows, 2 written
        add, sample = jitted(buf)
        s = sample(add(add(buf.init(), row(1)), row(2)), jax.random.key(0), 1000)
        assert set(np.unique(np.asarray(s.item.reward))) == {10.0, 11.0, 20.0, 21.0}
        assert float(s.weight.min()) == 1.0
        # each sampled item is a whole transition (obs, action, reward from the same slot)
        np.testing.assert_array_equal(s.item.obs[:, 0], s.item.reward)
        np.testing.assert_array_equal(s.item.action, s.item.reward.astype(jnp.int32) % 10)

    def test_after_wrap_samples_only_live_rows(self):
        buf = replay.make_replay(6, example(), num_envs=2)
        add, sample = jitted(buf)
        rs = buf.init()
        for v in range(5):
            rs = add(rs, row(v))
        vals = set(np.unique(np.asarray(sample(rs, jax.random.key(1), 1000).item.reward)))
        assert vals == {20.0, 21.0, 30.0, 31.0, 40.0, 41.0}  # rows 0 and 1 were overwritten

    def test_invalid_transitions_get_zero_weight(self):
        buf = replay.make_replay(8, example(), num_envs=2)
        add, sample = jitted(buf)
        rs = buf.init()
        for v in range(4):  # env 1 is invalid on rows 1 and 3
            rs = add(rs, row(v), jnp.array([True, v % 2 == 0]))
        s = sample(rs, jax.random.key(2), 2000)
        invalid = np.isin(np.asarray(s.item.reward), [11.0, 31.0])
        np.testing.assert_array_equal(np.asarray(s.weight) == 0.0, invalid)
        assert invalid.any() and (~invalid).any()

    def test_uniform_over_slots(self):
        buf = replay.make_replay(8, example(), num_envs=2)
        add, sample = jitted(buf)
        rs = buf.init()
        for v in range(4):
            rs = add(rs, row(v))
        r = np.asarray(sample(rs, jax.random.key(3), 16000).item.reward)
        counts = np.array([np.sum(r == 10 * v + e) for v in range(4) for e in range(2)])
        assert counts.min() > 1700 and counts.max() < 2300  # 2000 expected each; sd ~42

    def test_successor_returns_next_row_of_same_env_and_skips_newest(self):
        buf = replay.make_replay(6, example(), num_envs=2, successor=True)  # 3 rows
        add, sample = jitted(buf)
        rs = buf.init()
        assert float(sample(add(rs, row(0)), jax.random.key(0), 8).weight.sum()) == 0.0  # no successor yet
        for v in range(5):  # live rows 2, 3, 4; row 4 (newest) has no successor
            rs = add(rs, row(v))
        s = sample(rs, jax.random.key(4), 1000)
        assert set(np.unique(np.asarray(s.item.reward))) == {20.0, 21.0, 30.0, 31.0}
        np.testing.assert_array_equal(s.next_item.reward, s.item.reward + 10.0)

    @pytest.mark.parametrize("end_slots", [1, 2])
    def test_end_store_keeps_entries_until_their_slot_or_row_is_reused(self, end_slots):
        ex = jnp.zeros((), jnp.float32)
        buf = replay.make_replay(
            8, example(), num_envs=2, successor=True, end_example=ex, end_slots=end_slots
        )
        add, sample = jax.jit(buf.add), jax.jit(buf.sample, static_argnums=2)
        rs = buf.init()
        # rows 0..3 (4 rows); entries 100 + 10 v + e where has_end: env 0 at rows 0 and 2, env 1 at row 2
        has = {0: [True, False], 1: [False, False], 2: [True, True], 3: [False, False]}
        for v in range(4):
            rs = add(rs, row(v), None, 100.0 + row(v).reward, jnp.array(has[v]))
        s = sample(rs, jax.random.key(6), 2000)  # rows 0, 1, 2 (row 3 is the newest: no successor)
        r, h, e = np.asarray(s.item.reward), np.asarray(s.has_end), np.asarray(s.end)
        # env 0 has one slot with end_slots=1: row 2's entry overwrote row 0's
        expect = {0.0: end_slots == 2, 1.0: False, 10.0: False, 11.0: False, 20.0: True, 21.0: True}
        assert set(np.unique(r)) == set(expect)
        for value, kept in expect.items():
            assert (h[r == value] == kept).all(), (value, kept)
            if kept:
                np.testing.assert_array_equal(e[r == value], 100.0 + value)
        # a new row over row 0 without an entry: row 0's old entry is not reported for it
        rs = add(rs, row(4), None, 100.0 + row(4).reward, jnp.array([False, False]))
        s = sample(rs, jax.random.key(7), 2000)
        assert not np.asarray(s.has_end)[np.asarray(s.item.reward) >= 30.0].any()
        assert buf.end_slots == end_slots and buf.nbytes == 8 * buf.bytes_per_transition + (
            end_slots * 2 * (4 + 4) + 8 * 4  # entries with their row tags, and a slot index per transition
        )

    def test_end_store_arguments_must_match_the_buffer(self):
        plain = replay.make_replay(6, example(), num_envs=2)
        with pytest.raises(ValueError, match="end store"):
            plain.add(plain.init(), row(0), None, jnp.zeros(2), jnp.ones(2, bool))
        ends = replay.make_replay(6, example(), num_envs=2, end_example=jnp.zeros(()), end_slots=2)
        with pytest.raises(ValueError, match="end store"):
            ends.add(ends.init(), row(0))
        with pytest.raises(ValueError, match="end_slots"):
            replay.make_replay(6, example(), num_envs=2, end_example=jnp.zeros(()))
        # cuts 500 steps apart: at most 2 in any 1000 steps (e.g. steps 0 and 500), 3 in 1001
        assert replay.end_slots_for(rows=1000, max_episode_steps=500) == 2
        assert replay.end_slots_for(rows=1001, max_episode_steps=500) == 3
        assert replay.end_slots_for(rows=10, max_episode_steps=1) == 10

    def test_jit_and_vmap_over_buffers(self):
        buf = replay.make_replay(6, example(), num_envs=2)
        states = jax.vmap(lambda _: buf.init())(jnp.arange(3))
        batches = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), row(1), row(2), row(3))
        states = jax.jit(jax.vmap(buf.add))(states, batches)
        keys = jax.random.split(jax.random.key(5), 3)
        s = jax.jit(jax.vmap(lambda st, k: buf.sample(st, k, 4)))(states, keys)
        add, sample = jitted(buf)
        for i in range(3):
            single = sample(add(buf.init(), row(i + 1)), keys[i], 4)
            np.testing.assert_array_equal(s.item.reward[i], single.item.reward)


# ------------------------------------------------------------------------------------- frame stacks
class F(NamedTuple):
    obs: jax.Array  # [H, W, K] stack, oldest frame first
    action: jax.Array


def _frame_stream(rng, steps, num_envs, k, refill_p=0.08, keep_p=0.08, static_p=0.2, break_at=None):
    """What a frame-stacking env would emit: ``[steps, num_envs, 2, 2, k]`` uint8 stacks. Each step pushes
    one new 2x2 frame; with probability ``refill_p`` the stack is refilled with it (an episode start),
    ``keep_p`` marks an episode end that does not refill (a lost life), ``static_p`` repeats the last frame.
    ``break_at`` = (t, env): the stack given at step t and later ones carry a changed copy of frame t-1
    (as after a reset that neither refills the stack nor continues it)."""
    out = np.zeros((steps, num_envs, 2, 2, k), np.uint8)
    for e in range(num_envs):
        stack = np.repeat(rng.randint(0, 256, (2, 2, 1)), k, axis=-1).astype(
            np.uint8
        )  # first reset: refilled
        for t in range(steps):
            if t > 0:
                frame = stack[..., -1:] if rng.rand() < static_p else rng.randint(0, 256, (2, 2, 1))
                stack = np.concatenate([stack[..., 1:], frame.astype(np.uint8)], axis=-1)
                if rng.rand() < refill_p:
                    stack = np.repeat(stack[..., -1:], k, axis=-1)
            out[t, e] = stack
            if break_at == (t, e):
                out[t, e, ..., k - 2] ^= 1
                stack = out[t, e]
    return out


class TestFrames:
    def _fill(self, buf, stacks):
        add = jax.jit(buf.add)
        rs = buf.init()
        for t in range(stacks.shape[0]):
            rs = add(rs, F(jnp.asarray(stacks[t]), jnp.full((stacks.shape[1],), t, jnp.int32)))
        return rs

    def _read_all(self, buf, rs):
        rows, envs = np.meshgrid(np.arange(buf.rows), np.arange(buf.num_envs), indexing="ij")
        return jax.jit(buf.read)(rs, jnp.asarray(rows.ravel()), jnp.asarray(envs.ravel()))

    @pytest.mark.parametrize("steps", [9, 37])  # before and well after the ring wraps around
    def test_rebuilt_stacks_are_bit_equal_across_refills_and_wrap_around(self, steps):
        k, num_envs = 4, 3
        stacks = _frame_stream(np.random.RandomState(steps), steps, num_envs, k)
        buf = replay.make_replay(
            10 * num_envs,
            F(jnp.zeros((2, 2, k), jnp.uint8), jnp.zeros((), jnp.int32)),
            num_envs=num_envs,
            successor=True,
            frames="obs",
        )
        rs = self._fill(buf, stacks)
        assert rs.data.obs.shape == (10, num_envs, 2, 2) and buf.frame_stack == k  # one frame per slot
        assert buf.bytes_per_transition == 4 + 4 + 1 + 1  # frame, action, valid flag, age
        s = self._read_all(buf, rs)
        t = np.asarray(s.item.action)  # the step each slot holds
        e = np.asarray(s.index) % num_envs
        w = np.asarray(s.weight)
        newest = t == steps - 1  # no successor written yet; read still reports the next row's contents
        live = np.asarray(s.index) // num_envs < min(steps, 10)
        # weight 1 exactly where the slot's and its successor's older frames are still in the ring:
        # age(t) rows back for t, age(t+1) for t+1 (age = steps since the last refill, at most k-1)
        age = np.zeros((steps, num_envs), int)
        for tt in range(1, steps):
            refill = (stacks[tt] == stacks[tt][..., -1:]).all(axis=(1, 2, 3))
            age[tt] = np.where(refill, 0, np.minimum(age[tt - 1] + 1, k - 1))
        first = max(0, steps - 10)  # oldest step still held
        for i in np.flatnonzero(live & ~newest):
            ok = t[i] - age[t[i], e[i]] >= first and t[i] + 1 - age[t[i] + 1, e[i]] >= first
            assert w[i] == float(ok), (t[i], e[i])
            if ok:
                np.testing.assert_array_equal(s.item.obs[i], stacks[t[i], e[i]])
                np.testing.assert_array_equal(s.next_item.obs[i], stacks[t[i] + 1, e[i]])
        assert (w[live & ~newest] == 0).sum() <= (k - 1) * num_envs  # at most the k-1 oldest rows of each env
        if steps > 10:
            assert (w[live & ~newest] == 0).any()  # some of the oldest rows lost their older frames
        # sample() draws from the same slots, with the same weights and stacks (read_all is in slot order)
        smp = jax.jit(buf.sample, static_argnums=2)(rs, jax.random.key(0), 256)
        idx = np.asarray(smp.index)
        np.testing.assert_array_equal(smp.weight, w[idx])
        good = w[idx] > 0
        np.testing.assert_array_equal(np.asarray(smp.item.obs)[good], stacks[t[idx], e[idx]][good])

    def test_a_stack_that_does_not_continue_the_stored_frames_gets_weight_zero(self):
        k = 4
        stacks = _frame_stream(
            np.random.RandomState(1), 12, 1, k, refill_p=0.0, static_p=0.0, break_at=(5, 0)
        )
        buf = replay.make_replay(
            20, F(jnp.zeros((2, 2, k), jnp.uint8), jnp.zeros((), jnp.int32)), num_envs=1, frames="obs"
        )
        rs = self._fill(buf, stacks)
        # steps 5..7 hold a changed copy of frame 4 (1, 2, 3 steps back): not rebuilt; step 8 onwards
        # only holds frames stored since; step 0 was a refill, 1..4 continue it
        np.testing.assert_array_equal(np.asarray(rs.age)[:12, 0], [0, 1, 2, 3, 3, -1, -1, -1, 3, 3, 3, 3])
        s = self._read_all(buf, rs)
        w = np.asarray(s.weight)[:12]
        np.testing.assert_array_equal(w, [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1])
        for i in np.flatnonzero(w):
            np.testing.assert_array_equal(s.item.obs[i], stacks[i, 0])

    def test_ages_match_the_rule_read_from_the_store_and_the_ring_mirrors_it(self):
        # add() takes the previous rows' frames from the small ring (state.recent), not from the store:
        # the ages it writes are those the store's own rows give (the rule in "Frame stacks", computed
        # here in numpy from the store before each add), across refills, a broken stack and wrap-around
        k, num_envs, rows = 4, 2, 7
        stacks = _frame_stream(np.random.RandomState(3), 30, num_envs, k, break_at=(11, 1))
        buf = replay.make_replay(
            rows * num_envs, F(jnp.zeros((2, 2, k), jnp.uint8), jnp.zeros((), jnp.int32)), num_envs=num_envs,
            frames="obs",
        )  # fmt: skip
        assert buf.frames_nbytes == (k - 1) * num_envs * 4
        assert buf.nbytes == buf.capacity * buf.bytes_per_transition + buf.frames_nbytes
        add, rs, seen = jax.jit(buf.add), buf.init(), set()
        for t in range(stacks.shape[0]):
            store, age_store = np.asarray(rs.data.obs), np.asarray(rs.age)
            pos, size = int(rs.position), int(rs.size)
            prev = [store[(pos - j) % rows] for j in range(1, k)]  # the store's rows 1..k-1 back
            np.testing.assert_array_equal(np.asarray(rs.recent), np.stack(prev))
            want = []
            for e in range(num_envs):
                st = stacks[t, e]
                pa = age_store[(pos - 1) % rows, e]
                a = min(pa + 1, k - 1) if pa >= 0 else k - 1
                a = 0 if (st == st[..., -1:]).all() else a
                lagged = [st[..., -1]] + [p[e] for p in prev]
                chans = [lagged[min(j, a)] for j in range(k - 1, -1, -1)]
                want.append(a if (np.stack(chans, -1) == st).all() and a <= size else -1)
            rs = add(rs, F(jnp.asarray(stacks[t]), jnp.full((num_envs,), t, jnp.int32)))
            np.testing.assert_array_equal(np.asarray(rs.age)[pos], want, err_msg=f"step {t}")
            seen.update(want)
        assert seen == {-1, 0, 1, 2, 3}  # every case of the rule happened

    def test_add_writes_the_frame_store_in_place_inside_a_compiled_loop(self):
        # A read of the store in the step that writes it made XLA copy the whole store on every add
        # (twice, on CPU). The compiled scan of adds and samples must hold no copy of the store in its
        # loop body (the one copy left at top level is of the non-donated input).
        rows, k = 23, 4  # an odd shape, so the store's shape names it in the HLO
        buf = replay.make_replay(
            rows, F(jnp.zeros((5, 7, k), jnp.uint8), jnp.zeros((), jnp.int32)), successor=True, frames="obs"
        )

        def body(rs, key):
            stack = jax.random.randint(key, (1, 5, 7, k), 0, 256).astype(jnp.uint8)
            rs = buf.add(rs, F(stack, jnp.zeros((1,), jnp.int32)))
            return rs, buf.sample(rs, key, 8).item.obs.sum()

        run = jax.jit(lambda rs, key: jax.lax.scan(body, rs, jax.random.split(key, 5)))
        hlo = run.lower(buf.init(), jax.random.key(0)).compile().as_text()
        store = f"u8[{rows},1,5,7]"
        computation, in_loop = None, []
        for line in hlo.splitlines():
            if line and not line.startswith(" ") and line.rstrip().endswith("{"):
                computation = line
            elif store in line and " copy(" in line and not computation.startswith("ENTRY"):
                in_loop.append(line.strip())
        assert hlo.count("while(") >= 1 and store in hlo
        assert not in_loop, in_loop

    def test_frames_arguments_are_checked(self):
        ex = F(jnp.zeros((2, 2, 4), jnp.uint8), jnp.zeros((), jnp.int32))
        with pytest.raises(ValueError, match="field of a NamedTuple"):
            replay.make_replay(20, ex, frames="pixels")
        with pytest.raises(ValueError, match="more than 4 rows"):
            replay.make_replay(4, ex, frames="obs")
        with pytest.raises(ValueError, match=">= 2 frames"):
            replay.make_replay(20, ex._replace(obs=jnp.zeros((2, 2, 1), jnp.uint8)), frames="obs")
        buf = replay.make_replay(20, ex, frames="obs")
        with pytest.raises(ValueError, match="obs has shape"):
            buf.add(buf.init(), F(jnp.zeros((1, 2, 2, 3), jnp.uint8), jnp.zeros((1,), jnp.int32)))
