"""Tabular Q-learning: the update by hand, a plain-Python reference, probes, FrozenLake, transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces
from gymnax.environments.misc.frozen_lake import FrozenLake

import jaxrl
from jaxrl.algos import qlearning
from jaxrl.envs import probes


# ------------------------------------------------------------------------------ probe helpers
def discrete_probe(cls, n_states):
    """A probe env whose observation is a state index: ``obs[0] > 0`` (so -1/0 -> 0, +1 -> 1)."""

    class Discrete(cls):
        def observation_space(self, params):
            return spaces.Discrete(n_states)

        def reset_env(self, key, params):
            obs, s = super().reset_env(key, params)
            return (obs[0] > 0).astype(jnp.int32), s

        def step_env(self, key, state, action, params):
            obs, s, r, d, info = super().step_env(key, state, action, params)
            return (obs[0] > 0).astype(jnp.int32), s, r, d, info

    Discrete.__name__ = "Discrete" + cls.__name__
    return Discrete()


DELAYED = discrete_probe(probes.DelayedReward, 2)
ENDLESS = discrete_probe(probes.EndlessTimeLimit, 1)
ACTION = discrete_probe(probes.ActionReward, 2)


def probe_cfg(env, **kw):
    base = dict(
        env=env, total_timesteps=8_000, num_envs=8, rollout_steps=4, learning_rate=0.2, anneal_lr=False, gamma=0.9
    )
    return jaxrl.QLearningConfig(**{**base, **kw})


# -------------------------------------------------------------------------------- the update
class TestUpdate:
    def test_hand_computed(self):
        q = jnp.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])
        obs = jnp.array([0, 1, 0, 2])
        action = jnp.array([1, 0, 1, 0], jnp.int32)
        reward = jnp.array([1.0, -1.0, 0.0, 5.0])
        terminated = jnp.array([False, True, False, False])  # #3 is a time-limit cut: it bootstraps
        next_obs = jnp.array([2, 2, 1, 0])
        valid = jnp.array([True, True, True, False])  # #4 ignored (next-step-reset step)
        new, td = qlearning.update(q, obs, action, reward, terminated, next_obs, valid, 0.5, 0.9)
        # td1 = 1 + 0.9 * max(3, 0) - 2 = 1.7; td2 = -1 + 0 - 0.5 = -1.5 (terminal: no bootstrap);
        # td3 = 0 + 0.9 * max(0.5, -1) - 2 = -1.55; td4 = 0 (invalid)
        np.testing.assert_allclose(td, [1.7, -1.5, -1.55, 0.0], rtol=1e-6)
        # Q[0,1] moves by alpha * mean(1.7, -1.55) = 0.5 * 0.075; Q[1,0] by 0.5 * -1.5; Q[2,0] untouched
        expected = np.array([[1.0, 2.0375], [-0.25, -1.0], [3.0, 0.0]])
        np.testing.assert_allclose(new, expected, rtol=1e-6)

    def test_matches_plain_python_reference(self):
        rng = np.random.default_rng(0)
        S, A, N = 5, 3, 64
        q = rng.normal(size=(S, A)).astype(np.float32)
        obs, nxt = rng.integers(0, S, N), rng.integers(0, S, N)
        act = rng.integers(0, A, N)
        rew = rng.normal(size=N).astype(np.float32)
        term, valid = rng.random(N) < 0.3, rng.random(N) < 0.8
        alpha, gamma = 0.3, 0.95
        # reference: per (s, a), alpha times the mean TD error of its valid transitions, all on the old table
        ref = q.copy()
        for s in range(S):
            for a in range(A):
                tds = [
                    rew[i] + gamma * (0.0 if term[i] else q[nxt[i]].max()) - q[s, a]
                    for i in range(N)
                    if obs[i] == s and act[i] == a and valid[i]
                ]
                if tds:
                    ref[s, a] += alpha * np.mean(tds)
        args = (
            jnp.asarray(q),
            jnp.asarray(obs),
            jnp.asarray(act, jnp.int32),
            jnp.asarray(rew),
            jnp.asarray(term),
            jnp.asarray(nxt),
            jnp.asarray(valid),
            alpha,
            gamma,
        )
        new, _ = qlearning.update(*args)
        np.testing.assert_allclose(new, ref, rtol=1e-5, atol=1e-6)
        jitted, _ = jax.jit(qlearning.update)(*args)
        np.testing.assert_allclose(jitted, new, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------ checks
class TestValidate:
    def test_rejects_continuous_observations(self):
        with pytest.raises(ValueError, match="discrete observation space"):
            jaxrl.train(jaxrl.QLearningConfig(env="CartPole-v1"), 0)

    def test_rejects_continuous_actions(self):
        env = discrete_probe(probes.ContinuousActionReward, 2)
        with pytest.raises(ValueError, match="discrete action space"):
            jaxrl.train(jaxrl.QLearningConfig(env=env), 0)

    def test_rejects_too_short_runs(self):
        with pytest.raises(ValueError, match="smaller than one iteration"):
            jaxrl.train(jaxrl.QLearningConfig(total_timesteps=10), 0)


# ------------------------------------------------------------------------------------ probes
class TestProbes:
    def test_discount(self):
        # DelayedReward: Q(0) = gamma * 1 = 0.9, Q(1) = 1
        state, _ = jax.jit(jaxrl.train)(probe_cfg(DELAYED), jax.random.key(0))
        np.testing.assert_allclose(state.q[:, 0], [0.9, 1.0], atol=1e-3)

    def test_bootstraps_through_truncation(self):
        # EndlessTimeLimit: +1 forever, cut at 20 steps: Q = 1 / (1 - 0.9) = 10 only if the cut
        # bootstraps (treating it as terminal gives < 1 + 0.9 + ... + 0.9^19 = 8.8)
        state, _ = jax.jit(jaxrl.train)(probe_cfg(ENDLESS), jax.random.key(0))
        np.testing.assert_allclose(state.q[0, 0], 10.0, atol=0.05)

    def test_sign_and_action_dependence(self):
        # ActionReward: state 1 (obs +1) pays for action 1, state 0 (obs -1) for action 0
        state, _ = jax.jit(jaxrl.train)(probe_cfg(ACTION), jax.random.key(0))
        np.testing.assert_allclose(state.q, [[1.0, 0.0], [0.0, 1.0]], atol=1e-3)


# ----------------------------------------------------------------------------- FrozenLake
def frozen_lake_q_star(gamma: float, slippery: bool = True) -> np.ndarray:
    """Value iteration on the 4x4 map with gymnax's dynamics (plain NumPy): Q* [16, 4]."""
    desc = ["SFFF", "FHFH", "FFFH", "HFFG"]
    moves = [(0, -1), (1, 0), (0, 1), (-1, 0)]  # left, down, right, up (gymnax's order)
    terminal = lambda s: desc[s // 4][s % 4] in "HG"

    def step(s, a):
        r, c = divmod(s, 4)
        r, c = min(max(r + moves[a][0], 0), 3), min(max(c + moves[a][1], 0), 3)
        return r * 4 + c

    q = np.zeros((16, 4))
    for _ in range(2000):
        v = q.max(axis=1)
        new = np.zeros_like(q)
        for s in range(16):
            if terminal(s):
                continue
            for a in range(4):
                outcomes = [(a - 1) % 4, a, (a + 1) % 4] if slippery else [a]
                for b in outcomes:
                    s2 = step(s, b)
                    reward = 1.0 if desc[s2 // 4][s2 % 4] == "G" else 0.0
                    new[s, a] += (reward + gamma * (0.0 if terminal(s2) else v[s2])) / len(outcomes)
        q = new
    return q


class TestFrozenLake:
    def test_slippery_greedy_success_at_least_070(self):
        cfg = jaxrl.QLearningConfig(total_timesteps=300_000)  # FrozenLake-misc 4x4, slippery by default
        state, metrics = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
        success = jaxrl.evaluate(cfg, state, jax.random.key(1), num_episodes=1000)
        assert float(success.mean()) >= 0.70
        # the greedy action is optimal (within 0.01 of V*) in every non-terminal state
        q_star = frozen_lake_q_star(cfg.gamma)
        greedy = np.asarray(jnp.argmax(state.q, axis=1))
        for s in [0, 1, 2, 3, 4, 6, 8, 9, 10, 13, 14]:
            assert q_star[s, greedy[s]] >= q_star[s].max() - 0.01, (s, greedy[s], q_star[s])
        assert int(metrics.env_steps[-1]) == 300_000 - 300_000 % cfg.env_steps_per_iteration

    def test_non_slippery_finds_the_shortest_path(self):
        env = FrozenLake(is_slippery=False)  # gymnax takes the flag in the constructor
        cfg = jaxrl.QLearningConfig(env=env, total_timesteps=50_000)
        state, _ = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
        # Q*(start) = gamma^5: the goal is 6 moves away
        np.testing.assert_allclose(state.q[0].max(), cfg.gamma**5, rtol=1e-3)
        # the greedy path reaches the goal in exactly 6 steps
        params = env.default_params
        obs, s = env.reset(jax.random.key(0), params)
        for t in range(6):
            a = int(jnp.argmax(state.q[obs]))
            obs, s, r, term, trunc, _ = env.step(jax.random.key(t), s, a, params)
        assert bool(term) and float(r) == 1.0


# ------------------------------------------------------------------------- transformations
class TestTransforms:
    def test_vmap_over_seeds_matches_separate_runs_and_is_deterministic(self):
        cfg = probe_cfg(ACTION, total_timesteps=640, learning_rate=0.1)
        keys = jax.random.split(jax.random.key(7), 2)
        batched, m = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(cfg, keys)
        run = jax.jit(jaxrl.train)
        for i in range(2):
            single, _ = run(cfg, keys[i])
            np.testing.assert_allclose(batched.q[i], single.q, rtol=1e-6)
        again, _ = run(cfg, keys[0])
        np.testing.assert_array_equal(again.q, run(cfg, keys[0])[0].q)
        assert not np.allclose(batched.q[0], batched.q[1])  # different seeds explore differently

    def test_vmap_over_hyperparameters(self):
        cfgs = [probe_cfg(ENDLESS, total_timesteps=640, gamma=g) for g in (0.5, 0.9)]
        states, _ = jax.jit(jax.vmap(jaxrl.train))(
            jaxrl.stack_configs(cfgs), jax.random.split(jax.random.key(0), 2)
        )
        for i, c in enumerate(cfgs):
            single, _ = jax.jit(jaxrl.train)(c, jax.random.split(jax.random.key(0), 2)[i])
            np.testing.assert_allclose(states.q[i], single.q, rtol=1e-6)
        assert float(states.q[0, 0, 0]) < float(states.q[1, 0, 0])  # 1/(1-0.5) = 2 < 1/(1-0.9) = 10
