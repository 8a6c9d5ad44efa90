"""envpool backend: C++ thread-pool environments (Atari, MuJoCo, classic control) stepped inside ``jax.jit``.

Names ``"envpool:<Task>"`` (``envpool:Pong-v5``, ``envpool:Breakout-v5``, ``envpool:HalfCheetah-v4``,
``envpool:CartPole-v1``, ...) select this backend; it needs the optional extra ``pip install
'jaxrl[envpool]'`` (envpool 1.2.5, Linux x86-64). Stepping goes through envpool's XLA custom calls, so
``lax.scan`` rollouts run without leaving the compiled program, on CPU and on GPU.

The contract (:mod:`jaxrl.envs.base`) with envpool's *next-step* reset:
  envpool resets an environment on the step *after* its episode ended, ignoring that step's action.
  The adapter reports the ending step normally (``terminated``/``truncated`` from envpool's gymnasium
  flags, ``next_obs == obs`` = the true final observation) and marks the following step
  ``valid = False`` with reward 0 and ``terminated = truncated = False``. Algorithms already give such
  steps zero weight and cut traces there.

Atari (DQN-paper preprocessing, all done inside envpool): grey 84x84 frames, a stack of the last 4,
action repeat 4 (max over the last two frames), up to 30 no-op starts, fire on reset, 27,000-step
(108k-frame) time limit, minimal action set, no sticky actions. Training adds episodic life (a lost life
is ``terminated``) and reward clipping to {-1, 0, 1}; ``evaluation=True`` (used by ``jaxrl.evaluate``)
turns both off, so evaluation returns are full-game raw scores. Observations are ``uint8 [84, 84, 4]``
(channels last, as :class:`jaxrl.networks.cnn.NatureCNN` expects) and stay uint8. During training the
episode statistics (``EpisodeStats``, hence ``metrics.episode_return``) also count full games with raw
scores, through :meth:`EnvpoolEnv.episode_signal`, as CleanRL reports them.

Limits, because envpool's state lives outside JAX (``stateful = True``):
  * The env "state" in JAX is only a token (envpool's handle) that orders the calls, plus the flags
    above. Checkpointing a training state does not checkpoint the environments.
  * One pool per (task, num_envs, options, seed) per process, created on first use and shared by every
    function traced after that (init, train_step, ...), and never freed (compiled programs keep its
    address). Two runs that would need separate copies of the same pool are refused:
    ``jax.vmap`` over seeds or configs raises :class:`EnvpoolVmapError` at trace time (it would step one
    pool as if it were many). Run seeds as separate processes with ``EnvpoolParams(seed=...)``.
  * Keys are ignored: envpool seeds environment ``i`` with ``seed + i`` when the pool is created
    (``EnvpoolParams.seed``, default 0; evaluation pools use ``seed + EVAL_SEED_OFFSET``). A second run
    in the same process continues the pool's random streams; :func:`clear_pools` makes later runs build
    fresh pools (same seed, same episodes) for exact reproducibility.
  * ``reset`` calls envpool's ``async_reset`` from the host (an ordered ``io_callback``) at run time, so a
    compiled program can be re-run; call it once at the start of a program, not between its steps.
  * MuJoCo tasks carry float64 observations and actions. JAX (without x64) has no float64, so the adapter
    declares those buffers to XLA as pairs of uint32 words with the same bytes and converts them to and
    from float32 in the program (``_f64_words_to_f32``/``_f32_to_f64_words``); envpool's own
    ``env.xla()`` would hand XLA float32 buffers of half the size and corrupt memory.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching
from jax.experimental import io_callback

from jaxrl.envs import base

#: Evaluation pools are seeded ``seed + EVAL_SEED_OFFSET`` so their episodes differ from training's.
EVAL_SEED_OFFSET = 1_000_000

#: Atari settings of the DQN paper (Mnih et al. 2015) that envpool's defaults already give, pinned
#: here so a change of envpool defaults cannot change them silently.
ATARI_OPTIONS: dict[str, Any] = {
    "img_height": 84,
    "img_width": 84,
    "gray_scale": True,
    "stack_num": 4,
    "frame_skip": 4,
    "noop_max": 30,
    "use_fire_reset": True,
    "max_episode_steps": 27_000,  # 108k frames (30 minutes of play)
    "repeat_action_probability": 0.0,
    "full_action_space": False,
}
#: ... plus what differs between training and evaluation.
ATARI_TRAIN_OPTIONS: dict[str, Any] = {"episodic_life": True, "reward_clip": True}
ATARI_EVAL_OPTIONS: dict[str, Any] = {"episodic_life": False, "reward_clip": False}

# Options the adapter owns; setting them through EnvpoolParams.options would break the contract.
_RESERVED = {
    "num_envs": "the num_envs argument",
    "batch_size": "none (async mode is unsupported)",
    "seed": "EnvpoolParams.seed",
    "env_seed": "EnvpoolParams.seed",
    "max_num_players": "none (single-agent only)",
    "gym_reset_return_info": "none",
}


class EnvpoolVmapError(ValueError):
    """Raised when an envpool environment is traced under ``jax.vmap``."""


@dataclasses.dataclass(frozen=True)
class EnvpoolParams:
    """envpool settings for ``Config.env_params`` (hashable, so it can sit in a static config field).

    seed:    pool seed; environment ``i`` gets ``seed + i`` (keys passed to ``reset``/``step`` are ignored).
    options: extra ``envpool.make`` options as a dict or ``(name, value)`` pairs, e.g.
             ``{"noop_max": 0}`` or ``{"num_threads": 8}``; they override the Atari presets
             (``ATARI_OPTIONS``, ``ATARI_TRAIN_OPTIONS``) for training. Evaluation pools use the same
             options except that episodic life and reward clipping are always off.
    """

    seed: int = 0
    options: Any = ()

    def __post_init__(self):
        opts = self.options
        items = opts.items() if isinstance(opts, dict) else tuple(opts)
        for name, _ in items:
            if name in _RESERVED:
                raise ValueError(
                    f"EnvpoolParams.options may not set {name!r}: the adapter sets it (use {_RESERVED[name]})"
                )
        object.__setattr__(self, "options", tuple(sorted((str(k), v) for k, v in items)))
        if not -(2**31) <= int(self.seed) < 2**31 - EVAL_SEED_OFFSET:
            raise ValueError(
                f"EnvpoolParams.seed must fit in int32 (with room for the eval offset), got {self.seed}"
            )


class EnvpoolState(NamedTuple):
    """What JAX carries for an envpool batch; all ``[B]`` except the handle."""

    handle: jax.Array  # [8] uint8 envpool's token: threading it orders the send/recv calls
    resetting: jax.Array  # [B] bool the last step ended an episode (or life): envpool resets next step
    score_reward: jax.Array  # [B] float32 last step's raw (unclipped) reward, for episode statistics
    score_end: jax.Array  # [B] bool last step ended a whole game (not just a life), for statistics


# ------------------------------------------------------------------------------------ importing
def _import_envpool() -> Any:
    try:
        import envpool
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "envpool environments ('envpool:<Task>') need the optional extra: pip install 'jaxrl[envpool]' "
            "(envpool==1.2.5, Linux x86-64). Or use a gymnax environment name instead."
        ) from e
    return envpool


def task_names() -> list[str]:
    """Every task envpool provides (use as ``"envpool:" + name``)."""
    return list(_import_envpool().list_all_envs())


def _check_task(task: str) -> None:
    names = task_names()
    if task not in names:
        close = difflib.get_close_matches(task, names, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join('envpool:' + c for c in close)}?" if close else ""
        raise ValueError(f"Unknown envpool task {task!r}.{hint} See jaxrl.envs.envpool.task_names().")


def _as_params(env_params: Any) -> EnvpoolParams:
    if env_params is None:
        return EnvpoolParams()
    if isinstance(env_params, EnvpoolParams):
        return env_params
    if isinstance(env_params, dict):
        opts = dict(env_params)
        return EnvpoolParams(seed=int(opts.pop("seed", 0)), options=opts)
    raise TypeError(
        f"env_params for an envpool environment must be EnvpoolParams (or a dict of envpool options), "
        f"got {type(env_params).__name__}"
    )


def make_options(task: str, params: EnvpoolParams, num_envs: int, evaluation: bool) -> dict[str, Any]:
    """The ``envpool.make`` keyword arguments for a pool (presets, then user options, then eval overrides)."""
    spec_fields = _import_envpool().make_spec(task).config._fields
    opts: dict[str, Any] = {}
    if "episodic_life" in spec_fields:  # an Atari task
        opts.update(ATARI_OPTIONS)
        opts.update(ATARI_TRAIN_OPTIONS)
    opts.update(dict(params.options))
    if evaluation and "episodic_life" in spec_fields:
        opts.update(ATARI_EVAL_OPTIONS)
    opts.update(num_envs=int(num_envs), batch_size=int(num_envs))
    opts["seed"] = int(params.seed) + (EVAL_SEED_OFFSET if evaluation else 0)
    return opts


# ------------------------------------------------------------------------ float64 without x64
# XLA sees a float64 [..] buffer as uint32 [.., 2]: (low word, high word) on little-endian hosts.
def _f64_words_to_f32(w: jax.Array) -> jax.Array:
    """``uint32 [..., 2]`` IEEE-754 binary64 words -> nearest ``float32 [...]`` (subnormals -> 0)."""
    lo, hi = w[..., 0], w[..., 1]
    negative = (hi >> 31) == 1
    exp = ((hi >> 20) & 0x7FF).astype(jnp.int32)
    # 52-bit fraction = 20 high bits + 32 low bits; float32 keeps the leading 24 (rounded by the add).
    frac = (hi & 0xFFFFF).astype(jnp.float32) * 2.0**-20 + lo.astype(jnp.float32) * 2.0**-52
    mag = jnp.ldexp(1.0 + frac, jnp.clip(exp - 1023, -200, 200))  # under/overflow -> 0/inf
    mag = jnp.where(exp == 0, 0.0, mag)
    mag = jnp.where(exp == 0x7FF, jnp.where(frac == 0, jnp.inf, jnp.nan), mag)
    return jnp.where(negative, -mag, mag).astype(jnp.float32)


def _f32_to_f64_words(x: jax.Array) -> jax.Array:
    """``float32 [...]`` -> its exact binary64 as ``uint32 [..., 2]`` words (subnormals -> 0)."""
    b = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    sign = b & jnp.uint32(0x80000000)
    exp = (b >> 23) & jnp.uint32(0xFF)
    mant = jnp.where(exp == 0, jnp.uint32(0), b & jnp.uint32(0x7FFFFF))
    exp64 = jnp.where(
        exp == 0, jnp.uint32(0), jnp.where(exp == 0xFF, jnp.uint32(0x7FF), exp + jnp.uint32(896))
    )
    hi = sign | (exp64 << 20) | (mant >> 3)
    lo = (mant & jnp.uint32(7)) << 29
    return jnp.stack([lo, hi], axis=-1)


# ---------------------------------------------------------------------------------------- pools
class _Pool:
    """One envpool instance and typed XLA calls into it (send, recv), built once and never freed."""

    def __init__(self, task: str, options: dict[str, Any]):
        from jax import ffi

        envpool = _import_envpool()
        if sys.byteorder != "little":  # pragma: no cover
            raise RuntimeError("the envpool adapter supports little-endian hosts only")
        self.env = envpool.make(task, env_type="gymnasium", **options)
        self.num_envs = int(options["num_envs"])
        self.x64 = bool(jax.config.jax_enable_x64)
        self.state_keys = list(self.env._state_keys)
        self.calls: dict[str, Any] = {}
        self.wire: dict[str, list[tuple[tuple[int, ...], Any, Any]]] = {}
        for name, (handle, (in_specs, out_specs), (cpu, gpu)) in self.env._xla():
            target = f"jaxrl_envpool_{id(self)}_{name}"
            ffi.register_ffi_target(target, cpu, platform="cpu", api_version=1)
            if gpu is not None:
                ffi.register_ffi_target(target, gpu, platform="gpu", api_version=1)
            ins = [self._wire_spec(d, s) for d, s in in_specs]
            outs = [self._wire_spec(d, s) for d, s in out_specs]
            self.wire[name] = outs
            result = tuple(jax.ShapeDtypeStruct(s, wd) for s, wd, _ in outs)
            call = ffi.ffi_call(
                target,
                result if len(result) > 1 else result[0],
                has_side_effect=True,
                input_layouts=tuple(tuple(range(len(s))) for s, _, _ in ins),
                output_layouts=tuple(tuple(range(len(s))) for s, _, _ in outs)
                if len(outs) > 1
                else tuple(range(len(outs[0][0]))),
                input_output_aliases={0: 0},
            )
            self.calls[name] = (call, int.from_bytes(handle, byteorder=sys.byteorder, signed=False))
            self.handle0 = np.frombuffer(handle, dtype=np.uint8).copy()
        self.action_dtype = np.dtype(self.env.spec.action_array_spec["action"].dtype)

    def _wire_spec(self, dtype: Any, shape: Any) -> tuple[tuple[int, ...], Any, Any]:
        """(shape, dtype XLA sees, true dtype): 8-byte types become uint32 word pairs without x64."""
        dtype, shape = np.dtype(dtype), tuple(int(d) for d in shape)
        if dtype.itemsize == 8 and not self.x64:
            return shape + (2,), np.dtype(np.uint32), dtype
        return shape, dtype, dtype

    def _call(self, name: str, *args: Any) -> Any:
        call, handle = self.calls[name]
        return call(*args, handle=handle)

    def recv(self, handle: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        outs = self._call("recv", handle)
        values = {}
        for key, x, (_, wire_dtype, true_dtype) in zip(
            self.state_keys, outs[1:], self.wire["recv"][1:], strict=True
        ):
            values[key] = _from_wire(x, wire_dtype, true_dtype)
        return outs[0], values

    def send(self, handle: jax.Array, action: jax.Array) -> jax.Array:
        ids = jnp.arange(self.num_envs, dtype=jnp.int32)
        if self.action_dtype.itemsize == 8 and not self.x64:
            if self.action_dtype.kind != "f":
                raise TypeError(
                    f"unsupported 64-bit integer action dtype {self.action_dtype} without jax x64"
                )
            wire = _f32_to_f64_words(action)
        else:
            wire = action.astype(self.action_dtype)
        return self._call("send", handle, ids, ids, wire)

    def host_reset(self, handle: np.ndarray) -> np.ndarray:
        """Runs on the host at run time (io_callback): start a reset of every environment."""
        self.env.async_reset()
        return np.asarray(handle)


def _from_wire(x: jax.Array, wire_dtype: Any, true_dtype: Any) -> jax.Array:
    if wire_dtype == true_dtype:
        return x
    if true_dtype.kind == "f":
        return _f64_words_to_f32(x)
    return x[..., 0].astype(jnp.int32)  # 64-bit integers: the low word


_POOLS: dict[tuple, _Pool] = {}
_RETIRED: list[_Pool] = []  # pools dropped by clear_pools, kept alive for programs compiled against them


def _pool_for(task: str, options: dict[str, Any]) -> _Pool:
    key = (task, tuple(sorted(options.items())))
    if key not in _POOLS:
        _POOLS[key] = _Pool(task, options)
    return _POOLS[key]


def clear_pools() -> None:
    """Make later traces build fresh pools (same seeds: the same episodes again). Programs traced
    earlier keep using their old pools, which stay alive; use this between runs, e.g. in tests."""
    _RETIRED.extend(_POOLS.values())
    _POOLS.clear()


# --------------------------------------------------------------------------- vmap refusal
def _refuse_vmap(what: str):
    def rule(axis_size, in_batched, *args):
        raise EnvpoolVmapError(
            f"{what} was traced under jax.vmap. envpool environments hold their state outside JAX (one "
            f"C++ pool per process), so a vmap over seeds or configs would step ONE pool as if it were "
            f"{axis_size}. Run one training run per process instead (different seeds via "
            f"EnvpoolParams(seed=...)), or raise num_envs; use a gymnax environment to vmap over seeds."
        )

    return rule


# ---------------------------------------------------------------------------------------- adapter
class EnvpoolEnv(base.Env):
    """``num_envs`` envpool environments of ``task`` behind the :mod:`jaxrl.envs.base` contract.

    ``env_params``: :class:`EnvpoolParams` (seed and envpool options) or None for the defaults.
    ``evaluation``: Atari only: no episodic life, no reward clipping (full-game raw scores).
    Building one is cheap (a spec); the pool itself is created when ``reset``/``step`` is first traced.
    """

    stateful = True

    def __init__(self, task: str, num_envs: int, env_params: Any = None, *, evaluation: bool = False):
        envpool = _import_envpool()
        _check_task(task)
        self.task = task
        self.name = "envpool:" + task
        self.num_envs = int(num_envs)
        self.params = _as_params(env_params)
        self.evaluation = bool(evaluation)
        self.options = make_options(task, self.params, self.num_envs, self.evaluation)
        try:
            spec = envpool.make_spec(task, **self.options)
        except TypeError as e:
            raise ValueError(f"envpool task {task!r} rejected the options {self.params.options}: {e}") from e
        cfg = spec.config
        self.is_atari = "episodic_life" in cfg._fields
        # Atari with grey frames: a stack of stack_num frames (base.Env.frame_stack; DQNConfig.dedup_frames)
        self.frame_stack = int(cfg.stack_num) if self.is_atari and cfg.gray_scale else 0
        self.max_episode_steps = int(cfg.max_episode_steps)
        self.observation_space, self._channels_last = _obs_space(spec.state_array_spec)
        self.action_space = _action_space(spec.action_array_spec["action"])

    # The pool is looked up at trace time, so configs can build EnvpoolEnv objects freely.
    def _pool(self) -> _Pool:
        return _pool_for(self.task, self.options)

    def _timestep(self, values: dict[str, jax.Array], valid: jax.Array) -> tuple[base.TimeStep, Any]:
        obs = values["obs"]
        if self._channels_last:
            obs = jnp.moveaxis(obs, 1, -1)  # [B, C, H, W] -> [B, H, W, C]
        if obs.dtype != self.observation_space.dtype:
            obs = obs.astype(self.observation_space.dtype)
        done = jnp.logical_and(values["done"].astype(bool), valid)
        trunc = jnp.logical_and(values["trunc"].astype(bool), done)
        reward = jnp.where(valid, values["reward"].astype(jnp.float32), 0.0)
        ts = base.TimeStep(
            obs=obs,
            reward=reward,
            terminated=jnp.logical_and(done, ~trunc),
            truncated=trunc,
            next_obs=obs,
            valid=valid,
        )
        if self.is_atari:
            score_reward = jnp.where(valid, values["info:reward"].astype(jnp.float32), 0.0)
            score_end = jnp.logical_and(done, jnp.logical_or(values["info:terminated"] != 0, trunc))
        else:
            score_reward, score_end = reward, done
        return ts, (done, score_reward, score_end)

    def reset(self, key: jax.Array) -> tuple[EnvpoolState, base.TimeStep]:
        """Reset every environment (``key`` is ignored: envpool was seeded at pool creation)."""
        pool = self._pool()

        @custom_batching.custom_vmap
        def _reset(key):
            del key  # only here so that a vmap over keys reaches the refusal below
            spec = jax.ShapeDtypeStruct(pool.handle0.shape, jnp.uint8)
            handle = io_callback(pool.host_reset, spec, pool.handle0, ordered=True)
            return pool.recv(handle)

        _reset.def_vmap(_refuse_vmap(f"{self.name}: reset"))
        handle, values = _reset(key)
        valid = jnp.ones((self.num_envs,), bool)
        ts, (_, score_reward, score_end) = self._timestep(values, valid)
        false = jnp.zeros((self.num_envs,), bool)
        return EnvpoolState(handle, false, score_reward, score_end), ts

    def step(
        self, state: EnvpoolState, action: jax.Array, key: jax.Array
    ) -> tuple[EnvpoolState, base.TimeStep]:
        """One step of every environment; a step right after an episode end is envpool's reset step:
        its action is ignored and it comes back ``valid = False``."""
        del key
        pool = self._pool()

        @custom_batching.custom_vmap
        def _step(handle, action):
            return pool.recv(pool.send(handle, action))

        _step.def_vmap(_refuse_vmap(f"{self.name}: step"))
        handle, values = _step(state.handle, action)
        ts, (done, score_reward, score_end) = self._timestep(values, ~state.resetting)
        return EnvpoolState(handle, done, score_reward, score_end), ts

    def episode_signal(self, state: EnvpoolState, ts: base.TimeStep) -> tuple[jax.Array, jax.Array]:
        """``(reward [B], ended [B])`` for episode statistics: raw scores and whole games on Atari
        (a lost life ends a *training* episode, not a game); the TimeStep's own values otherwise."""
        del ts
        return state.score_reward, state.score_end


def _obs_space(state_spec: dict[str, Any]) -> tuple[base.Box, bool]:
    if "obs" not in state_spec:
        obs_keys = [k for k in state_spec if k.startswith("obs")]
        raise ValueError(
            f"jaxrl supports envpool tasks with a single array observation; this one has {obs_keys}"
        )
    spec = state_spec["obs"]
    shape, dtype = tuple(int(d) for d in spec.shape), np.dtype(spec.dtype)
    channels_last = dtype == np.uint8 and len(shape) == 3 and shape[0] < min(shape[1:])
    if channels_last:
        shape = shape[1:] + shape[:1]
    if dtype.kind == "f":
        dtype = np.dtype(np.float32)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape)
    else:
        low, high = np.asarray(spec.minimum, dtype), np.asarray(spec.maximum, dtype)
        if low.ndim:
            low, high = np.moveaxis(low, 0, -1), np.moveaxis(high, 0, -1)
    return base.Box(low, high, shape, jnp.dtype(dtype)), channels_last


def _action_space(spec: Any) -> base.Space:
    dtype = np.dtype(spec.dtype)
    shape = tuple(int(d) for d in spec.shape)[1:]  # drop the [-1] batch axis
    if dtype.kind in "iu" and not shape:
        if int(spec.minimum) != 0:
            raise ValueError(f"envpool discrete actions must start at 0, got minimum {spec.minimum}")
        return base.Discrete(int(spec.maximum) + 1)
    if dtype.kind == "f":
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape)
        return base.Box(low, high, shape, jnp.float32)
    raise ValueError(f"unsupported envpool action spec {spec}")
