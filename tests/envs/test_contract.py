"""The environment contract (:mod:`jaxrl.envs.base`), checked the same way against every backend.

Each backend is a :class:`Backend` row: how to build it (``num_envs``, optional time limit) and what is
known about its dynamics (reset observations, the true successor of an observation, terminal states).
The checks are backend-agnostic: same-step reset (gymnax) and next-step reset with ``valid = False``
steps (envpool) both pass them. To add a backend, add a row to ``BACKENDS``.

Checked: spaces and the ``Env`` protocol; shapes and dtypes of every ``TimeStep`` field; reset
semantics; ``next_obs`` is the true successor of the acted-on observation (the true final observation
at an episode end) while ``obs`` restarts; ``terminated`` vs ``truncated`` at the time limit; invalid
steps; ``EpisodeStats`` returns and lengths against a recount; determinism of functional backends.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from jaxrl import envs
from jaxrl.envs import base

# ------------------------------------------------------------------------------- known dynamics


def cartpole_successor(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Gym's CartPole-v1 Euler step (gymnax and envpool both implement it): [B, 4], [B] -> [B, 4]."""
    x, x_dot, th, th_dot = (obs[:, i].astype(np.float64) for i in range(4))
    force = np.where(action == 1, 10.0, -10.0)
    cos, sin = np.cos(th), np.sin(th)
    temp = (force + 0.05 * th_dot**2 * sin) / 1.1
    th_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
    x_acc = temp - 0.05 * th_acc * cos / 1.1
    return np.stack([x + 0.02 * x_dot, x_dot + 0.02 * x_acc, th + 0.02 * th_dot, th_dot + 0.02 * th_acc], 1)


def cartpole_terminal(obs: np.ndarray) -> np.ndarray:
    return (np.abs(obs[:, 0]) > 2.4) | (np.abs(obs[:, 2]) > 12 * 2 * math.pi / 360)


def cartpole_reset(obs: np.ndarray) -> np.ndarray:
    return np.all(np.abs(obs) <= 0.05 + 1e-6, axis=1)


# A user-written gymnax environment (not registered anywhere): a corridor of LENGTH cells. Observation
# [position, 1] (2 features); action 1 moves right, 0 left (floored at 0); reaching the end pays +1 and
# terminates; a 10-step time limit truncates. A random walk ends both ways.
@struct.dataclass
class CorridorState(environment.EnvState):
    pos: jax.Array


@struct.dataclass
class CorridorParams(environment.EnvParams):
    max_steps_in_episode: int = 10


class Corridor(environment.Environment):
    LENGTH = 3

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def reset_env(self, key, params):
        return jnp.asarray([0.0, 1.0]), CorridorState(time=0, pos=jnp.asarray(0.0))

    def step_env(self, key, state, action, params):
        pos = jnp.maximum(state.pos + jnp.where(action == 1, 1.0, -1.0), 0.0)
        done = pos >= self.LENGTH
        s = CorridorState(time=state.time + 1, pos=pos)
        return jnp.stack([pos, jnp.asarray(1.0)]), s, done.astype(jnp.float32), done, {}

    def observation_space(self, params):
        return spaces.Box(0.0, float(self.LENGTH), (2,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(2)


def corridor_successor(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    return np.stack([np.maximum(obs[:, 0] + np.where(action == 1, 1.0, -1.0), 0.0), obs[:, 1]], 1)


# ------------------------------------------------------------------------------------ backends


@dataclasses.dataclass(frozen=True)
class Backend:
    """One environment backend under test, with what is known about its dynamics."""

    id: str
    #: ``make(num_envs, time_limit)`` -> Env; ``time_limit=None`` keeps the backend's default.
    make: Callable[[int, int | None], base.Env]
    #: [B, *obs] -> [B] bool: the observation is a possible first observation of an episode
    is_reset_obs: Callable[[np.ndarray], np.ndarray]
    #: ([B, *obs], [B] action) -> [B, *obs]: the true next observation (None: not checked)
    successor: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    #: [B, *obs] -> [B] bool: the observation is terminal (None: the env never terminates)
    is_terminal_obs: Callable[[np.ndarray], np.ndarray] | None
    #: the undiscounted return of an episode as a function of (length, terminated)
    episode_return: Callable[[int, bool], float]
    #: "same-step": obs is the next episode's first obs at an episode end (gymnax); "next-step": the
    #: ending step's obs is the final obs and the following step is the reset, ``valid = False`` (envpool)
    reset_style: str = "same-step"
    #: a module the backend needs (the test is skipped without it)
    requires: str | None = None


def _gymnax_cartpole(n: int, limit: int | None) -> base.Env:
    params = None if limit is None else gymnax.make("CartPole-v1")[1].replace(max_steps_in_episode=limit)
    return envs.make("CartPole-v1", n, params)


def _probe_endless(n: int, limit: int | None) -> base.Env:
    from jaxrl.envs import probes

    params = None if limit is None else probes.ProbeParams(max_steps_in_episode=limit)
    return envs.make("probe:EndlessTimeLimit", n, params)


def _user_corridor(n: int, limit: int | None) -> base.Env:
    return envs.make(Corridor(), n, None if limit is None else CorridorParams(max_steps_in_episode=limit))


def _envpool_cartpole(n: int, limit: int | None) -> base.Env:
    return envs.make("envpool:CartPole-v1", n, None if limit is None else {"max_episode_steps": limit})


BACKENDS = [
    Backend(
        "gymnax:CartPole-v1",
        _gymnax_cartpole,
        cartpole_reset,
        cartpole_successor,
        cartpole_terminal,
        episode_return=lambda length, term: float(length),
    ),
    Backend(
        "probe:EndlessTimeLimit",
        _probe_endless,
        is_reset_obs=lambda o: np.all(o == 0.0, axis=1),
        successor=lambda o, a: np.zeros_like(o),
        is_terminal_obs=None,
        episode_return=lambda length, term: float(length),
    ),
    Backend(
        "user-gymnax-instance",
        _user_corridor,
        is_reset_obs=lambda o: o[:, 0] == 0.0,
        successor=corridor_successor,
        is_terminal_obs=lambda o: o[:, 0] >= Corridor.LENGTH,
        episode_return=lambda length, term: 1.0 if term else 0.0,
    ),
    Backend(
        "envpool:CartPole-v1",
        _envpool_cartpole,
        cartpole_reset,
        cartpole_successor,
        cartpole_terminal,
        episode_return=lambda length, term: float(length),
        reset_style="next-step",
        requires="envpool",
    ),
]


@pytest.fixture(params=BACKENDS, ids=[b.id for b in BACKENDS])
def backend(request) -> Backend:
    b = request.param
    if b.requires:
        pytest.importorskip(b.requires, reason=f"backend {b.id} needs the optional package {b.requires!r}")
    return b


# ------------------------------------------------------------------------- reusable conformance


def random_actions(space: base.Space, num_envs: int, rng: np.random.Generator) -> jax.Array:
    if isinstance(space, base.Discrete):
        return jnp.asarray(rng.integers(0, space.n, size=num_envs), jnp.int32)
    low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape)
    return jnp.asarray(rng.uniform(low, high, size=(num_envs,) + tuple(space.shape)), jnp.float32)


def check_timestep(env: base.Env, ts: base.TimeStep) -> None:
    """Shapes and dtypes of every field: ``[B, *obs_shape]`` observations, ``[B]`` the rest."""
    assert isinstance(ts, base.TimeStep)
    b, obs_shape = env.num_envs, tuple(env.observation_space.shape)
    for name in ("obs", "next_obs"):
        x = getattr(ts, name)
        assert x.shape == (b,) + obs_shape, f"{name}: {x.shape} != {(b,) + obs_shape}"
        assert x.dtype == jnp.dtype(env.observation_space.dtype), f"{name}: dtype {x.dtype}"
    assert ts.reward.shape == (b,) and ts.reward.dtype == jnp.float32, (ts.reward.shape, ts.reward.dtype)
    for name in ("terminated", "truncated", "valid"):
        x = getattr(ts, name)
        assert x.shape == (b,) and x.dtype == jnp.bool_, f"{name}: {x.shape} {x.dtype}"
    assert ts.done.shape == (b,)
    assert np.all(np.isfinite(np.asarray(ts.reward)))


_BUILT: dict[tuple, tuple[Any, Callable, Callable]] = {}


def built(b: Backend, time_limit: int | None = None, *, stats: bool = False, num_envs: int = 4):
    """``(env, jit(env.reset), jit(env.step))``, built once per test session (compiling is the cost)."""
    k = (b.id, time_limit, stats, num_envs)
    if k not in _BUILT:
        env = b.make(num_envs, time_limit)
        env = envs.EpisodeStats(env) if stats else env
        _BUILT[k] = (env, jax.jit(env.reset), jax.jit(env.step))
    return _BUILT[k]


def collect(env: Any, num_steps: int, seed: int = 0, fns: tuple[Callable, Callable] | None = None):
    """Reset, then ``num_steps`` steps with uniformly random actions (jitted reset/step, or ``fns``).

    Returns the env states (index 0 after reset), time steps (index 0 is the reset's) and actions.
    """
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    reset, step = fns or (jax.jit(env.reset), jax.jit(env.step))
    key, k = jax.random.split(key)
    state, ts = reset(k)
    states, tss, actions = [state], [ts], []
    for _ in range(num_steps):
        key, k = jax.random.split(key)
        a = random_actions(env.action_space, env.num_envs, rng)
        state, ts = step(state, a, k)
        states.append(state)
        tss.append(ts)
        actions.append(np.asarray(a))
    return states, tss, actions


def check_transitions(b: Backend, env: base.Env, tss: list[base.TimeStep], actions: list[np.ndarray]) -> None:
    """Every transition obeys the contract (see the module docstring of :mod:`jaxrl.envs.base`)."""
    np_ts = [jax.tree_util.tree_map(np.asarray, ts) for ts in tss]
    fresh = np.ones(env.num_envs, bool)  # the next valid action starts an episode
    for t in range(1, len(np_ts)):
        prev, ts, a = np_ts[t - 1], np_ts[t], actions[t - 1]
        check_timestep(env, tss[t])
        done = ts.terminated | ts.truncated
        where = f"{b.id}, step {t}"
        assert not np.any(ts.terminated & ts.truncated), f"{where}: terminated and truncated together"
        # next_obs == obs unless an episode ended
        np.testing.assert_array_equal(ts.next_obs[~done], ts.obs[~done], err_msg=f"{where}: next_obs != obs")
        # an invalid step (next-step reset) ignores the action: reward 0, no episode end, after an end
        inv = ~ts.valid
        assert np.all(ts.reward[inv] == 0.0) and not np.any(done[inv]), f"{where}: invalid step carries data"
        assert np.all((prev.terminated | prev.truncated)[inv]), (
            f"{where}: invalid step not after an episode end"
        )
        # the first valid action of an episode acts on a reset observation
        acted = prev.obs
        starts = fresh & ts.valid
        assert np.all(b.is_reset_obs(acted[starts])), f"{where}: episode does not start from a reset obs"
        # next_obs is the true successor of the acted-on observation (the final one at an episode end)
        if b.successor is not None:
            v = ts.valid
            np.testing.assert_allclose(
                ts.next_obs[v],
                b.successor(acted[v], a[v]),
                rtol=1e-4,
                atol=1e-4,
                err_msg=f"{where}: next_obs",
            )
        if b.is_terminal_obs is not None:
            v = ts.valid
            np.testing.assert_array_equal(
                ts.terminated[v],
                b.is_terminal_obs(ts.next_obs[v]),
                err_msg=f"{where}: terminated vs terminal obs",
            )
        else:
            assert not np.any(ts.terminated), f"{where}: a never-terminating env terminated"
        ended = done & ts.valid
        if b.reset_style == "same-step":
            # at an episode end, obs is already the next episode's first observation; no invalid steps
            assert np.all(ts.valid), f"{where}: a same-step backend reported an invalid step"
            assert np.all(b.is_reset_obs(ts.obs[ended])), (
                f"{where}: obs after an episode end is not a reset obs"
            )
        else:
            # the ending step shows the final obs; the next step (the reset) is invalid
            np.testing.assert_array_equal(
                ts.obs[ended], ts.next_obs[ended], err_msg=f"{where}: obs at an end"
            )
            if t + 1 < len(np_ts):
                assert not np.any(np_ts[t + 1].valid[ended]), f"{where}: the step after an end is valid"
        fresh = np.where(ts.valid, done, fresh | ~ts.valid)


def episodes(tss: list[base.TimeStep]) -> list[tuple[int, int, float, bool, bool]]:
    """Recount finished episodes from the raw stream: ``(env, end step, return, terminated, length)``."""
    np_ts = [jax.tree_util.tree_map(np.asarray, ts) for ts in tss[1:]]
    num_envs = np_ts[0].reward.shape[0]
    ret, length = np.zeros(num_envs), np.zeros(num_envs, int)
    out = []
    for t, ts in enumerate(np_ts, start=1):
        ret += np.where(ts.valid, ts.reward, 0.0)
        length += ts.valid
        ended = (ts.terminated | ts.truncated) & ts.valid
        for i in np.flatnonzero(ended):
            out.append((int(i), t, float(ret[i]), bool(ts.terminated[i]), int(length[i])))
        ret[ended], length[ended] = 0.0, 0
    return out


# ----------------------------------------------------------------------------------------- tests


def test_spaces_and_protocol(backend):
    env = built(backend)[0]
    assert isinstance(env, base.Env)
    assert env.num_envs == 4
    assert isinstance(env.observation_space, base.Box)
    assert isinstance(env.action_space, base.Discrete | base.Box)
    assert isinstance(env.max_episode_steps, int) and env.max_episode_steps > 0
    assert isinstance(env.stateful, bool)
    assert backend.make(4, 7).max_episode_steps == 7


def test_reset(backend):
    env, reset, _ = built(backend)
    state, ts = reset(jax.random.key(3))
    check_timestep(env, ts)
    ts = jax.tree_util.tree_map(np.asarray, ts)
    assert np.all(ts.reward == 0.0)
    assert not np.any(ts.terminated) and not np.any(ts.truncated)
    assert np.all(ts.valid)
    np.testing.assert_array_equal(ts.next_obs, ts.obs)
    assert np.all(backend.is_reset_obs(ts.obs))
    if not env.stateful:  # functional backends: the key decides, and eager == jit
        _, again = env.reset(jax.random.key(3))
        np.testing.assert_array_equal(np.asarray(again.obs), ts.obs)


def test_transitions_follow_the_contract(backend):
    env, *fns = built(backend)
    _, tss, actions = collect(env, 120, seed=1, fns=fns)
    check_transitions(backend, env, tss, actions)
    eps = episodes(tss)
    assert eps, "no episode finished: the test would not check episode ends"
    if backend.is_terminal_obs is not None:
        assert any(e[3] for e in eps), "no episode terminated: the test would not check terminal steps"


def test_time_limit_truncates_and_termination_wins(backend):
    limit = 8
    env, *fns = built(backend, limit)
    _, tss, actions = collect(env, 4 * limit + 6, seed=2, fns=fns)
    check_transitions(backend, env, tss, actions)
    eps = episodes(tss)
    truncated = [e for e in eps if not e[3]]
    assert truncated, "no episode reached the time limit"
    for env_i, t, _, term, length in eps:
        assert length <= limit, f"env {env_i}: episode of {length} steps outlived the limit {limit}"
        if not term:
            assert length == limit, f"env {env_i}: truncated at step {t} after {length} != {limit} steps"
    # no running episode passes the limit either
    running = np.zeros(env.num_envs, int)
    for ts in tss[1:]:
        ts = jax.tree_util.tree_map(np.asarray, ts)
        running += ts.valid
        assert np.all(running <= limit), f"an episode ran {running.max()} > {limit} steps without ending"
        running[(ts.terminated | ts.truncated) & ts.valid] = 0


def test_episode_stats_wrapper(backend):
    env, *fns = built(backend, 8, stats=True)
    states, tss, _ = collect(env, 60, seed=4, fns=fns)
    eps = episodes(tss)
    assert eps
    by_step = {(e[1], e[0]): e for e in eps}
    for t in range(1, len(states)):
        s = jax.tree_util.tree_map(np.asarray, states[t])
        assert s.episode_return.dtype == np.float32 and s.episode_length.dtype == np.int32
        for i in range(env.num_envs):
            ended = (t, i) in by_step
            assert bool(s.episode_end[i]) == ended, f"step {t} env {i}: episode_end"
            if ended:
                _, _, ret, term, length = by_step[(t, i)]
                assert s.returned_episode_return[i] == pytest.approx(ret)
                assert s.returned_episode_length[i] == length
                assert ret == pytest.approx(backend.episode_return(length, term))
                assert s.episode_return[i] == 0.0 and s.episode_length[i] == 0


def test_functional_backends_are_deterministic(backend):
    env, reset, step = built(backend)
    if env.stateful:
        pytest.skip(f"{backend.id} holds state outside JAX; its randomness is seeded at pool creation")
    _, a, _ = collect(env, 30, seed=5, fns=(reset, step))
    _, b, _ = collect(env, 30, seed=5, fns=(reset, step))
    for x, y in zip(a, b, strict=True):
        jax.tree_util.tree_map(np.testing.assert_array_equal, x, y)
    _, c, _ = collect(env, 30, seed=6, fns=(reset, step))
    assert not all(np.array_equal(x.obs, y.obs) for x, y in zip(a, c, strict=True)) or backend.id.startswith(
        "probe"
    )
    # eager and jit agree
    state, _ = env.reset(jax.random.key(0))
    act = jnp.ones((env.num_envs,) + tuple(getattr(env.action_space, "shape", ())), env.action_space.dtype)
    eager = env.step(state, act, jax.random.key(1))
    jax.tree_util.tree_map(np.testing.assert_array_equal, eager, step(state, act, jax.random.key(1)))
