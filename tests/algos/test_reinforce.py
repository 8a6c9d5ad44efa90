"""REINFORCE: reward-to-go and masking against hand-computed numbers, the gradient of a one-parameter
policy on a 2-step episode, probe environments, jit/vmap agreement, determinism, a short learning
test, and the issue's headline (slow: CartPole-v1 >= 450 over 8 seeds within 1M steps).
"""

import _pg_testing
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _pg_testing import TinyNet, obs, transition, vmapped_runs_equal_separate_runs

import jaxrl
from jaxrl.algos import reinforce

# ----------------------------------------------------------------------------- reward-to-go


def test_reward_to_go_restarts_at_every_episode_end():
    # gamma = 0.5, one env, rewards 1 2 3 4; episode A = steps 0-1 (terminated at 1),
    # episode B = steps 2-3 (truncated at 3).
    # G_1 = 2, G_0 = 1 + 0.5 * 2 = 2;  G_3 = 4, G_2 = 3 + 0.5 * 4 = 5  (A's return ignores B's rewards)
    traj = transition([[1.0], [2.0], [3.0], [4.0]], [[0], [1], [0], [0]], [[0], [0], [0], [1]])
    g = reinforce.reward_to_go(traj, 0.5)
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 5.0, 4.0])


def test_reward_to_go_bootstraps_truncation_only_from_the_final_obs_value():
    # Same rollout, V(final obs) = 10 given at every step. Only the truncated step 3 adds 0.5 * 10:
    # G_3 = 4 + 5 = 9, G_2 = 3 + 0.5 * 9 = 7.5; the terminated step 1 adds nothing: G_1 = 2, G_0 = 2.
    traj = transition([[1.0], [2.0], [3.0], [4.0]], [[0], [1], [0], [0]], [[0], [0], [0], [1]])
    g = reinforce.reward_to_go(traj, 0.5, jnp.full((4, 1), 10.0))
    np.testing.assert_allclose(g[:, 0], [2.0, 2.0, 7.5, 9.0])


def test_reward_to_go_matches_a_python_loop_on_random_rollouts():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(50, 3)).astype(np.float32)
    term = rng.random((50, 3)) < 0.1
    trunc = (rng.random((50, 3)) < 0.05) & ~term
    g = np.asarray(reinforce.reward_to_go(transition(r, term, trunc), 0.9))
    for b in range(3):
        acc = 0.0
        for t in reversed(range(50)):
            acc = r[t, b] + (0.0 if term[t, b] or trunc[t, b] else 0.9 * acc)
            assert g[t, b] == pytest.approx(acc, rel=1e-5, abs=1e-5)


def test_finished_episode_mask_drops_each_envs_unfinished_tail():
    # Rows are envs here (transposed to [T, B] below).
    # env 0: episodes end at t=1 and t=3: every step is used.
    # env 1: one episode ends at t=1; steps 2-3 are an unfinished episode: unused.
    # env 2: next-step-reset backend: an episode ends at t=1, t=2 is the invalid reset step, the next
    #        episode ends at t=3: all but the invalid step are used.
    # env 3: no episode ends: nothing is used.
    term = np.asarray([[0, 1, 0, 1], [0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]]).T
    valid = np.asarray([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1]]).T
    traj = transition(np.ones((4, 4)), term, np.zeros((4, 4)), valid=valid)
    mask = np.asarray(reinforce.finished_episode_mask(traj)).T
    expected = [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0]]
    np.testing.assert_array_equal(mask, np.asarray(expected, bool))


# ------------------------------------------------------------------------- the update rule


def _two_step_episode_then_tail():
    # One env: a 2-step episode (actions 1, 1; rewards 1, 1; terminated at t=1), then one step of an
    # unfinished episode (action 1, reward 100) that must not count. obs = 1 everywhere.
    return transition(
        [[1.0], [1.0], [100.0]],
        [[0], [1], [0]],
        [[0], [0], [0]],
        action=[[1], [1], [1]],
        obs=np.ones((3, 1)),
        value=np.full((3, 1), 0.5),
    )


def _grads(cfg, traj, params):
    batch = reinforce.episode_batch(cfg, TinyNet, params, traj)
    return jax.grad(lambda p: reinforce.loss(p, cfg, TinyNet, batch)[0])(params)


def test_gradient_of_a_one_parameter_policy_on_a_two_step_episode():
    # pi(1) = sigmoid(theta) = 0.5 at theta = 0, so d/dtheta log pi(1) = 1 - sigmoid(0) = 0.5.
    # gamma = 0.5: G_0 = 1 + 0.5 * 1 = 1.5, G_1 = 1. The loss is the mean over the 2 used steps:
    # L = -(log pi(a_0) G_0 + log pi(a_1) G_1) / 2  =>  dL/dtheta = -(0.5 * 1.5 + 0.5 * 1) / 2 = -0.625.
    # Had the tail step counted: -(0.5 * 1.5 + 0.5 * 1 + 0.5 * 100) / 3 = -17.08.
    cfg = reinforce.Config(gamma=0.5, normalize_returns=False)
    params = {"theta": jnp.zeros(()), "w": jnp.asarray(0.5)}
    g = _grads(cfg, _two_step_episode_then_tail(), params)
    assert float(g["theta"]) == pytest.approx(-0.625, abs=1e-6)
    assert float(g["w"]) == 0.0  # no baseline: the value head is not trained


def test_gradient_with_a_learned_baseline():
    # b(s) = w * obs = 0.5: weights G - b = 1.0, 0.5  =>  dL/dtheta = -(0.5 * 1.0 + 0.5 * 0.5) / 2 = -0.375.
    # Value loss vf_coef * mean 0.5 (b - G)^2: d/dw = 0.5 * ((0.5 - 1.5) + (0.5 - 1)) / 2 = -0.375.
    cfg = reinforce.Config(gamma=0.5, normalize_returns=False, baseline=True, vf_coef=0.5)
    params = {"theta": jnp.zeros(()), "w": jnp.asarray(0.5)}
    g = _grads(cfg, _two_step_episode_then_tail(), params)
    assert float(g["theta"]) == pytest.approx(-0.375, abs=1e-6)
    assert float(g["w"]) == pytest.approx(-0.375, abs=1e-6)
    # reward_scale = 2: G = 2 + 0.5 * 2 = 3, 2; weights 2.5, 1.5 => dL/dtheta = -(1.25 + 0.75) / 2 = -1.
    g = _grads(cfg.replace(reward_scale=2.0), _two_step_episode_then_tail(), params)
    assert float(g["theta"]) == pytest.approx(-1.0, abs=1e-6)


def test_normalized_returns_use_only_the_finished_episodes():
    # Weights G = 1.5, 1 standardised over the 2 used steps: mean 1.25, std 0.25 => +1, -1.
    # dL/dtheta = -(0.5 * 1 + 0.5 * -1) / 2 = 0 (a huge tail reward would have shifted the mean).
    cfg = reinforce.Config(gamma=0.5, normalize_returns=True)
    params = {"theta": jnp.zeros(()), "w": jnp.asarray(0.5)}
    g = _grads(cfg, _two_step_episode_then_tail(), params)
    assert float(g["theta"]) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------ probes

PROBE_CFG = dict(num_envs=64, hidden=(32,), learning_rate=1e-2, anneal_lr=False)


def train_probe(env, total_timesteps=64 * 300, **overrides):
    fields = {"total_timesteps": total_timesteps, **PROBE_CFG, **overrides}
    return _pg_testing.train_probe(reinforce.Config, env, **fields)


def test_action_reward_learns_the_obs_dependent_action():
    cfg, state, metrics = train_probe("probe:ActionReward")
    _pg_testing.assert_action_reward_solved(cfg, state)
    assert float(metrics["episode_return"][-1]) > 0.95  # the sampling policy is nearly greedy too


def test_delayed_reward_baseline_learns_gamma():
    # gamma = 0.5: the 2-step episode pays 1 at its end: G(obs 0) = 0.5 * 1, G(obs 1) = 1.
    cfg, state, _ = train_probe("probe:DelayedReward", gamma=0.5, baseline=True)
    _pg_testing.assert_delayed_reward_values(cfg, state)


def test_gaussian_policy_learns_a_equals_obs():
    # reward -(a - obs)^2; REINFORCE with a diagonal Gaussian must move the mean action onto obs.
    cfg, state, metrics = train_probe("probe:ContinuousActionReward", learning_rate=3e-3)
    _pg_testing.assert_action_tracks_obs(cfg, state)
    assert float(metrics["episode_return"][-1]) > -0.5  # N(0, 1) actions score -(1 + 1) = -2


def test_no_baseline_means_no_value_function():
    cfg = reinforce.Config(env="probe:ConstantReward", total_timesteps=64)
    with pytest.raises(ValueError, match="baseline=True"):
        jaxrl.make_value_fn(cfg, reinforce.init(cfg, jax.random.key(0)))


# ----------------------------------------------------------------- jit / vmap / determinism


def test_baseline_bootstraps_a_truncated_endless_episode_and_vmap_jit_agree():
    # Reward 1 every step, never terminates, cut after 20 steps. With the baseline, a cut episode's
    # return adds gamma * V(final obs), whose fixed point is V = 1 / (1 - gamma): 2 for gamma = 0.5,
    # 10 for gamma = 0.9; treating the cut as the end would give the mean Monte Carlo return
    # (20 - 7.906) / 2 = 6.05 at gamma = 0.9. Both (gamma, seed) pairs train in one vmapped program,
    # whose members must equal separate jitted runs, which repeat exactly. (test_a2c.py also checks
    # the un-jitted run: it is the same generic train loop.)
    base_cfg = dict(PROBE_CFG, env="probe:EndlessTimeLimit", total_timesteps=64 * 20 * 150, baseline=True)
    cfgs = [reinforce.Config(**base_cfg, gamma=g) for g in (0.5, 0.9)]
    keys = jax.random.split(jax.random.key(3), 2)
    runs = vmapped_runs_equal_separate_runs(cfgs, keys)
    v = [float(jaxrl.make_value_fn(c, s)(obs(0.0))) for c, (s, _) in zip(cfgs, runs, strict=True)]
    assert v[0] == pytest.approx(2.0, abs=0.15) and v[1] == pytest.approx(10.0, abs=0.75), v
    metrics = runs[1][1]
    assert float(metrics["episode_return"][-1]) == pytest.approx(20.0)
    assert float(metrics["used_fraction"][-1]) == 1.0  # the rollout is exactly one episode long
    assert metrics.env_steps[-1] == 64 * 20 * 150 and metrics.episode_return.shape == (150,)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(rollout_steps=100), r"shorter than the env's time limit \(500\)"),
        (dict(total_timesteps=1000), "smaller than one rollout"),
        (dict(num_envs=0), "num_envs must be a positive integer"),
        (dict(gamma=1.5), r"gamma must be in \[0.0, 1.0\]"),
        (dict(learning_rate=0.0), "learning_rate must be a positive number"),
    ],
)
def test_bad_config_fails_fast_with_a_clear_message(overrides, match):
    with pytest.raises(ValueError, match=match):
        jaxrl.train(reinforce.Config(**overrides), jax.random.key(0))


# --------------------------------------------------------------------------- short learning


@pytest.mark.slow
def test_cartpole_learns_quickly():
    # (slow only for its compile time) The defaults (8 whole episodes per update, lr 2e-3), 200k steps = 50 updates; random ~ 22.
    cfg = reinforce.Config(total_timesteps=200_000)
    _, metrics = jax.jit(jaxrl.train)(cfg, jax.random.key(0))
    ret = np.asarray(metrics["episode_return"])
    assert ret[-5:].mean() > 100, ret[::5]


# ---------------------------------------------------------------------------- headline (slow)


@pytest.mark.slow
def test_cartpole_reaches_450_over_8_seeds_within_1m_steps():
    # The headline, with the defaults (1M env steps counting the masked tails, 8 envs x 500
    # steps per update, lr 2e-3 annealed, normalised returns, no baseline). 8 seeds in one vmapped
    # program; the mean final greedy return over 32 episodes per seed, and the training return of the
    # last 5 updates (sampling policy), must both be >= 450.
    cfg = jaxrl.ReinforceConfig()
    keys = jax.random.split(jax.random.key(0), 8)
    states, metrics = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(cfg, keys)
    evaluate = jax.jit(jax.vmap(lambda s, k: jaxrl.evaluate(cfg, s, k, num_episodes=32)))
    greedy = np.asarray(evaluate(states, jax.random.split(jax.random.key(1), 8))).mean(axis=1)
    train_ret = np.asarray(metrics["episode_return"])[:, -5:].mean(axis=1)
    print(
        f"greedy per seed {greedy}, mean {greedy.mean():.1f}; training (last 5) {train_ret}, mean {train_ret.mean():.1f}"
    )
    assert int(metrics["env_steps"][0, -1]) <= 1_000_000
    assert greedy.mean() >= 450 and train_ret.mean() >= 450
