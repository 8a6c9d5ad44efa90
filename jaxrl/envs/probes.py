"""Probe environments: tiny gymnax environments whose exact values are known, to catch sign, discount
and bootstrap bugs (after Andy Jones' "debugging RL" probes). Registered as ``probe:<Name>``.

Each is a plain gymnax ``Environment``, so they also show how users bring their own environments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    pos: jax.Array  # probe-specific observation source


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 1


class _Probe(environment.Environment):
    obs_dim = 1
    n_actions = 1

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.obs_dim,), jnp.float32)

    def action_space(self, params):
        return spaces.Discrete(self.n_actions)

    @property
    def num_actions(self) -> int:
        return self.n_actions

    def is_terminated(self, state, params):
        return jnp.array(False)


class ConstantReward(_Probe):
    """One step, reward +1, terminates. V(s) = 1 for any gamma."""

    def reset_env(self, key, params):
        return jnp.zeros((1,)), ProbeState(time=0, pos=jnp.array(0.0))

    def step_env(self, key, state, action, params):
        s = ProbeState(time=state.time + 1, pos=state.pos)
        return jnp.zeros((1,)), s, jnp.array(1.0), jnp.array(True), {}


class ObsDependentReward(_Probe):
    """One step; obs is +1 or -1 at random and the reward equals it. V(s) = obs."""

    def reset_env(self, key, params):
        pos = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return pos[None], ProbeState(time=0, pos=pos)

    def step_env(self, key, state, action, params):
        s = ProbeState(time=state.time + 1, pos=state.pos)
        return jnp.zeros((1,)), s, state.pos, jnp.array(True), {}


class DelayedReward(_Probe):
    """Two steps: obs 0 then 1; reward +1 only when leaving obs 1, then terminates.
    V(obs=0) = gamma, V(obs=1) = 1: a wrong discount shows at obs 0."""

    def reset_env(self, key, params):
        return jnp.zeros((1,)), ProbeState(time=0, pos=jnp.array(0.0))

    def step_env(self, key, state, action, params):
        pos = state.pos + 1.0
        s = ProbeState(time=state.time + 1, pos=pos)
        done = pos >= 2.0
        return jnp.minimum(pos, 1.0)[None], s, done.astype(jnp.float32), done, {}

    @property
    def default_params(self) -> ProbeParams:
        # The episode lasts two steps; the base probes' 1-step time limit would truncate it after one.
        return ProbeParams(max_steps_in_episode=2)


class ActionReward(_Probe):
    """One step; obs +-1 at random; reward +1 for action 1 when obs is +1 and for action 0 when obs
    is -1, else 0. The optimal policy is obs-dependent; its value is 1."""

    n_actions = 2

    def reset_env(self, key, params):
        pos = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return pos[None], ProbeState(time=0, pos=pos)

    def step_env(self, key, state, action, params):
        s = ProbeState(time=state.time + 1, pos=state.pos)
        good = jnp.where(state.pos > 0, action == 1, action == 0)
        return jnp.zeros((1,)), s, good.astype(jnp.float32), jnp.array(True), {}


class EndlessTimeLimit(_Probe):
    """Never terminates; reward +1 every step; cut by a time limit (default 20 steps).
    The observation is constant, so the correct value is 1 / (1 - gamma): only bootstrapping through
    truncation gives it; treating the cut as terminal gives roughly the mean truncated return."""

    def reset_env(self, key, params):
        return jnp.zeros((1,)), ProbeState(time=0, pos=jnp.array(0.0))

    def step_env(self, key, state, action, params):
        s = ProbeState(time=state.time + 1, pos=state.pos)
        return jnp.zeros((1,)), s, jnp.array(1.0), jnp.array(False), {}

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=20)


class ContinuousActionReward(_Probe):
    """One step; obs +-1 at random; reward = -(a - obs)^2 for a 1-d continuous action a.
    The optimal action is a = obs, value 0."""

    def reset_env(self, key, params):
        pos = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return pos[None], ProbeState(time=0, pos=pos)

    def step_env(self, key, state, action, params):
        s = ProbeState(time=state.time + 1, pos=state.pos)
        a = jnp.reshape(action, ())
        return jnp.zeros((1,)), s, -((a - state.pos) ** 2), jnp.array(True), {}

    def action_space(self, params):
        return spaces.Box(-2.0, 2.0, (1,), jnp.float32)


PROBES = {
    "ConstantReward": ConstantReward,
    "ObsDependentReward": ObsDependentReward,
    "DelayedReward": DelayedReward,
    "ActionReward": ActionReward,
    "EndlessTimeLimit": EndlessTimeLimit,
    "ContinuousActionReward": ContinuousActionReward,
}
