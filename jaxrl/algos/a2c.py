"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, arXiv:1602.01783), one update per rollout.

Each iteration steps ``num_envs`` environments ``rollout_steps`` times with the current policy, then takes
one gradient step on ``-mean log pi(a|s) A + vf_coef * mean 0.5 (V(s) - (A + V(s)))^2 - ent_coef * H``.
The advantage is ``A = r + gamma V(s') - V(s)`` by default (``gae_lambda = 0``); ``gae_lambda = 1``
gives n-step returns to the end of the rollout, values in between GAE. Truncation bootstraps from V of
the true final observation, termination does not. The network is one trunk with a V-head and a
pi-head (``shared_network=True``, the bifurcated actor-critic) or two separate MLPs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import envs, optim, policies, rollout
from jaxrl.algos import base, checks, env_building, named_metrics
from jaxrl.networks.heads import ActorCritic


# ---------------------------------------------------------------------------------------- CONFIG
@checks.renamed_fields(num_steps="rollout_steps")
@struct.dataclass
class Config:
    """A2C settings; the defaults reach CartPole-v1's 500 within 1M steps (see benchmarks/)."""

    env: Any = struct.field(pytree_node=False, default="CartPole-v1")  # name or gymnax Environment
    env_params: Any = struct.field(pytree_node=False, default=None)  # gymnax EnvParams (None: defaults)
    total_timesteps: int = struct.field(pytree_node=False, default=1_000_000)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=16)  # parallel environments
    rollout_steps: int = struct.field(pytree_node=False, default=8)  # rollout length per update
    hidden: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))  # MLP widths
    activation: str = struct.field(pytree_node=False, default="tanh")
    shared_network: bool = struct.field(pytree_node=False, default=True)  # one trunk, V- and pi-heads
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay to 0
    normalize_advantages: bool = struct.field(pytree_node=False, default=False)  # per rollout
    learning_rate: float = 2e-3  # Adam step size (initial, if annealed)
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.0  # 0: one-step TD advantage; 1: n-step to the rollout end; between: GAE
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global-norm gradient clip
    # rewards are multiplied by this in the loss (V learns the scaled return): keeps the value loss of
    # long-horizon tasks (Acrobot's returns near -100) from swamping the shared trunk; try 0.1 there
    reward_scale: float = 1.0

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.env_steps_per_iteration


class State(NamedTuple):
    params: Any  # network parameters
    opt_state: Any  # optax state
    env: rollout.EnvCarry  # env state + last time step
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 updates done
    last_return: jax.Array  # [] float32 mean return of the last finished episodes (NaN before any)


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # mean return of episodes finished this iteration (carried forward)
    env_steps: jax.Array  # env steps so far
    total_loss: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array


# ------------------------------------------------------------------------------------ BUILDING
make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def make_network(cfg: Config, env: envs.Env) -> ActorCritic:
    return policies.actor_critic(env, cfg.hidden, cfg.activation, cfg.shared_network)


def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    checks.check_positive_ints("A2CConfig", cfg, "total_timesteps", "num_envs", "rollout_steps")
    checks.check_one_iteration(
        cfg,
        "A2CConfig",
        cfg.env_steps_per_iteration,
        "rollout",
        "num_envs * rollout_steps",
        "raise it or shrink the rollout",
    )
    checks.check_positive(cfg, "learning_rate", "max_grad_norm", "reward_scale")
    checks.check_range(cfg, "gamma", 0.0, 1.0)
    checks.check_range(cfg, "gae_lambda", 0.0, 1.0)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optim.make_optimizer(
        cfg.learning_rate, cfg.max_grad_norm, anneal_steps=cfg.num_iterations if cfg.anneal_lr else None
    )


# ---------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    env = make_env(cfg)
    net = make_network(cfg, env)
    carry, params, key = env_building.init_env_and_params(env, net, key)
    return State(
        params=params,
        opt_state=_optimizer(cfg).init(params),
        env=carry,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# ------------------------------------------------------------------------------------- LOSS
def loss(
    params: Any, cfg: Config, net: ActorCritic, batch: policies.PGBatch
) -> tuple[jax.Array, policies.ActorCriticLosses]:
    """A2C loss on a flat batch ``[N]``; returns ``(total, ActorCriticLosses)``."""
    return policies.actor_critic_loss(
        params,
        net,
        net.discrete,
        batch,
        cfg.vf_coef,
        cfg.ent_coef,
        normalize_advantages=cfg.normalize_advantages,
    )


# -------------------------------------------------------------------------------------- UPDATE
def update(
    cfg: Config, net: ActorCritic, learner: policies.Learner, batch: policies.PGBatch
) -> tuple[policies.Learner, policies.ActorCriticLosses]:
    """One gradient step on the whole rollout."""
    params, opt_state, terms = optim.step(_optimizer(cfg), loss, *learner, cfg, net, batch)
    return policies.Learner(params, opt_state), terms


def rollout_batch(cfg: Config, net: ActorCritic, params: Any, traj: rollout.Transition) -> policies.PGBatch:
    """Advantages and value targets of a ``[T, B]`` rollout, flattened to a ``[T * B]`` batch.

    ``traj.extras = (action, V(obs))`` as the behaviour policy recorded them; rewards are scaled by
    ``cfg.reward_scale`` first.
    """
    action, value = traj.extras
    traj = traj._replace(reward=traj.reward * cfg.reward_scale)
    v_next = net.apply(params, traj.next_obs).value
    adv = policies.advantages(traj, value, v_next, cfg.gamma, cfg.gae_lambda)
    return rollout.flatten_time_batch(policies.PGBatch(traj.obs, action, adv, adv + value, traj.valid))


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Collect ``num_envs x rollout_steps`` transitions, then one gradient step."""
    env = make_env(cfg)
    net = make_network(cfg, env)
    discrete = envs.is_discrete(env.action_space)
    key, k_roll = jax.random.split(state.key)

    def act(obs, k):
        out = net.apply(state.params, obs)
        action = policies.sample(out, k, discrete)
        return policies.to_env_action(env, action), (action, out.value)

    env_carry, traj = rollout.rollout(env, act, state.env, k_roll, cfg.rollout_steps)
    batch = rollout_batch(cfg, net, state.params, traj)
    (params, opt_state), losses = update(cfg, net, policies.Learner(state.params, state.opt_state), batch)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    metrics = Metrics(
        episode_return=last_return,
        env_steps=iteration * cfg.env_steps_per_iteration,
        total_loss=losses.total,
        policy_loss=losses.policy_loss,
        value_loss=losses.value_loss,
        entropy=losses.entropy,
    )
    return State(params, opt_state, env_carry, key, iteration, last_return), metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action`` for single or batched observations (greedy by default)."""
    env = envs.make(cfg.env, 1, cfg.env_params)
    return policies.make_act(make_network(cfg, env), state.params, env, deterministic=deterministic)


def make_value_fn(cfg: Config, state: State):
    """``value(obs) -> V(obs)`` for single or batched observations."""
    net = make_network(cfg, envs.make(cfg.env, 1, cfg.env_params))
    return lambda obs: net.apply(state.params, obs).value


ALGORITHM = base.register(
    base.Algorithm(
        name="a2c",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        make_value_fn=make_value_fn,
        validate=validate,
        description="advantage actor-critic, one update per rollout; TD(0)/n-step/GAE advantages",
        steps_per_iteration=lambda cfg: cfg.env_steps_per_iteration,
    )
)
