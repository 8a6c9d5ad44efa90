"""Q-network heads (plain and dueling), torso choice, epsilon-greedy acting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.networks import q as qnet


def test_plain_head_shapes():
    net = qnet.QNetwork(num_actions=3, hidden=(8,))
    x = jax.ShapeDtypeStruct((4, 5), jnp.float32)
    params = jax.eval_shape(net.init, jax.random.key(0), x)
    assert jax.eval_shape(net.apply, params, x).shape == (4, 3)
    assert jax.eval_shape(net.apply, params, jax.ShapeDtypeStruct((5,), jnp.float32)).shape == (3,)


def test_dueling_head_is_value_plus_centred_advantage():
    net = qnet.QNetwork(num_actions=3, hidden=(8,), dueling=True)
    obs = jax.random.normal(jax.random.key(1), (6, 5))
    params = net.init(jax.random.key(0), obs)
    zero = lambda p, name: jax.tree_util.tree_map(jnp.zeros_like, p["params"][name])
    # advantage head zeroed: Q(s, a) = V(s) for every a
    p = {"params": {**params["params"], "advantage": zero(params, "advantage")}}
    q = net.apply(p, obs)
    np.testing.assert_allclose(q, jnp.broadcast_to(q[:, :1], q.shape), rtol=1e-6)
    # value head zeroed: Q = A - mean A, so Q averages to 0 over actions
    p = {"params": {**params["params"], "value": zero(params, "value")}}
    np.testing.assert_allclose(net.apply(p, obs).mean(axis=-1), 0.0, atol=1e-6)


@pytest.mark.parametrize(
    "shape, torso", [((4,), "mlp"), ((), "mlp"), ((10, 10, 4), "minatar_cnn"), ((84, 84, 4), "nature_cnn")]
)
def test_pick_torso(shape, torso):
    assert qnet.pick_torso(shape) == torso


def test_epsilon_greedy():
    q = jnp.array([[0.0, 1.0, 0.5]] * 4000)
    greedy = qnet.epsilon_greedy(jax.random.key(0), q, 0.0)
    assert bool((greedy == 1).all()) and greedy.dtype == jnp.int32
    # epsilon 0.3: greedy 0.7 + 0.3 / 3 = 0.8 of the time, each other action 0.1
    a = np.asarray(qnet.epsilon_greedy(jax.random.key(1), q, 0.3))
    freq = np.bincount(a, minlength=3) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.8, 0.1], atol=0.02)
