"""jaxrl.envs.registry: names -> backends, clear errors for unknown names."""

import gymnax
import pytest

from jaxrl import envs
from jaxrl.envs import base, probes, registry


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("CartPol-v1", "CartPole-v1"),
        ("cartpole-v1", "CartPole-v1"),
        ("Pendulum-v0", "Pendulum-v1"),
        ("gymnax:CartPol-v1", "CartPole-v1"),
        ("probe:DelayReward", "probe:DelayedReward"),
    ],
)
def test_unknown_name_lists_close_names(name, suggestion):
    for call in (lambda: envs.check_name(name), lambda: envs.make(name, 2)):
        with pytest.raises(ValueError, match="Unknown environment") as err:
            call()
        msg = str(err.value)
        assert name in msg and suggestion in msg, msg
        assert "available_names" in msg  # says where the full list is


def test_unknown_name_without_close_match_still_says_what_to_do():
    with pytest.raises(ValueError, match="available_names") as err:
        envs.check_name("zzzzzzzzzzzzzzzzzzzz")
    assert "Did you mean" not in str(err.value)


def test_known_names_pass_check_and_build():
    names = envs.available_names()
    assert {"CartPole-v1", "Pendulum-v1", "Acrobot-v1"} <= set(names)
    assert {"probe:" + n for n in probes.PROBES} <= set(names)
    for name in ("CartPole-v1", "gymnax:CartPole-v1", "probe:ConstantReward"):
        envs.check_name(name)
    envs.check_name(gymnax.make("CartPole-v1")[0])  # instances are not names: nothing to check


def test_gymnax_prefix_is_the_default_backend():
    a, b = envs.make("CartPole-v1", 3), envs.make("gymnax:CartPole-v1", 3)
    assert type(a) is type(b)
    assert a.num_envs == b.num_envs == 3
    assert a.observation_space.shape == b.observation_space.shape == (4,)
    assert a.action_space == b.action_space == base.Discrete(2)
    assert a.max_episode_steps == 500


def test_env_params_and_instances():
    genv, params = gymnax.make("Pendulum-v1")
    env = envs.make(genv, 2, params.replace(max_steps_in_episode=17))
    assert env.max_episode_steps == 17
    assert isinstance(env.action_space, base.Box) and env.action_space.shape == (1,)
    assert envs.make(genv, 2).max_episode_steps == 200  # the instance's default params
    assert registry.env_name(genv) == "Pendulum-v1" and registry.env_name("probe:X") == "probe:X"


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        envs.make("CartPole-v1", 0)
    with pytest.raises(TypeError, match="gymnax Environment"):
        envs.make(42, 2)


def test_envpool_unknown_task_lists_close_names():
    pytest.importorskip("envpool", reason="the envpool backend is an optional extra")
    with pytest.raises(ValueError, match="CartPole-v1"):
        envs.make("envpool:CartPol-v1", 2)


def test_backend_table_is_the_one_place_a_backend_is_registered(monkeypatch, capsys):
    # A backend added to the table is reached by make, check_name, available_names, the stateful check
    # and `jaxrl envs`, with no other change (an unlisted one by its pattern line).
    made = []

    def make_toy(name, num_envs, env_params, full_name, **kwargs):
        made.append((name, num_envs, full_name))
        return envs.make("CartPole-v1", num_envs)

    toy = registry.Backend(make_toy, lambda: ["Alpha", "Beta"])
    pool = registry.Backend(make_toy, None, stateful=True, pattern="pool:<Anything>  (a toy pattern)")
    monkeypatch.setitem(registry.BACKENDS, "toy", toy)
    monkeypatch.setitem(registry.BACKENDS, "pool", pool)
    assert envs.make("toy:Beta", 3).num_envs == 3 and made == [("Beta", 3, "toy:Beta")]
    assert {"toy:Alpha", "toy:Beta"} <= set(envs.available_names())
    with pytest.raises(ValueError, match="toy:Beta") as err:  # close names come from the table too
        envs.check_name("toy:Bet")
    assert "pool:<Anything>" in str(err.value)
    envs.check_name("pool:whatever")  # unlisted: the backend validates its own names
    assert envs.holds_state_outside_jax("pool:x") and not envs.holds_state_outside_jax("toy:Alpha")

    from jaxrl import cli

    assert cli.main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "toy:Alpha" in lines and "pool:<Anything>  (a toy pattern)" in lines


def test_every_env_has_the_hooks_with_their_defaults():
    import jax
    import jax.numpy as jnp

    cart = envs.make("CartPole-v1", 2)
    probe = envs.make("probe:ConstantReward", 2)
    wrapped = envs.EpisodeStats(cart)
    for env in (cart, probe, wrapped):
        assert isinstance(env, base.Env) and env.frame_stack == 0 and env.params is not None
    assert wrapped.name == "CartPole-v1" and wrapped.params is cart.params
    # the default episode signal: the time step's reward, and done & valid
    ts = base.TimeStep(
        obs=jnp.zeros((3, 1)),
        reward=jnp.array([1.0, 2.0, 3.0]),
        terminated=jnp.array([True, False, True]),
        truncated=jnp.array([False, True, False]),
        next_obs=jnp.zeros((3, 1)),
        valid=jnp.array([True, True, False]),
    )
    reward, ended = probe.episode_signal(None, ts)
    assert reward.tolist() == [1.0, 2.0, 3.0] and ended.tolist() == [True, True, False]
    reward, ended = wrapped.episode_signal(envs.EpisodeStatsState(None, *([None] * 5)), ts)
    assert ended.tolist() == [True, True, False]
    keys = jax.random.split(jax.random.key(0), 4)
    assert base.Env.prepare_keys(probe, keys) is keys  # the protocol's default: keys unchanged
