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
