"""Every network-based RL algorithm exposes ``update(cfg, network, learner, batch) -> (learner, losses)``
so that a new algorithm, a wrapper or a user's own loop can drive any of them the same way."""

import inspect

import pytest

from jaxrl.algos import a2c, dqn, ppo, reinforce, sac

MODULES = [a2c, dqn, ppo, reinforce, sac]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_update_has_the_shared_signature(module):
    params = list(inspect.signature(module.update).parameters.values())
    assert len(params) == 4, [p.name for p in params]
    assert params[0].name == "cfg"
    assert all(p.default is inspect.Parameter.empty for p in params)
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    ret = inspect.signature(module.update).return_annotation
    assert "tuple[" in str(ret) and "Learner" in str(ret), ret
