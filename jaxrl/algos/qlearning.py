"""Tabular Q-learning (Watkins 1989) on many environments stepped in parallel.

``Q(s,a) <- Q(s,a) + alpha [r + gamma (1 - terminated) max_a' Q(s',a') - Q(s,a)]``, with s' the true next
state (a time-limit cut bootstraps, a terminal state does not), epsilon-greedy behaviour with a linear
epsilon schedule. Discrete observations and actions only (the Q-table is ``[num_states, num_actions]``).

Parallel environments: one step of B environments gives B transitions that are applied as ONE
synchronous update, each visited (s, a) moving by alpha times the MEAN of its TD errors in the batch.
Without collisions this is exactly B sequential updates; with them it keeps alpha a step size (a sum
would move Q(s0, .) by B * alpha when every env sits in the start state).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import envs, losses, rollout, schedules
from jaxrl.algos import base, checks, env_building, named_metrics
from jaxrl.envs import registry
from jaxrl.networks import q as qnet


# ---------------------------------------------------------------------------------------- CONFIG
@checks.renamed_fields(num_steps="rollout_steps")
@struct.dataclass
class Config:
    """Tabular Q-learning settings; defaults solve gymnax FrozenLake-misc (4x4, slippery)."""

    env: Any = struct.field(pytree_node=False, default="FrozenLake-misc")  # name or gymnax Environment
    env_params: Any = struct.field(pytree_node=False, default=None)  # gymnax EnvParams (None: defaults)
    total_timesteps: int = struct.field(pytree_node=False, default=1_000_000)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=64)  # parallel environments
    rollout_steps: int = struct.field(pytree_node=False, default=8)  # env steps per env per iteration
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # alpha falls linearly to 0
    learning_rate: float = 0.1  # alpha, step size of each Q-table update (initial, if annealed)
    gamma: float = 0.99  # discount
    epsilon_start: float = 1.0  # exploration rate at step 0
    epsilon_end: float = 0.1  # exploration rate after the ramp
    exploration_fraction: float = 0.5  # fraction of total_timesteps over which epsilon falls linearly
    q_init: float = 0.0  # initial Q-value of every (s, a) (> 0: optimistic exploration)

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps per iteration."""
        return self.num_envs * self.rollout_steps

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.env_steps_per_iteration


class State(NamedTuple):
    q: jax.Array  # [num_states, num_actions] float32 Q-table
    env: rollout.EnvCarry  # env state + last time step
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 iterations done
    last_return: jax.Array  # [] float32 mean return of the last finished episodes (NaN before any)


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # mean return of episodes finished this iteration (carried forward)
    env_steps: jax.Array  # env steps so far
    td_error: jax.Array  # mean |TD error| of this iteration's valid transitions
    epsilon: jax.Array  # exploration rate used this iteration


# ------------------------------------------------------------------------------------ BUILDING
make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    checks.check_positive_ints("QLearningConfig", cfg, "total_timesteps", "num_envs", "rollout_steps")
    checks.check_one_iteration(
        cfg,
        "QLearningConfig",
        cfg.env_steps_per_iteration,
        "iteration",
        "num_envs * rollout_steps",
        "raise it or shrink them",
    )
    env = envs.make(cfg.env, 1, cfg.env_params)
    name = registry.env_name(cfg.env)
    if not isinstance(env.observation_space, envs.Discrete):
        raise ValueError(
            f"Tabular Q-learning needs a discrete observation space (a state index), but {name} has "
            f"{env.observation_space}; use DQNConfig (a Q-network) for continuous or image observations"
        )
    if not isinstance(env.action_space, envs.Discrete):
        raise ValueError(
            f"Q-learning needs a discrete action space, but {name} has {env.action_space}; use "
            f"PPOConfig (Gaussian policy) for continuous actions"
        )
    checks.check_positive(cfg, "learning_rate")
    checks.check_range(cfg, "learning_rate", 0.0, 1.0)
    checks.check_range(cfg, "gamma", 0.0, 1.0)
    for name in ("epsilon_start", "epsilon_end", "exploration_fraction"):
        checks.check_range(cfg, name, 0.0, 1.0)


def _table_shape(cfg: Config) -> tuple[int, int]:
    env = envs.make(cfg.env, 1, cfg.env_params)
    return env.observation_space.n, env.action_space.n


def epsilon(cfg: Config, env_steps: jax.Array) -> jax.Array:
    """The behaviour policy's exploration rate after ``env_steps`` env steps."""
    ramp = cfg.exploration_fraction * cfg.total_timesteps
    return schedules.linear(cfg.epsilon_start, cfg.epsilon_end, ramp, env_steps)


def step_size(cfg: Config, env_steps: jax.Array) -> jax.Array:
    """alpha after ``env_steps`` env steps: constant, or falling linearly to 0 over the run."""
    if not cfg.anneal_lr:
        return jnp.asarray(cfg.learning_rate, jnp.float32)
    return schedules.linear(cfg.learning_rate, 0.0, cfg.total_timesteps, env_steps)


# ---------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    k_env, key = jax.random.split(key)
    return State(
        q=jnp.full(_table_shape(cfg), cfg.q_init, jnp.float32),
        env=rollout.reset(make_env(cfg), k_env),
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# -------------------------------------------------------------------------------------- UPDATE
def td_errors(
    q: jax.Array,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    next_obs: jax.Array,
    gamma: jax.Array | float,
) -> jax.Array:
    """``[N]`` TD errors ``r + gamma (1 - terminated) max_a' Q[s', a'] - Q[s, a]`` of N transitions
    (``obs``/``next_obs``/``action`` int [N], ``reward`` [N], ``terminated`` [N] bool) on table ``q [S, A]``."""
    discount = gamma * (1.0 - terminated.astype(jnp.float32))
    return jax.vmap(losses.q_learning)(q[obs], action, reward, discount, q[next_obs])


def update(
    q: jax.Array,
    obs: jax.Array,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    next_obs: jax.Array,
    valid: jax.Array,
    alpha: jax.Array | float,
    gamma: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """One synchronous update from N transitions (all ``[N]``): each visited ``(s, a)`` moves by
    ``alpha * mean(TD errors of its valid transitions)``. Returns ``(new q, td [N])`` (td 0 where invalid)."""
    td = td_errors(q, obs, action, reward, terminated, next_obs, gamma)
    w = valid.astype(jnp.float32)
    td = td * w
    td_sum = jnp.zeros_like(q).at[obs, action].add(td)
    count = jnp.zeros_like(q).at[obs, action].add(w)
    return q + alpha * td_sum / jnp.maximum(count, 1.0), td


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Step ``num_envs`` environments ``rollout_steps`` times epsilon-greedily, then apply the updates in
    time order (one synchronous update per env step)."""
    env = make_env(cfg)
    key, k_roll = jax.random.split(state.key)
    steps_before = state.iteration * cfg.env_steps_per_iteration
    eps = epsilon(cfg, steps_before)

    # ROLLOUT (acting on the table as it was at the start of the iteration)
    act = lambda obs, k: (qnet.epsilon_greedy(k, state.q[obs], eps), None)
    env_carry, traj = rollout.rollout(env, act, state.env, k_roll, cfg.rollout_steps)

    # UPDATES, one per env step
    alpha = step_size(cfg, steps_before)

    def body(q, t):
        return update(q, t.obs, t.action, t.reward, t.terminated, t.next_obs, t.valid, alpha, cfg.gamma)

    q, td = jax.lax.scan(body, state.q, traj)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    n_valid = jnp.maximum(jnp.sum(traj.valid), 1)
    metrics = Metrics(
        episode_return=last_return,
        env_steps=iteration * cfg.env_steps_per_iteration,
        td_error=jnp.sum(jnp.abs(td)) / n_valid,
        epsilon=eps,
    )
    return State(q, env_carry, key, iteration, last_return), metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action``: greedy in the table (``deterministic=False``: epsilon_end-greedy)."""

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        q = state.q[obs]
        if deterministic:
            return jnp.argmax(q, axis=-1).astype(jnp.int32)
        return qnet.epsilon_greedy(key, q, cfg.epsilon_end)

    return act


def make_value_fn(cfg: Config, state: State):
    """``value(obs) -> max_a Q(obs, a)``."""
    return lambda obs: jnp.max(state.q[obs], axis=-1)


ALGORITHM = base.register(
    base.Algorithm(
        name="qlearning",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        make_value_fn=make_value_fn,
        validate=validate,
        description="tabular Q-learning, epsilon-greedy, parallel environments (discrete states only)",
        steps_per_iteration=lambda cfg: cfg.env_steps_per_iteration,
    )
)
