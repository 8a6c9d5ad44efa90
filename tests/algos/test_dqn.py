"""DQN: TD errors and loss by hand, probes (discount, truncation bootstrap, sign), uint8 images,
short learning, transforms, config checks. The CleanRL CartPole run is marked slow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

import jaxrl
from jaxrl import replay
from jaxrl.algos import dqn
from jaxrl.envs import probes


class TableNet:
    """A stand-in network: ``Q(s, .) = params[s]`` for integer observations."""

    def apply(self, params, obs):
        return params[obs]


ONLINE = jnp.array([[1.0, 2.0], [3.0, 4.0], [0.0, 5.0]])
TARGET = jnp.array([[0.0, 1.0], [2.0, 6.0], [7.0, 1.0]])
BATCH = dqn.Batch(
    obs=jnp.array([0, 1, 2]),
    action=jnp.array([1, 0, 1], jnp.int32),
    reward=jnp.array([1.0, 0.0, 2.0]),
    terminated=jnp.array([False, False, True]),  # #2 was cut by a time limit: it still bootstraps
    next_obs=jnp.array([1, 2, 0]),
    weight=jnp.array([1.0, 1.0, 1.0]),
)


class TestTDErrors:
    def test_dqn_hand_computed(self):
        td, q = dqn.td_errors(ONLINE, TARGET, TableNet(), BATCH, 0.9, double=False)
        # 1 + 0.9 * max(2, 6) - 2 = 4.4 ; 0 + 0.9 * max(7, 1) - 3 = 3.3 ; 2 + 0 (terminal) - 5 = -3
        np.testing.assert_allclose(td, [4.4, 3.3, -3.0], rtol=1e-6)
        np.testing.assert_allclose(q, [2.0, 3.0, 5.0])

    def test_double_dqn_hand_computed(self):
        td, _ = dqn.td_errors(ONLINE, TARGET, TableNet(), BATCH, 0.9, double=True)
        # #1: online argmax Q(1) = [3, 4] -> 1, target values it 6: 1 + 5.4 - 2 = 4.4
        # #2: online argmax Q(2) = [0, 5] -> 1, target values it 1: 0 + 0.9 - 3 = -2.1
        np.testing.assert_allclose(td, [4.4, -2.1, -3.0], rtol=1e-6)

    @pytest.mark.parametrize("kind, expected", [("l2", 7.5625), ("huber", 3.35)])
    def test_weighted_loss_and_gradient(self, kind, expected):
        cfg = jaxrl.DQNConfig(gamma=0.9, loss=kind)
        batch = BATCH._replace(weight=jnp.array([1.0, 1.0, 0.0]))  # #3 ignored (invalid slot)
        # l2: 0.5 * (4.4^2 + 3.3^2) / 2 = 7.5625 ; huber: ((4.4 - 0.5) + (3.3 - 0.5)) / 2 = 3.35
        (value, terms), grads = jax.value_and_grad(dqn.loss, has_aux=True)(
            ONLINE, TARGET, cfg, TableNet(), batch
        )
        np.testing.assert_allclose([value, terms.loss], expected, rtol=1e-6)
        np.testing.assert_allclose(terms.q_value, 2.5)  # (2 + 3) / 2
        # d/dQ(s,a): -td / 2 (l2) or -clip(td, -1, 1) / 2 (huber), only on the taken (s, a) of weighted rows
        g = np.zeros((3, 2))
        g[0, 1], g[1, 0] = (-2.2, -1.65) if kind == "l2" else (-0.5, -0.5)
        np.testing.assert_allclose(grads, g, rtol=1e-6)

    def test_successor_batch_reads_time_limit_cuts_from_the_end_store(self):
        item = dqn.Stored(
            jnp.array([0, 1, 2, 3]),
            jnp.array([0, 1, 0, 1], jnp.int32),
            jnp.ones(4),
            jnp.array([False, False, True, False]),
            jnp.array([False, True, False, True]),
            None,
        )
        nxt = item._replace(obs=jnp.array([5, 6, 7, 8]))  # the next rows (a new episode after #1-#3)
        end = jnp.array([0, 9, 0, 0])  # #1's true final obs is kept; #3's entry was overwritten
        has_end = jnp.array([False, True, False, False])
        b = dqn.to_batch(replay.Sample(item, nxt, jnp.ones(4), end, has_end))
        # #0 within an episode: next row; #1 cut: its final obs 9; #2 terminal: never bootstrapped
        np.testing.assert_array_equal(b.next_obs[:3], [5, 9, 7])
        np.testing.assert_array_equal(b.weight, [1.0, 1.0, 1.0, 0.0])  # #3: cut, final obs lost


# ----------------------------------------------------------------------------------- configs
class TestValidate:
    @pytest.mark.parametrize(
        "kw, match",
        [
            (dict(env="probe:ContinuousActionReward"), "discrete action space"),
            (dict(train_frequency=3, num_envs=2), "divide one another"),
            (dict(buffer_size=1005), "multiple of num_envs"),
            (dict(loss="mse"), "loss must be one of"),
            (dict(network="nature_cnn"), "image observations"),
            (dict(env="CartPol-v1"), "Unknown environment"),
            (dict(gamma=1.5), "gamma"),
        ],
    )
    def test_clear_errors(self, kw, match):
        with pytest.raises(ValueError, match=match):
            jaxrl.train(jaxrl.DQNConfig(**kw), 0)

    def test_schedule_properties(self):
        cfg = jaxrl.DQNConfig()  # 10 envs, one gradient step per 10 env steps
        assert (cfg.vector_steps, cfg.updates_per_iteration, cfg.num_iterations) == (1, 1, 50_000)
        cfg = jaxrl.DQNConfig(num_envs=1, train_frequency=4)  # CleanRL Atari: 4 env steps per update
        assert (cfg.vector_steps, cfg.updates_per_iteration, cfg.env_steps_per_iteration) == (4, 1, 4)
        cfg = jaxrl.DQNConfig(num_envs=8, train_frequency=2)
        assert (cfg.vector_steps, cfg.updates_per_iteration) == (1, 4)


# ------------------------------------------------------------------------------------ probes
def probe_cfg(env, **kw):
    base = dict(
        env=env,
        total_timesteps=4_000,
        num_envs=4,
        buffer_size=1_000,
        minibatch_size=64,
        learning_starts=200,
        train_frequency=1,
        target_update_period=20,
        hidden=(32,),
        learning_rate=3e-3,
        gamma=0.9,
        epsilon_start=1.0,
        epsilon_end=1.0,
    )
    return jaxrl.DQNConfig(**{**base, **kw})


TRAIN = jax.jit(jaxrl.train)  # one wrapper, so runs with equal static config share a compilation


@pytest.fixture(scope="module")
def action_run():
    """ActionReward probe, 4,000 env steps (the buffer of 250 rows wraps around 4 times)."""
    cfg = probe_cfg("probe:ActionReward")
    state, metrics = TRAIN(cfg, jax.random.key(0))
    return cfg, state, metrics


def q_of(cfg, state, obs):
    return dqn.make_network(cfg, dqn.make_env(cfg)).apply(state.params, jnp.asarray(obs, jnp.float32))


class TestProbes:
    def test_discount(self):
        # DelayedReward: Q(obs 0) = gamma = 0.9, Q(obs 1) = 1
        cfg = probe_cfg("probe:DelayedReward")
        state, _ = TRAIN(cfg, jax.random.key(0))
        np.testing.assert_allclose(q_of(cfg, state, [[0.0], [1.0]])[:, 0], [0.9, 1.0], atol=0.05)

    @pytest.mark.parametrize("store_next_obs", [True, False])
    @pytest.mark.parametrize("time_limit", [20, 1])
    def test_bootstraps_through_truncation(self, store_next_obs, time_limit):
        # EndlessTimeLimit: +1 forever, cut every `time_limit` steps; Q = 1 / (1 - 0.9) = 10 only with
        # the bootstrap (cuts read as terminal give about 6 at 20 steps, 1 at 1 step). With a 1-step
        # limit every transition is a cut: dropping cuts would leave Q at its initial value.
        cfg = probe_cfg(
            "probe:EndlessTimeLimit",
            env_params=probes.ProbeParams(max_steps_in_episode=time_limit),
            total_timesteps=8_000,
            store_next_obs=store_next_obs,
        )
        state, _ = TRAIN(cfg, jax.random.key(0))
        np.testing.assert_allclose(q_of(cfg, state, [[0.0]])[0, 0], 10.0, atol=0.5)

    def test_obs_stored_once_gives_the_true_final_obs_of_a_cut(self):
        # DelayedReward cut after 1 step: every transition goes obs 0 -> final obs 1 (truncated), and
        # the next row holds the next episode's first obs, 0. Sampled batches must bootstrap from 1,
        # exactly as when next_obs is stored.
        batches = []
        for store_next_obs in (True, False):
            cfg = probe_cfg(
                "probe:DelayedReward",
                env_params=probes.ProbeParams(max_steps_in_episode=1),
                total_timesteps=64,
                buffer_size=64,
                store_next_obs=store_next_obs,
            )
            state, _ = TRAIN(cfg, jax.random.key(0))
            buf = dqn.make_buffer(cfg, state.env.timestep.obs[0])
            batches.append(dqn.to_batch(buf.sample(state.replay, jax.random.key(1), 256)))
        stored, once = batches
        assert bool(once.terminated.any()) is False and bool(jnp.all(once.obs == 0.0))
        np.testing.assert_array_equal(once.weight, 1.0)  # 15 rows with a successor, every cut kept
        np.testing.assert_array_equal(once.next_obs, 1.0)
        np.testing.assert_array_equal(stored.next_obs, 1.0)

    def test_sign_and_action_dependence(self, action_run):
        # ActionReward: obs +1 pays for action 1, obs -1 for action 0; one step, so Q is the reward
        cfg, state, _ = action_run
        np.testing.assert_allclose(q_of(cfg, state, [[1.0], [-1.0]]), [[0.0, 1.0], [1.0, 0.0]], atol=0.05)
        act = jaxrl.make_policy(cfg, state)
        np.testing.assert_array_equal(act(jnp.array([[1.0], [-1.0]]), jax.random.key(0)), [1, 0])


class ImageActionReward(probes.ActionReward):
    """ActionReward seen through uint8 images [10, 10, 2]: all 255 for obs +1, all 0 for obs -1."""

    def observation_space(self, params):
        return spaces.Box(0, 255, (10, 10, 2), jnp.uint8)

    def _img(self, obs):
        return jnp.broadcast_to(jnp.where(obs[0] > 0, 255, 0).astype(jnp.uint8), (10, 10, 2))

    def reset_env(self, key, params):
        obs, s = super().reset_env(key, params)
        return self._img(obs), s

    def step_env(self, key, state, action, params):
        obs, s, r, d, info = super().step_env(key, state, action, params)
        return self._img(obs), s, r, d, info


class TestImages:
    def test_uint8_observations_cnn_and_obs_stored_once(self):
        env = ImageActionReward()
        cfg = probe_cfg(env, store_next_obs=False, total_timesteps=2_000, train_frequency=4, minibatch_size=32)
        assert dqn.make_network(cfg, dqn.make_env(cfg)).torso == "minatar_cnn"  # network="auto"
        state, metrics = TRAIN(cfg, jax.random.key(0))
        assert state.replay.data.obs.dtype == jnp.uint8 and state.replay.data.next_obs is None
        assert state.replay.data.obs.shape == (250, 4, 10, 10, 2)  # 1000 / 4 rows of 4 envs
        assert bool(jnp.all(jnp.isfinite(metrics.loss)))
        images = jnp.stack([env._img(jnp.array([1.0])), env._img(jnp.array([-1.0]))])
        act = jaxrl.make_policy(cfg, state)
        np.testing.assert_array_equal(act(images, jax.random.key(0)), [1, 0])  # reads the image right


# ------------------------------------------------------------------------- learning & transforms
class TestLearning:
    def test_cartpole_short(self):
        cfg = jaxrl.DQNConfig(
            total_timesteps=40_000,
            num_envs=4,
            train_frequency=4,
            buffer_size=10_000,
            minibatch_size=64,
            learning_rate=1e-3,
            learning_starts=1_000,
            target_update_period=500,
            exploration_fraction=0.2,
            hidden=(64, 64),
            loss="l2",
        )
        state, metrics = TRAIN(cfg, jax.random.key(0))
        final = jaxrl.evaluate(cfg, state, jax.random.key(1), num_episodes=16)
        assert float(metrics.episode_return[-1]) > 100 or float(final.mean()) > 150, (
            metrics.episode_return[-1],
            final,
        )


class TestTransforms:
    def test_vmap_over_seeds_and_configs_matches_separate_runs(self, action_run):
        # 2,000 env steps (450 gradient steps): vmapped and single runs agree to ~1e-6. Over the 4,000 steps
        # of the other probes they agreed on an AVX2 CPU but drifted apart by up to 6e-3 on an AVX-512 one:
        # XLA vectorises the batched and the unbatched program differently, and once the probe's Q is
        # learned Adam's normalised steps (size ~lr whatever the gradient) amplify those rounding
        # differences. The comparison is meant for the update rule, so it stops before that regime.
        cfgs = [
            probe_cfg("probe:ActionReward", learning_rate=lr, total_timesteps=2_000) for lr in (3e-3, 1e-3)
        ]
        keys = jax.random.split(jax.random.key(3), 2)
        states, _ = jax.jit(jax.vmap(jaxrl.train))(jaxrl.stack_configs(cfgs), keys)
        for i in range(2):
            single, _ = TRAIN(cfgs[i], keys[i])
            flat_v = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda x, i=i: x[i], states.params))
            for a, b in zip(flat_v, jax.tree_util.tree_leaves(single.params), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        # determinism: the same key gives the same run
        again, _ = TRAIN(action_run[0], jax.random.key(0))
        jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, action_run[1].params)

    def test_state_shapes_and_metrics(self, action_run):
        _, state, m = action_run
        assert state.replay.data.obs.shape == (250, 4, 1) and state.replay.data.next_obs.shape == (250, 4, 1)
        assert int(state.replay.size) == 250 and int(state.replay.position) == 1000 % 250  # wrapped 4 times
        assert m.loss.shape == (1000,) and int(m.env_steps[-1]) == 4000
        # no gradient step until learning_starts (200 env steps = 50 iterations) are done
        assert float(jnp.abs(m.loss[:50]).sum()) == 0.0 and float(m.loss[50]) > 0.0
        assert bool(jnp.all(jnp.isfinite(m.loss))) and float(m.epsilon[-1]) == 1.0


@pytest.mark.slow
class TestCleanRLCartPole:
    def test_mean_final_greedy_return_of_eight_vmapped_seeds(self):
        """CleanRL dqn.py settings (the DQNConfig defaults): 500k steps, 8 vmapped seeds, three groups.

        DQN's final greedy policy varies from seed to seed (a seed's return can dip to ~300 in the last
        updates while the rest sit at 500), and float rounding differs between CPUs, so one group of 8
        seeds gives a mean within about +-20 of the expectation. The test asks the mean of three such
        groups (24 seeds, each group one ``jit(vmap(train))`` call) to be >= 475; on the AVX-512 CPU of
        2026-12-03 the groups gave 462.7, 483.2 and 496.8 (mean 480.9), on the earlier AVX2 CPU
        group 0 gave 500.0. Every group's figures are printed."""
        cfg = jaxrl.DQNConfig()
        train = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))
        ev = jax.jit(jax.vmap(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=16), in_axes=(0, None)))
        means = []
        for group in range(3):
            states, _ = train(cfg, jax.random.split(jax.random.key(group), 8))
            per_seed = np.asarray(ev(states, jax.random.key(1))).mean(axis=1)
            means.append(float(per_seed.mean()))
            print(f"group {group}: greedy return per seed {np.round(per_seed, 1)}, mean {means[-1]:.1f}")
        print(f"mean of the three groups {np.mean(means):.1f}")
        assert np.mean(means) >= 475, means


class TestUserCode:
    def test_readme_double_dqn_written_with_jaxrl_losses(self):
        """The README's example of a DQN variant written in user code (keep the two in sync)."""
        from typing import NamedTuple

        import optax

        from jaxrl import losses, replay, schedules
        from jaxrl.networks.q import QNetwork, epsilon_greedy

        class Tr(NamedTuple):
            obs: jax.Array
            action: jax.Array
            reward: jax.Array
            terminated: jax.Array
            next_obs: jax.Array

        env = jaxrl.envs.EpisodeStats(jaxrl.envs.make("CartPole-v1", num_envs=8))
        net, opt = QNetwork(num_actions=2, hidden=(64, 64)), optax.adam(1e-3)
        buf = replay.make_replay(10_000, Tr(jnp.zeros(4), jnp.int32(0), 0.0, 0.0, jnp.zeros(4)), num_envs=8)

        def loss_fn(params, target, b, gamma=0.99):  # Double DQN + Huber from jaxrl's pure losses
            q_tm1, q_t_target, q_t_online = (
                net.apply(params, b.obs),
                net.apply(target, b.next_obs),
                net.apply(params, b.next_obs),
            )
            td = jax.vmap(losses.double_q_learning)(
                q_tm1, b.action, b.reward, gamma * (1 - b.terminated), q_t_target, q_t_online
            )
            return jnp.mean(losses.huber_loss(td))

        def step(carry, key):
            params, target, opt_state, rs, env_state, ts, t = carry
            k_act, k_env, k_sample = jax.random.split(key, 3)
            action = epsilon_greedy(k_act, net.apply(params, ts.obs), schedules.linear(1.0, 0.05, 2_000, t))
            env_state, nts = env.step(env_state, action, k_env)
            rs = buf.add(
                rs,
                Tr(ts.obs, action, nts.reward, nts.terminated.astype(jnp.float32), nts.next_obs),
                nts.valid,
            )
            grads = jax.grad(loss_fn)(params, target, buf.sample(rs, k_sample, 64).item)
            updates, opt_state = opt.update(grads, opt_state)
            params = optax.apply_updates(params, updates)
            target = optax.periodic_update(params, target, t, 100)  # hard copy every 100 steps
            return (params, target, opt_state, rs, env_state, nts, t + 1), None

        key = jax.random.key(0)
        env_state, ts = env.reset(key)
        params = net.init(key, ts.obs)
        carry = (params, params, opt.init(params), buf.init(), env_state, ts, jnp.int32(0))
        carry, _ = jax.jit(lambda c: jax.lax.scan(step, c, jax.random.split(key, 5_000)))(carry)
        assert float(carry[4].returned_episode_return.mean()) > 100  # 40k env steps of CartPole
