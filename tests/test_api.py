"""The public API of issue 2, exactly as the README shows it: train / evaluate / make_policy /
make_value_fn / stack_configs, vmapping over seeds and over hyperparameters, key types, determinism.

One small PPO-on-CartPole config; ``jax.jit(jaxrl.train)`` is compiled once and reused, since the
config's tunable scalars are pytree leaves (a different learning rate does not recompile).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl

CFG = jaxrl.PPOConfig(
    env="CartPole-v1",
    total_timesteps=2048,
    num_envs=4,
    rollout_steps=32,
    num_epochs=2,
    num_minibatches=2,
    hidden=(16,),
)  # 16 iterations of 128 steps
TRAIN = jax.jit(jaxrl.train)


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree_util.tree_map(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol), a, b
    )


def results(state, metrics):
    """The numeric outcome of a run (params and every metric; keys are compared separately)."""
    return state.params, tuple(metrics)


@pytest.fixture(scope="module")
def run0():
    return TRAIN(CFG, jax.random.key(0))


def test_public_names():
    for name in (
        "PPOConfig",
        "train",
        "evaluate",
        "make_policy",
        "make_value_fn",
        "stack_configs",
        "envs",
        "losses",
    ):
        assert name in jaxrl.__all__ and hasattr(jaxrl, name), name


def test_ppo_defaults_are_purejaxrl_cartpole():
    cfg = jaxrl.PPOConfig()
    assert cfg.env == "CartPole-v1" and cfg.env_params is None
    assert (cfg.total_timesteps, cfg.num_envs, cfg.rollout_steps) == (524_288, 4, 128)
    assert (cfg.num_epochs, cfg.num_minibatches) == (4, 4)
    assert (cfg.learning_rate, cfg.anneal_lr, cfg.gamma, cfg.gae_lambda) == (2.5e-4, True, 0.99, 0.95)
    assert (cfg.clip_eps, cfg.ent_coef, cfg.vf_coef, cfg.max_grad_norm) == (0.2, 0.01, 0.5, 0.5)
    assert tuple(cfg.hidden) == (64, 64) and cfg.activation == "tanh"


def test_train_returns_state_and_typed_metrics(run0):
    state, metrics = run0
    n = CFG.num_iterations
    assert n == 16
    assert metrics["episode_return"].shape == (n,) and metrics.episode_return is metrics["episode_return"]
    np.testing.assert_array_equal(metrics["env_steps"], np.arange(1, n + 1) * CFG.env_steps_per_iteration)
    assert "episode_return" in metrics.keys() and "env_steps" in metrics.keys()
    for name, value in metrics.items():
        assert value.shape[0] == n, name
        assert np.all(np.isfinite(np.asarray(value))), name
    # CartPole episodes last >= 8 steps and at most 500; a random-ish policy gets 10..100
    assert 8 <= float(metrics["episode_return"][-1]) <= 500
    with pytest.raises(KeyError):
        metrics["no_such_metric"]


def test_same_key_same_result_and_different_keys_differ(run0):
    again = TRAIN(CFG, jax.random.key(0))
    jax.tree_util.tree_map(np.testing.assert_array_equal, results(*run0), results(*again))
    other = TRAIN(CFG, jax.random.key(1))
    assert not np.allclose(run0[1]["total_loss"], other[1]["total_loss"])


def test_vmapped_seeds_equal_separate_runs_and_both_key_kinds_work():
    # The README's seed sweep, fed old-style PRNGKey keys (raw uint32[2]); the separate runs get the
    # same keys as new-style typed keys: PRNGKey(k) and key(k) are the same stream, so results match.
    raw_keys = jax.random.split(jax.random.PRNGKey(7), 2)
    assert raw_keys.dtype == jnp.uint32
    states, ms = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)))(CFG, raw_keys)
    assert ms["episode_return"].shape == (2, CFG.num_iterations)
    for i in range(2):
        s, m = TRAIN(CFG, jax.random.wrap_key_data(raw_keys[i]))
        assert_trees_close(jax.tree_util.tree_map(lambda x, i=i: x[i], results(states, ms)), results(s, m))
    assert not np.allclose(ms["total_loss"][0], ms["total_loss"][1])


def test_vmapped_learning_rates_equal_separate_runs():
    cfgs = [CFG.replace(learning_rate=lr) for lr in (1e-3, 1e-2)]
    keys = jax.random.split(jax.random.key(3), 2)
    stacked = jaxrl.stack_configs(cfgs)
    assert stacked.learning_rate.shape == (2,) and stacked.num_envs == CFG.num_envs
    states, ms = jax.jit(jax.vmap(jaxrl.train))(stacked, keys)
    separate = [TRAIN(c, k) for c, k in zip(cfgs, keys, strict=True)]
    for i, (s, m) in enumerate(separate):
        assert_trees_close(jax.tree_util.tree_map(lambda x, i=i: x[i], results(states, ms)), results(s, m))
    # the swept value matters: same key, different learning rates, different parameters
    s_same_key, _ = TRAIN(cfgs[1], keys[0])
    assert not np.allclose(
        jax.tree_util.tree_leaves(separate[0][0].params)[0], jax.tree_util.tree_leaves(s_same_key.params)[0]
    )


def test_stack_configs_rejects_static_differences_and_empty_lists():
    with pytest.raises(ValueError, match="num_envs"):
        jaxrl.stack_configs([CFG, CFG.replace(num_envs=8)])
    with pytest.raises(ValueError, match="hidden"):
        jaxrl.stack_configs([CFG, CFG.replace(hidden=(32,))])
    with pytest.raises(ValueError, match="at least one"):
        jaxrl.stack_configs([])


def test_evaluate_make_policy_and_value_fn(run0):
    state, _ = run0
    evaluate = jax.jit(lambda s, k: jaxrl.evaluate(CFG, s, k, num_episodes=6))  # compiled once
    returns = evaluate(state, jax.random.key(1))
    assert returns.shape == (6,) and returns.dtype == jnp.float32
    assert np.all((np.asarray(returns) >= 8) & (np.asarray(returns) <= 500))
    # the same key gives the same greedy episodes
    np.testing.assert_array_equal(returns, evaluate(state, jax.random.key(1)))

    act = jaxrl.make_policy(CFG, state)
    obs = jnp.asarray([[0.0, 0.0, 0.05, 0.0], [0.0, 0.0, -0.05, 0.0], [0.1, 0.2, 0.0, 0.1]])
    a = act(obs, jax.random.key(0))
    assert a.shape == (3,) and jnp.issubdtype(a.dtype, jnp.integer) and set(np.asarray(a).tolist()) <= {0, 1}
    single = act(obs[0], jax.random.key(0))
    assert single.shape == () and int(single) == int(a[0])
    sample = jaxrl.make_policy(CFG, state, deterministic=False)
    draws = jax.vmap(lambda k: sample(obs[0], k))(jax.random.split(jax.random.key(0), 64))
    assert set(np.asarray(draws).tolist()) <= {0, 1}

    value = jaxrl.make_value_fn(CFG, state)
    v = value(obs)
    assert v.shape == (3,) and np.all(np.isfinite(np.asarray(v)))
    np.testing.assert_allclose(value(obs[0]), v[0], rtol=1e-5, atol=1e-6)
