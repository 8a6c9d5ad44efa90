"""envpool adapter: the contract against envpool's own numpy API, Atari/MuJoCo specifics, the limits."""

import subprocess
import sys

import numpy as np
import pytest

envpool = pytest.importorskip("envpool")
pytestmark = pytest.mark.filterwarnings("ignore:.*precision lowered by casting:UserWarning")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxrl  # noqa: E402
from jaxrl import envs, replay  # noqa: E402
from jaxrl.algos import dqn, ppo  # noqa: E402
from jaxrl.envs import envpool as ep  # noqa: E402


def _run(env, actions):
    """jit(reset + scan of step) over ``actions [T, B, ...]``: (first TimeStep, [T] TimeSteps, [T] states)."""

    @jax.jit
    def run(actions):
        state, ts0 = env.reset(jax.random.key(0))

        def body(s, a):
            s, ts = env.step(s, a, jax.random.key(0))
            return s, (ts, s)

        return ts0, jax.lax.scan(body, state, actions)[1]

    ts0, (traj, states) = run(jnp.asarray(actions))
    return jax.tree_util.tree_map(np.asarray, (ts0, traj, states))


def _reference(task, options, actions):
    """Plain-Python reference: envpool's numpy gymnasium API, mapped by hand onto the contract
    (a step right after an episode end is envpool's reset step: invalid, reward 0, no end flags)."""
    env = envpool.make(task, env_type="gymnasium", **options)
    obs0, _ = env.reset()
    out, resetting = [], np.zeros(options["num_envs"], bool)
    dtype = env.spec.action_array_spec["action"].dtype
    for a in actions:
        obs, r, term, trunc, _ = env.step(np.asarray(a).astype(dtype))
        valid = ~resetting
        out.append((obs, np.where(valid, r, 0.0), term & valid, trunc & valid, valid))
        resetting = (term | trunc) & valid
    return obs0, out


def _channels_first(obs):
    return np.moveaxis(obs, -1, 1) if obs.ndim == 4 else obs


@pytest.fixture(autouse=True)
def _fresh_pools():
    ep.clear_pools()
    yield
    ep.clear_pools()


# ------------------------------------------------------------------------------------ contract
def test_cartpole_matches_reference_with_invalid_reset_steps():
    env = envs.make("envpool:CartPole-v1", 3, ep.EnvpoolParams(seed=7, options={"max_episode_steps": 12}))
    rng = np.random.RandomState(0)
    # env 0 always pushes left (falls fast: terminated), env 1 alternates (survives 12 steps:
    # truncated), env 2 random
    actions = np.stack([np.zeros(40), np.arange(40) % 2, rng.randint(0, 2, 40)], axis=1).astype(np.int32)
    ts0, traj, _ = _run(env, actions)
    obs0, ref = _reference("CartPole-v1", env.options, actions)
    np.testing.assert_array_equal(ts0.obs, obs0)
    assert ts0.valid.all() and not ts0.done.any() and (ts0.reward == 0).all()
    for t, (obs, r, term, trunc, valid) in enumerate(ref):
        np.testing.assert_array_equal(traj.obs[t], obs)
        np.testing.assert_array_equal(traj.next_obs[t], obs)  # next-step reset: obs is the true s_{t+1}
        np.testing.assert_array_equal(traj.reward[t], r)
        np.testing.assert_array_equal(traj.terminated[t], term)
        np.testing.assert_array_equal(traj.truncated[t], trunc)
        np.testing.assert_array_equal(traj.valid[t], valid)
    assert traj.terminated[:, 0].any() and traj.truncated[:, 1].any()  # both kinds of end happened
    assert not (traj.terminated & traj.truncated).any()
    # every episode end is followed by exactly one invalid step with reward 0 and no end flags
    ends = np.argwhere(traj.done[:-1])
    for t, b in ends:
        assert not traj.valid[t + 1, b] and traj.reward[t + 1, b] == 0 and not traj.done[t + 1, b]
    assert (~traj.valid).sum() == len(ends)
    # env 1 is truncated after exactly 12 valid steps: 1 at every valid step up to the cut
    t_cut = int(np.argmax(traj.truncated[:, 1]))
    assert t_cut == 11 and traj.reward[: t_cut + 1, 1].sum() == 12.0


def test_spaces_dtypes_and_protocol():
    env = envs.make("envpool:CartPole-v1", 2)
    assert isinstance(env, envs.Env) and env.stateful and env.max_episode_steps == 500
    assert env.action_space == envs.Discrete(2) and env.observation_space.shape == (4,)
    pong = envs.make("envpool:Pong-v5", 2)
    assert pong.observation_space.shape == (84, 84, 4) and pong.observation_space.dtype == jnp.uint8
    assert pong.action_space == envs.Discrete(6) and pong.max_episode_steps == 27_000
    cheetah = envs.make("envpool:HalfCheetah-v4", 2)
    assert cheetah.observation_space.shape == (17,) and cheetah.observation_space.dtype == jnp.float32
    assert isinstance(cheetah.action_space, envs.Box) and cheetah.action_space.shape == (6,)


def test_episode_stats_and_rollout_count_valid_steps_only():
    env = envs.EpisodeStats(
        envs.make("envpool:CartPole-v1", 2, ep.EnvpoolParams(options={"max_episode_steps": 5}))
    )
    carry = jaxrl.rollout.reset(env, jax.random.key(0))
    act = lambda obs, k: (jax.random.randint(k, (2,), 0, 2), None)
    _, traj = jax.jit(lambda c: jaxrl.rollout.rollout(env, act, c, jax.random.key(1), 30))(carry)
    ended = np.asarray(traj.episode_end)
    # every finished episode counts only its valid steps: length == return (reward 1 per step), <= 5
    lengths = np.asarray(traj.episode_length)[ended]
    np.testing.assert_array_equal(lengths, np.asarray(traj.episode_return)[ended])
    assert ended.sum() >= 4 and (lengths <= 5).all() and (lengths >= 1).all()


# ------------------------------------------------------------------------------------------ Atari
def test_atari_obs_match_reference_and_stay_uint8():
    env = envs.make("envpool:Pong-v5", 2, ep.EnvpoolParams(seed=3))
    actions = np.random.RandomState(0).randint(0, 6, (60, 2)).astype(np.int32)
    ts0, traj, _ = _run(env, actions)
    obs0, ref = _reference("Pong-v5", env.options, actions)
    assert ts0.obs.dtype == np.uint8 and traj.obs.shape == (60, 2, 84, 84, 4)
    np.testing.assert_array_equal(_channels_first(ts0.obs), obs0)
    for t in (0, 30, 59):
        np.testing.assert_array_equal(_channels_first(traj.obs[t]), ref[t][0])
    assert env.options["episodic_life"] and env.options["reward_clip"] and env.options["noop_max"] == 30


def test_breakout_life_loss_is_terminal_but_episode_stats_count_whole_games():
    # Random play loses Breakout's 5 lives in ~150 steps; each life loss is a training episode end
    # (terminated, then one invalid reset step), while EpisodeStats ends the episode at game over.
    env = envs.EpisodeStats(envs.make("envpool:Breakout-v5", 1, ep.EnvpoolParams(seed=0)))
    carry = jaxrl.rollout.reset(env, jax.random.key(0))
    act = lambda obs, k: (jax.random.randint(k, (1,), 0, 4), None)
    _, traj = jax.jit(lambda c: jaxrl.rollout.rollout(env, act, c, jax.random.key(1), 400))(carry)
    term, valid, game_end = (np.asarray(x)[:, 0] for x in (traj.terminated, traj.valid, traj.episode_end))
    assert term.sum() >= 5  # at least one game's 5 lives
    assert (~valid).sum() in (
        term.sum(),
        term.sum() - 1,
    )  # an invalid step after each end (but maybe the last)
    first_game = int(np.argmax(game_end))
    assert game_end.any() and term[: first_game + 1].sum() == 5  # the game ends with the 5th life
    # the game's return is the sum of its rewards (raw; Breakout's low rows give 1 point each)
    np.testing.assert_allclose(traj.episode_return[first_game, 0], traj.reward[: first_game + 1, 0].sum())
    assert traj.episode_length[first_game, 0] == valid[: first_game + 1].sum()


def test_training_rewards_are_clipped_episode_scores_raw():
    # SpaceInvaders pays 5-30 points per invader: the learning signal is clipped to 1, the score not.
    env = envs.make("envpool:SpaceInvaders-v5", 2, ep.EnvpoolParams(seed=1))
    actions = np.random.RandomState(0).randint(0, 6, (150, 2)).astype(np.int32)
    _, traj, states = _run(env, actions)
    assert set(np.unique(traj.reward)) <= {0.0, 1.0}
    assert states.score_reward.max() >= 5.0
    np.testing.assert_array_equal(states.score_reward > 0, traj.reward > 0)
    ev = envs.make("envpool:SpaceInvaders-v5", 2, ep.EnvpoolParams(seed=1), evaluation=True)
    assert not ev.options["episodic_life"] and not ev.options["reward_clip"]
    assert ev.options["seed"] == 1 + ep.EVAL_SEED_OFFSET


def test_replay_rebuilds_atari_frame_stacks_bit_equal():
    # DQN's dedup_frames memory on real envpool stacks (12x12 frames to keep it cheap): Breakout with
    # episodic life (a lost life is terminal but envpool keeps the stack), a 90-step time limit (the
    # reset refills the stack), random play for 400 steps into a 150-row ring (wraps around twice).
    opts = {"img_height": 12, "img_width": 12, "max_episode_steps": 90}
    env = envs.make("envpool:Breakout-v5", 2, ep.EnvpoolParams(seed=0, options=opts))
    assert env.frame_stack == 4 and envs.make("envpool:CartPole-v1", 1).frame_stack == 0
    steps, rows = 400, 150
    obs_spec = jax.ShapeDtypeStruct((12, 12, 4), jnp.uint8)
    scalar = lambda d: jax.ShapeDtypeStruct((), d)
    example = dqn.Stored(obs_spec, scalar(jnp.int32), scalar(jnp.float32), scalar(bool), scalar(bool), None)
    buf = replay.make_replay(2 * rows, example, num_envs=2, successor=True, frames="obs")

    @jax.jit
    def run(key):  # DQN's store: row t holds s_t (the observation acted on) and the step's outcome
        state, ts0 = env.reset(key)

        def body(c, k):
            s, obs, rs = c
            a = jax.random.randint(k, (2,), 0, 4)
            s, ts = env.step(s, a, k)
            rs = buf.add(rs, dqn.Stored(obs, a, ts.reward, ts.terminated, ts.truncated, None), ts.valid)
            return (s, ts.obs, rs), (obs, ts)

        (_, _, rs), (obs, traj) = jax.lax.scan(
            body, (state, ts0.obs, buf.init()), jax.random.split(key, steps)
        )
        return rs, obs, traj

    rs, obs, traj = jax.tree_util.tree_map(np.asarray, run(jax.random.key(0)))
    assert rs.data.obs.shape == (rows, 2, 12, 12) and rs.data.obs.dtype == np.uint8
    # both kinds of episode start happened: after a lost life (stack kept) and after a cut (refilled)
    after = lambda mask: [obs[t + 2, b] for t, b in np.argwhere(mask[:-2])]
    kept, refilled = after(traj.terminated), after(traj.truncated)
    assert kept and refilled
    assert all((o == o[..., -1:]).all() for o in refilled) and not any((o == o[..., -1:]).all() for o in kept)
    r, e = (x.ravel() for x in np.meshgrid(np.arange(rows), np.arange(2), indexing="ij"))
    s = jax.tree_util.tree_map(np.asarray, jax.jit(buf.read)(rs, jnp.asarray(r), jnp.asarray(e)))
    t = steps - rows + (r - steps) % rows  # the step each row holds
    good = s.weight > 0
    for i in np.flatnonzero(good):
        np.testing.assert_array_equal(s.item.obs[i], obs[t[i], e[i]])
        np.testing.assert_array_equal(s.next_item.obs[i], obs[t[i] + 1, e[i]])
    # weight 0 only for invalid steps, the 3 oldest rows (older frames overwritten) and the newest row
    # (its successor is not written yet; sample never draws it)
    lost = rs.valid[r, e] & ~good
    assert lost.sum() <= 2 * 4 and set(t[lost]) <= {
        steps - rows,
        steps - rows + 1,
        steps - rows + 2,
        steps - 1,
    }


# ----------------------------------------------------------------------------------------- MuJoCo
def test_halfcheetah_float64_buffers_match_reference():
    env = envs.make("envpool:HalfCheetah-v4", 2, ep.EnvpoolParams(options={"max_episode_steps": 25}))
    actions = np.random.RandomState(0).uniform(-1, 1, (30, 2, 6)).astype(np.float32)
    ts0, traj, _ = _run(env, actions)
    obs0, ref = _reference("HalfCheetah-v4", env.options, actions)
    assert ts0.obs.dtype == np.float32
    np.testing.assert_allclose(ts0.obs, obs0.astype(np.float32), rtol=1e-6, atol=1e-7)
    for t, (obs, r, _term, trunc, valid) in enumerate(ref):
        np.testing.assert_allclose(traj.obs[t], obs.astype(np.float32), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(traj.reward[t], r, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(traj.truncated[t], trunc)
        np.testing.assert_array_equal(traj.valid[t], valid)
    assert traj.truncated[24].all() and not traj.valid[25].any()  # the time limit, then the reset step


def test_float64_word_conversions_match_numpy():
    rng = np.random.RandomState(0)
    x64 = np.concatenate(
        [
            rng.standard_normal(1000) * 10.0 ** rng.randint(-30, 30, 1000),
            [0.0, -0.0, 1.0, -2.5, 1e300, -1e300, 1e-300, np.inf, -np.inf, 3.4028234663852886e38],
        ]
    )
    words = jnp.asarray(x64.view(np.uint32).reshape(-1, 2))
    got = np.asarray(jax.jit(ep._f64_words_to_f32)(words))
    with np.errstate(over="ignore"):
        want = x64.astype(np.float32)  # numpy rounds to nearest; overflow -> inf, tiny -> 0
    np.testing.assert_array_max_ulp(got[np.isfinite(want)], want[np.isfinite(want)], maxulp=1)
    np.testing.assert_array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])
    assert np.isnan(
        np.asarray(ep._f64_words_to_f32(jnp.asarray(np.array([np.nan]).view(np.uint32).reshape(1, 2))))
    )
    x32 = np.concatenate([rng.standard_normal(1000).astype(np.float32) * 1e20, [0.0, -1.0, np.inf, -np.inf]])
    x32 = x32.astype(np.float32)
    back = np.asarray(jax.jit(ep._f32_to_f64_words)(jnp.asarray(x32)))
    np.testing.assert_array_equal(back.reshape(-1).view(np.float64), x32.astype(np.float64))


# ------------------------------------------------------------------------------------------ limits
def test_vmap_over_seeds_or_configs_raises_clear_error():
    cfg = ppo.Config(
        env="envpool:CartPole-v1", num_envs=2, rollout_steps=8, total_timesteps=32, num_minibatches=2
    )
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ep.EnvpoolVmapError, match="vmap over seeds or configs"):
        jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(cfg, keys)
    stacked = jaxrl.stack_configs([cfg, cfg.replace(learning_rate=1e-3)])
    with pytest.raises(ep.EnvpoolVmapError, match="EnvpoolParams"):
        jax.vmap(jaxrl.train, in_axes=(0, None))(stacked, jax.random.key(0))
    # a vmap reaching only step (reset outside) is refused too
    env = envs.make("envpool:CartPole-v1", 2)
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(ep.EnvpoolVmapError):
        jax.vmap(lambda a: env.step(state, a, jax.random.key(0)))(jnp.zeros((3, 2), jnp.int32))


def test_data_parallel_and_population_training_are_refused():
    from jaxrl import parallel

    cfg = ppo.Config(
        env="envpool:CartPole-v1", num_envs=2, rollout_steps=8, total_timesteps=32, num_minibatches=2
    )
    # refused before tracing, even on one device (shard_batch would constrain envpool's handle)
    with pytest.raises(ValueError, match="train_data_parallel cannot run envpool:CartPole-v1.*outside JAX"):
        parallel.train_data_parallel(cfg, 0)
    with pytest.raises(ValueError, match="train_population cannot run envpool:CartPole-v1.*EnvpoolParams"):
        parallel.train_population(cfg, jax.random.split(jax.random.key(0), 2))
    stacked = jaxrl.stack_configs([cfg, cfg.replace(learning_rate=1e-3)])
    with pytest.raises(ValueError, match="train_population cannot run"):
        parallel.train_population(stacked, jax.random.split(jax.random.key(0), 2))
    assert not ep._POOLS  # nothing was traced: no pool was built


def test_compiled_program_reruns_and_fresh_pools_reproduce():
    env = envs.make("envpool:CartPole-v1", 2, ep.EnvpoolParams(seed=5))
    actions = np.random.RandomState(0).randint(0, 2, (30, 2)).astype(np.int32)
    ts_a, traj_a, _ = _run(env, actions)
    ts_b, traj_b, _ = _run(env, actions)  # same pool: reset runs again at run time, no hang
    assert not np.array_equal(ts_a.obs, ts_b.obs)  # ... and its random streams continue
    ep.clear_pools()
    ts_c, traj_c, _ = _run(env, actions)  # a fresh pool with the same seed: the same episodes
    np.testing.assert_array_equal(ts_a.obs, ts_c.obs)
    np.testing.assert_array_equal(traj_a.obs, traj_c.obs)
    ep.clear_pools()
    ts_d, _, _ = _run(envs.make("envpool:CartPole-v1", 2, ep.EnvpoolParams(seed=6)), actions)
    assert not np.array_equal(ts_a.obs, ts_d.obs)


def test_bad_names_and_options_raise_clear_errors():
    with pytest.raises(ValueError, match="envpool:Pong-v5"):
        envs.make("envpool:Pongg-v5", 2)
    with pytest.raises(ValueError, match="EnvpoolParams.seed"):
        ep.EnvpoolParams(options={"seed": 3})
    with pytest.raises(ValueError, match="rejected the options"):
        envs.make("envpool:CartPole-v1", 2, ep.EnvpoolParams(options={"not_an_option": 1}))
    with pytest.raises(TypeError, match="EnvpoolParams"):
        envs.make("envpool:CartPole-v1", 2, env_params=42)
    assert envs.make("envpool:CartPole-v1", 1, {"seed": 4, "max_episode_steps": 9}).options["seed"] == 4
    hash(ep.EnvpoolParams(seed=1, options={"noop_max": 0}))  # usable as a static config field


def test_dqn_dedup_frames_needs_frame_stacks_and_next_row_reads():
    with pytest.raises(ValueError, match="frame stacks"):
        dqn.validate(jaxrl.DQNConfig(env="envpool:CartPole-v1", store_next_obs=False, dedup_frames=True))
    with pytest.raises(ValueError, match="frame stacks"):
        dqn.validate(jaxrl.DQNConfig(env="CartPole-v1", store_next_obs=False, dedup_frames=True))
    with pytest.raises(ValueError, match="store_next_obs=False"):
        dqn.validate(jaxrl.DQNConfig(env="envpool:Pong-v5", num_envs=2, dedup_frames=True))
    cfg = jaxrl.DQNConfig(
        env="envpool:Pong-v5", num_envs=1, buffer_size=1_000_000, store_next_obs=False, dedup_frames=True
    )
    dqn.validate(cfg)
    example = jax.ShapeDtypeStruct((84, 84, 4), jnp.uint8)
    # the Atari preset's 1M buffer: one 84x84 frame + int32 action + float32 reward + 2 flags + valid
    # + age = 7,068 bytes, and the end store's 4-byte slot index per transition
    buf = dqn.make_buffer(cfg, example, max_episode_steps=27_000)
    assert buf.bytes_per_transition == 84 * 84 + 4 + 4 + 1 + 1 + 1 + 1
    assert buf.nbytes < 7.2e9 and buf.frame_stack == 4


def test_import_jaxrl_does_not_import_envpool():
    code = "import sys, jaxrl; assert 'envpool' not in sys.modules, 'envpool imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------------------------- algorithms
@pytest.mark.slow
def test_ppo_envpool_cartpole_reaches_475():
    cfg = jaxrl.PPOConfig(env="envpool:CartPole-v1")
    state, metrics = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
    assert float(np.mean(np.asarray(metrics.episode_return)[-10:])) >= 475
    returns = jaxrl.evaluate(cfg, state, jax.random.key(1), num_episodes=8)
    assert float(np.mean(np.asarray(returns))) >= 475


@pytest.mark.slow
def test_ppo_atari_smoke():
    # CleanRL's PPO Atari rollout (8 envs x 128 steps, clip 0.1), two iterations; one epoch to keep
    # the CPU cost of the CNN down
    cfg = jaxrl.PPOConfig(
        env="envpool:Pong-v5",
        num_envs=8,
        rollout_steps=128,
        total_timesteps=2 * 8 * 128,
        clip_eps=0.1,
        num_epochs=1,
    )
    state, m = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
    assert state.env.timestep.obs.dtype == jnp.uint8 and state.env.timestep.obs.shape == (8, 84, 84, 4)
    assert m.total_loss.shape == (2,) and np.isfinite(np.asarray(m.total_loss)).all()
    assert int(m.env_steps[-1]) == 2048
    # the Nature CNN torso (Mnih et al. 2015): 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions, 512 units
    shapes = {k: v.shape for k, v in jax.tree_util.tree_leaves_with_path(state.params) if "kernel" in str(k)}
    kernels = sorted(shapes.values(), key=len, reverse=True)
    assert kernels[:3] == [(8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)], shapes
    assert (3136, 512) in kernels and (512, 6) in kernels, shapes  # 7x7x64 -> 512 -> 6 Pong actions


@pytest.mark.slow
def test_dqn_atari_smoke():
    cfg = jaxrl.DQNConfig(
        env="envpool:Breakout-v5",
        num_envs=4,
        total_timesteps=2000,
        buffer_size=2000,
        learning_starts=1000,
        train_frequency=16,
        minibatch_size=32,
        store_next_obs=False,
        dedup_frames=True,
        loss="l2",
        max_grad_norm=None,
    )
    state, m = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
    # one newest frame per transition (the stacks are rebuilt when sampled)
    assert state.replay.data.obs.dtype == jnp.uint8 and state.replay.data.obs.shape == (500, 4, 84, 84)
    assert (np.asarray(state.replay.age) >= 0).mean() > 0.99
    learned = np.asarray(m.env_steps) > cfg.learning_starts
    assert np.isfinite(np.asarray(m.loss)).all() and (np.asarray(m.loss)[learned] > 0).any()


@pytest.mark.slow
def test_ppo_mujoco_smoke():
    cfg = jaxrl.PPOConfig(
        env="envpool:HalfCheetah-v4", num_envs=4, rollout_steps=64, total_timesteps=4 * 64 * 3, num_minibatches=4
    )
    state, m = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
    assert m.total_loss.shape == (3,) and np.isfinite(np.asarray(m.total_loss)).all()
    assert state.env.timestep.obs.dtype == jnp.float32


def test_resumed_run_restarts_episodes_without_joining_two(tmp_path):
    """envpool's environments are not in a checkpoint. A resume (a new process: fresh pools) must go on
    from freshly reset environments, not from the checkpoint's last time step of episodes that no longer
    exist, and DQN (s' read from the next replay row) must drop the newest pre-checkpoint row."""
    from jaxrl import runtime

    cfg = jaxrl.DQNConfig(
        env="envpool:CartPole-v1",
        num_envs=2,
        total_timesteps=48,
        train_frequency=4,  # 2 steps of both envs per iteration
        buffer_size=64,
        learning_starts=1_000,
        store_next_obs=False,
    )
    out, seen = str(tmp_path / "run"), {}

    class Crash(Exception):
        pass

    def watch(crash_at):
        def callback(info):
            seen[info.iteration] = jax.device_get(info.state)
            if crash_at is None or info.iteration == crash_at:
                raise Crash

        return callback

    opts = dict(chunk_size=1, eval_episodes=0, checkpoint_every=1, progress=False, plot=False)
    with pytest.raises(Crash):
        runtime.run(cfg, 0, out, host_callback=watch(9), **opts)
    first_run = dict(seen)
    seen.clear()
    ep.clear_pools()  # what a new process has
    with pytest.raises(Crash):  # stop after the first resumed iteration
        runtime.run(cfg, 0, out, resume=True, host_callback=watch(None), **opts)
    ((resumed_at, after),) = seen.items()
    before = first_run[resumed_at - 1]  # the checkpoint it resumed from
    assert before.env.env_state.episode_length.max() > 2  # episodes under way at the checkpoint
    # two steps since the restart: the running episodes are 2 steps old (CartPole cannot end sooner)
    np.testing.assert_array_equal(after.env.env_state.episode_length, [2, 2])
    rows = before.replay.valid.shape[0]
    newest, first_new = (before.replay.position - 1) % rows, before.replay.position % rows
    # the rows written after the restart start from CartPole's reset states (|x| <= 0.05)
    assert np.abs(after.replay.data.obs[first_new]).max() <= 0.05
    # the newest pre-checkpoint row (whose s' would be the next row, a new episode) no longer samples
    assert before.replay.valid[newest].all() and not after.replay.valid[newest].any()
    keep = np.arange(rows) != newest
    keep[first_new : first_new + 2] = False
    np.testing.assert_array_equal(after.replay.valid[keep], before.replay.valid[keep])
    for a, b in zip(
        jax.tree_util.tree_leaves(after.params), jax.tree_util.tree_leaves(before.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)  # the learner state as restored (no learning yet)
