"""Soft Actor-Critic for continuous actions (Haarnoja et al. 2018, https://arxiv.org/abs/1812.05905).

Twin Q critics with Polyak-averaged targets (clipped double Q: the smaller target estimate), a
tanh-squashed Gaussian actor, and a temperature alpha learned so that the policy's entropy tracks
``-target_entropy_scale * |A|``. Each iteration steps ``num_envs`` environments ``rollout_steps``
times (uniformly random actions before ``learning_starts`` env steps, then the sampled policy), stores
the steps in replay memory, and takes ``gradient_steps`` gradient steps, each on a fresh minibatch:

    y      = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
    L_Q    = sum_j mean 0.5 (Q_j(s, a) - y)^2
    L_pi   = mean alpha log pi(a~|s) - min_j Q_j(s, a~),                            a~ ~ pi(.|s)
    L_alpha = mean -alpha (log pi(a~|s) + target_entropy)                          (a~ not differentiated)

then ``target <- tau * online + (1 - tau) * target``. Actions live in ``[-1, 1]`` for the networks and
the replay memory and are scaled to the action space's bounds for the environment. Time-limit cuts
bootstrap from the true final observation; termination does not.

Storage, minibatches and target updates are the shared off-policy parts (:mod:`jaxrl.algos.offpolicy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl import envs, optim, replay, rollout
from jaxrl.algos import base, checks, env_building, named_metrics, offpolicy
from jaxrl.envs import registry
from jaxrl.networks import mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the actor's log standard deviation is squashed into this range


# -------------------------------------------------------------------------------------- CONFIG
@struct.dataclass
class Config:
    """SAC settings. Defaults are sized for gymnax Pendulum-v1 (10k env steps, small networks, a fast
    temperature and target); larger tasks want the paper's 256-256 networks, lr 3e-4, tau 0.005, 1M steps."""

    env: str = struct.field(pytree_node=False, default="Pendulum-v1")
    env_params: Any = struct.field(pytree_node=False, default=None)
    total_timesteps: int = struct.field(pytree_node=False, default=10_000)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=1)  # parallel environments
    rollout_steps: int = struct.field(pytree_node=False, default=1)  # env steps per env per iteration
    gradient_steps: int = struct.field(pytree_node=False, default=1)  # gradient steps per iteration
    buffer_size: int = struct.field(pytree_node=False, default=10_000)  # replay capacity (transitions)
    minibatch_size: int = struct.field(pytree_node=False, default=256)  # transitions per gradient step
    learning_starts: int = struct.field(pytree_node=False, default=1_000)  # random-action env steps first
    hidden: Sequence[int] = struct.field(pytree_node=False, default=(64, 64))  # MLP sizes, actor and critics
    activation: str = struct.field(pytree_node=False, default="silu")
    learn_alpha: bool = struct.field(pytree_node=False, default=True)  # tune alpha to the target entropy
    learning_rate: float = 3e-3  # Adam step size of actor, critics and temperature
    gamma: float = 0.99  # discount
    tau: float = 0.02  # Polyak rate of the target critics (every gradient step)
    init_alpha: float = 1.0  # initial temperature (fixed temperature if learn_alpha=False)
    target_entropy_scale: float = 1.0  # target entropy = -scale * action dimensions
    max_grad_norm: float | None = None  # global-norm gradient clip (None: none)

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.env_steps_per_iteration


class State(NamedTuple):
    actor_params: Any  # policy network
    critic_params: Any  # twin Q networks, leaves stacked [2, ...]
    target_critic_params: Any  # their Polyak averages
    log_alpha: jax.Array  # [] log temperature
    actor_opt: Any  # optax states
    critic_opt: Any
    alpha_opt: Any
    replay: replay.ReplayState  # replay memory
    env: rollout.EnvCarry  # env state + last time step
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 iterations done
    last_return: jax.Array  # [] float32 mean return of the last finished episodes (NaN before any)


class Learner(NamedTuple):
    """What one gradient step reads and changes (the ``update`` carry)."""

    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


class Losses(NamedTuple):
    """The loss terms of one gradient step, each ``[]``."""

    critic_loss: jax.Array
    actor_loss: jax.Array
    alpha_loss: jax.Array
    alpha: jax.Array  # temperature used in this step
    entropy: jax.Array  # -mean log pi(a~|s), the policy's entropy estimate
    q_value: jax.Array  # mean Q_1(s, a) of the minibatch


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # mean return of episodes finished this iteration (carried forward)
    env_steps: jax.Array  # env steps so far
    critic_loss: jax.Array  # means over this iteration's gradient steps (0 before learning starts)
    actor_loss: jax.Array
    alpha_loss: jax.Array
    alpha: jax.Array
    entropy: jax.Array
    q_value: jax.Array


# ------------------------------------------------------------------------------------ NETWORKS
class Actor(nn.Module):
    """``obs -> (mean, log_std)`` of the pre-squash Gaussian, each ``[..., A]``."""

    action_dim: int
    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = mlp.MLP(self.hidden, self.activation, kernel_init=nn.initializers.lecun_normal())(obs)
        mean = nn.Dense(self.action_dim)(x)
        log_std = jnp.tanh(nn.Dense(self.action_dim)(x))
        return mean, LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1.0)


class Critic(nn.Module):
    """``(obs, action) -> Q(obs, action)``, ``[...]``."""

    hidden: Sequence[int] = (256, 256)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs.astype(jnp.float32), action], axis=-1)
        x = mlp.MLP(self.hidden, self.activation, kernel_init=nn.initializers.lecun_normal())(x)
        return nn.Dense(1)(x)[..., 0]


class Networks(NamedTuple):
    actor: Actor
    critic: Critic

    def q(self, critic_params: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Both critics: ``[2, ...]``. The inputs are broadcast to ``[2, ...]`` rather than shared
        (``in_axes=None``): shared, XLA computes the two first layers as one wide product and then transposes
        every hidden activation to and from the critic-major layout, a copy per layer and pass."""
        num = jax.tree_util.tree_leaves(critic_params)[0].shape[0]
        obs, action = (jnp.broadcast_to(x, (num, *x.shape)) for x in (obs, action))
        return jax.vmap(self.critic.apply)(critic_params, obs, action)


def make_networks(cfg: Config, env: envs.Env) -> Networks:
    dim = envs.num_actions(env.action_space)
    return Networks(Actor(dim, tuple(cfg.hidden), cfg.activation), Critic(tuple(cfg.hidden), cfg.activation))


make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def target_entropy(cfg: Config, env: envs.Env) -> float:
    return -cfg.target_entropy_scale * envs.num_actions(env.action_space)


# -------------------------------------------------------------------------------------- POLICY
def squashed_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, u: jax.Array) -> jax.Array:
    """``log pi(tanh(u))`` for ``u ~ N(mean, exp(log_std))``, summed over the last axis:
    ``sum log N(u; mean, std) - log(1 - tanh(u)^2)``, the Jacobian term written as
    ``2 (log 2 - u - softplus(-2u))`` (exact, and finite where tanh(u) rounds to +-1)."""
    z = (u - mean) * jnp.exp(-log_std)
    normal = -0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    jacobian = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(normal - jacobian, axis=-1)


def sample_action(actor: Actor, params: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A reparameterised sample ``a = tanh(mean + std * eps)`` in ``[-1, 1]`` and its log-probability."""
    mean, log_std = actor.apply(params, obs)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), squashed_gaussian_log_prob(mean, log_std, u)


def to_env_action(env: envs.Env, action: jax.Array) -> jax.Array:
    """``[-1, 1]`` -> the action space's ``[low, high]``."""
    low = jnp.asarray(env.action_space.low, jnp.float32)
    high = jnp.asarray(env.action_space.high, jnp.float32)
    return low + 0.5 * (action + 1.0) * (high - low)


# ---------------------------------------------------------------------------------------- LOSS
def critic_loss(
    critic_params: Any,
    learner: Learner,
    nets: Networks,
    batch: offpolicy.Batch,
    key: jax.Array,
    gamma: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """``sum_j`` weighted mean ``0.5 (Q_j(s, a) - y)^2`` with the soft clipped-double-Q target ``y``
    (not differentiated); also the mean ``Q_1(s, a)``."""
    next_action, next_log_prob = sample_action(nets.actor, learner.actor_params, batch.next_obs, key)
    q_next = jnp.min(nets.q(learner.target_critic_params, batch.next_obs, next_action), axis=0)
    alpha = jnp.exp(learner.log_alpha)
    discount = gamma * (1.0 - batch.terminated.astype(jnp.float32))
    y = jax.lax.stop_gradient(batch.reward + discount * (q_next - alpha * next_log_prob))
    q = nets.q(critic_params, batch.obs, batch.action)  # [2, N]
    n = jnp.maximum(jnp.sum(batch.weight), 1.0)
    per = 0.5 * jnp.square(q - y[None])
    return jnp.sum(per * batch.weight[None]) / n, jnp.sum(q[0] * batch.weight) / n


def actor_loss(
    actor_params: Any, learner: Learner, nets: Networks, batch: offpolicy.Batch, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Weighted mean ``alpha log pi(a~|s) - min_j Q_j(s, a~)`` (critics and alpha held fixed); also the
    log-probabilities ``[N]`` for the temperature's loss."""
    action, log_prob = sample_action(nets.actor, actor_params, batch.obs, key)
    q = jnp.min(nets.q(learner.critic_params, batch.obs, action), axis=0)
    alpha = jnp.exp(learner.log_alpha)
    n = jnp.maximum(jnp.sum(batch.weight), 1.0)
    return jnp.sum((alpha * log_prob - q) * batch.weight) / n, log_prob


def alpha_loss(
    log_alpha: jax.Array, log_prob: jax.Array, weight: jax.Array, target: jax.Array | float
) -> jax.Array:
    """``mean -alpha (log pi + target_entropy)``: alpha rises while the entropy is below the target."""
    n = jnp.maximum(jnp.sum(weight), 1.0)
    return jnp.sum(-jnp.exp(log_alpha) * jax.lax.stop_gradient(log_prob + target) * weight) / n


# -------------------------------------------------------------------------------------- UPDATE
def _optimizer(cfg: Config) -> optax.GradientTransformation:
    # Adam eps 1e-8 as PyTorch's SAC implementations (CleanRL, Stable-Baselines3) use. Flattened: the
    # parameters are raveled into one vector, so Adam is a few fused ops instead of a few per leaf.
    return optax.flatten(optim.make_optimizer(cfg.learning_rate, cfg.max_grad_norm, eps=1e-8))


def update(
    cfg: Config, nets: Networks, learner: Learner, batch: offpolicy.Batch, key: jax.Array, target: float
) -> tuple[Learner, Losses]:
    """One gradient step of critics, actor and temperature on ``batch``, then the Polyak target update.
    The actor's step uses the critics just updated (as in the paper's Algorithm 1)."""
    k_critic, k_actor = jax.random.split(key)
    opt = _optimizer(cfg)

    (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        learner.critic_params, learner, nets, batch, k_critic, cfg.gamma
    )
    updates, critic_opt = opt.update(grads, learner.critic_opt, learner.critic_params)
    critic_params = optax.apply_updates(learner.critic_params, updates)
    learner = learner._replace(critic_params=critic_params, critic_opt=critic_opt)

    (a_loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        learner.actor_params, learner, nets, batch, k_actor
    )
    updates, actor_opt = opt.update(grads, learner.actor_opt, learner.actor_params)
    actor_params = optax.apply_updates(learner.actor_params, updates)

    t_loss, grad = jax.value_and_grad(alpha_loss)(learner.log_alpha, log_prob, batch.weight, target)
    if cfg.learn_alpha:
        updates, alpha_opt = opt.update(grad, learner.alpha_opt, learner.log_alpha)
        log_alpha = optax.apply_updates(learner.log_alpha, updates)
    else:
        log_alpha, alpha_opt = learner.log_alpha, learner.alpha_opt

    n = jnp.maximum(jnp.sum(batch.weight), 1.0)
    losses = Losses(
        critic_loss=c_loss,
        actor_loss=a_loss,
        alpha_loss=t_loss,
        alpha=jnp.exp(learner.log_alpha),
        entropy=-jnp.sum(log_prob * batch.weight) / n,
        q_value=q_mean,
    )
    learner = learner._replace(
        actor_params=actor_params,
        actor_opt=actor_opt,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        target_critic_params=offpolicy.update_target(critic_params, learner.target_critic_params, cfg.tau),
    )
    return learner, losses


# ---------------------------------------------------------------------------------------- INIT
def make_buffer(cfg: Config, env: envs.Env, example_obs: jax.Array) -> replay.ReplayBuffer:
    action = jax.ShapeDtypeStruct((envs.num_actions(env.action_space),), jnp.float32)
    return offpolicy.make_buffer(cfg.buffer_size, cfg.num_envs, example_obs, action)


def init(cfg: Config, key: jax.Array) -> State:
    env = make_env(cfg)
    nets = make_networks(cfg, env)
    k_actor, k_critic, k_env, key = jax.random.split(key, 4)
    carry = rollout.reset(env, k_env)
    obs = carry.timestep.obs
    action = jnp.zeros((obs.shape[0], envs.num_actions(env.action_space)), jnp.float32)
    actor_params = nets.actor.init(k_actor, obs)
    critic_params = jax.vmap(lambda k: nets.critic.init(k, obs, action))(jax.random.split(k_critic))
    log_alpha = jnp.log(jnp.asarray(cfg.init_alpha, jnp.float32))
    opt = _optimizer(cfg)
    return State(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=critic_params,
        log_alpha=log_alpha,
        actor_opt=opt.init(actor_params),
        critic_opt=opt.init(critic_params),
        alpha_opt=opt.init(log_alpha),
        replay=make_buffer(cfg, env, obs[0]).init(),
        env=carry,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Act and store ``num_envs x rollout_steps`` steps, then ``gradient_steps`` gradient steps once
    ``learning_starts`` env steps are done."""
    env = make_env(cfg)
    nets = make_networks(cfg, env)
    buf = make_buffer(cfg, env, state.env.timestep.obs[0])
    key, k_roll, k_sample, k_upd = jax.random.split(state.key, 4)
    steps_before = state.iteration * cfg.env_steps_per_iteration
    steps_after = steps_before + cfg.env_steps_per_iteration
    warmup = steps_before < cfg.learning_starts

    # ACT (uniformly random during the warm-up, then the sampled policy) and STORE
    def act(obs, k):
        k_pi, k_uniform = jax.random.split(k)
        a, _ = sample_action(nets.actor, state.actor_params, obs, k_pi)
        a = jnp.where(warmup, jax.random.uniform(k_uniform, a.shape, minval=-1.0, maxval=1.0), a)
        return to_env_action(env, a), a

    env_carry, traj = rollout.rollout(env, act, state.env, k_roll, cfg.rollout_steps)
    replay_state = offpolicy.store(buf, state.replay, traj._replace(action=traj.extras), True)

    # LEARN (minibatches drawn outside the cond so that the replay memory is not one of its operands)
    batches = offpolicy.sample_batches(buf, replay_state, k_sample, cfg.gradient_steps, cfg.minibatch_size)
    keys = jax.random.split(k_upd, cfg.gradient_steps)
    target = target_entropy(cfg, env)
    learner = Learner(
        state.actor_params,
        state.critic_params,
        state.target_critic_params,
        state.log_alpha,
        state.actor_opt,
        state.critic_opt,
        state.alpha_opt,
    )

    def learn(learner):
        step = lambda lr, xs: update(cfg, nets, lr, xs[0], xs[1], target)
        learner, losses = jax.lax.scan(step, learner, (batches, keys))
        return learner, jax.tree_util.tree_map(jnp.mean, losses)

    def skip(learner):
        zeros = Losses(*(jnp.zeros((), jnp.float32) for _ in Losses._fields))
        return learner, zeros._replace(alpha=jnp.exp(learner.log_alpha))

    learner, losses = jax.lax.cond(steps_after > cfg.learning_starts, learn, skip, learner)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    metrics = Metrics(last_return, iteration * cfg.env_steps_per_iteration, *losses)
    new_state = State(*learner, replay_state, env_carry, key, iteration, last_return)
    return new_state, metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# ------------------------------------------------------------------------------------ CHECKING
def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    sizes = (
        "total_timesteps",
        "num_envs",
        "rollout_steps",
        "gradient_steps",
        "buffer_size",
        "minibatch_size",
    )
    checks.check_positive_ints("SACConfig", cfg, *sizes)
    if cfg.learning_starts < 0:
        raise ValueError(f"SACConfig.learning_starts must be >= 0, got {cfg.learning_starts}")
    if cfg.buffer_size % cfg.num_envs:
        raise ValueError(
            f"SACConfig.buffer_size ({cfg.buffer_size}) must be a multiple of num_envs ({cfg.num_envs}); "
            f"use {max(1, cfg.buffer_size // cfg.num_envs) * cfg.num_envs}"
        )
    checks.check_one_iteration(
        cfg, "SACConfig", cfg.env_steps_per_iteration, "iteration", "num_envs * rollout_steps", "raise it"
    )
    env = envs.make(cfg.env, 1, cfg.env_params)
    space = env.action_space
    if not isinstance(space, envs.Box) or len(space.shape) != 1:
        raise ValueError(
            f"SAC needs a continuous (Box, 1-d) action space, but {registry.env_name(cfg.env)} has {space}; "
            f"use DQNConfig or PPOConfig for discrete actions"
        )
    if not (np.all(np.isfinite(np.asarray(space.low))) and np.all(np.isfinite(np.asarray(space.high)))):
        raise ValueError(
            f"SAC squashes actions into the action space's bounds, which must be finite: {space}"
        )
    if len(tuple(cfg.hidden)) == 0:
        raise ValueError("SACConfig.hidden needs at least one layer size")
    checks.check_positive(cfg, "learning_rate", "max_grad_norm", "init_alpha")
    checks.check_range(cfg, "gamma", 0.0, 1.0)
    checks.check_range(cfg, "tau", 0.0, 1.0)
    checks.check_range(cfg, "target_entropy_scale", -10.0, 10.0)


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action`` in the env's bounds: ``tanh(mean)`` (``deterministic=False``: sampled)."""
    env = envs.make(cfg.env, 1, cfg.env_params)
    actor = make_networks(cfg, env).actor

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        if deterministic:
            mean, _ = actor.apply(state.actor_params, obs)
            return to_env_action(env, jnp.tanh(mean))
        return to_env_action(env, sample_action(actor, state.actor_params, obs, key)[0])

    return act


ALGORITHM = base.register(
    base.Algorithm(
        name="sac",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        validate=validate,
        description="Soft Actor-Critic: twin Q, tanh-Gaussian actor, learned temperature (continuous actions)",
        steps_per_iteration=lambda cfg: cfg.env_steps_per_iteration,
        restart_envs=offpolicy.restart_envs,
    )
)
