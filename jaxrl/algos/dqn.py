"""DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning", Nature 518),
with the Double DQN (van Hasselt et al. 2016) and dueling-head (Wang et al. 2016) options.

Per iteration: step ``num_envs`` environments epsilon-greedily (linear epsilon schedule), write the
transitions to a replay memory held in the state (:mod:`jaxrl.replay`), then, once ``learning_starts``
env steps are done, take gradient steps on uniformly sampled minibatches of the loss
``huber|l2(r + gamma (1 - terminated) max_a' Q_target(s', a') - Q(s, a))``, with s' the TRUE next
observation (a time-limit cut bootstraps), and refresh the target network every
``target_update_period`` env steps (``tau < 1``: Polyak averaging instead of a copy).

Schedule: one iteration is ``max(1, train_frequency // num_envs)`` steps of all environments and
``max(1, num_envs // train_frequency)`` gradient steps, so there is one gradient step per
``train_frequency`` env steps whichever is larger.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import envs, losses, optim, replay, rollout, schedules
from jaxrl.algos import base, checks, env_building, named_metrics, offpolicy
from jaxrl.envs import registry
from jaxrl.networks import q as qnet

LOSSES = ("huber", "l2")
NETWORKS = ("auto",) + qnet.TORSOS


# ---------------------------------------------------------------------------------------- CONFIG
@checks.renamed_fields(batch_size="minibatch_size")
@struct.dataclass
class Config:
    """DQN settings; defaults are CleanRL's ``dqn.py`` CartPole-v1 settings, with 10 environments."""

    env: Any = struct.field(pytree_node=False, default="CartPole-v1")  # name or gymnax Environment
    env_params: Any = struct.field(pytree_node=False, default=None)  # gymnax EnvParams (None: defaults)
    total_timesteps: int = struct.field(pytree_node=False, default=500_000)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=10)  # parallel environments
    buffer_size: int = struct.field(pytree_node=False, default=10_000)  # replay capacity (transitions)
    minibatch_size: int = struct.field(pytree_node=False, default=128)  # transitions per gradient step
    learning_starts: int = struct.field(pytree_node=False, default=10_000)  # env steps before learning
    train_frequency: int = struct.field(pytree_node=False, default=10)  # env steps per gradient step
    target_update_period: int = struct.field(
        pytree_node=False, default=500
    )  # env steps between target updates
    double_dqn: bool = struct.field(pytree_node=False, default=False)  # online net picks a', target values it
    dueling: bool = struct.field(pytree_node=False, default=False)  # Q = V + A - mean A head
    # "l2" (0.5 td^2) or "huber" (delta 1). Huber diverges on CartPole with these CleanRL defaults
    # (Q ~ 1e5 by 100k steps: the rare terminal transitions that bound Q weigh no more than any other
    # sample; benchmarks/RESULTS.md, DQN).
    loss: str = struct.field(pytree_node=False, default="l2")
    network: str = struct.field(pytree_node=False, default="auto")  # auto | mlp | nature_cnn | minatar_cnn
    hidden: tuple[int, ...] = struct.field(pytree_node=False, default=(120, 84))  # MLP widths
    activation: str = struct.field(pytree_node=False, default="relu")  # MLP activation
    # False: store each observation once and read s' from the same env's next row (half the memory,
    # for images); the true final observations of episodes cut by a time limit, which the next row
    # does not hold on same-step-reset backends, are kept apart in a small end store (replay.py).
    store_next_obs: bool = struct.field(pytree_node=False, default=True)
    # True (with store_next_obs=False): observations that are frame stacks (envpool Atari, uint8
    # [84, 84, 4]) are stored one newest frame per step and rebuilt exactly when sampled (replay.py,
    # "Frame stacks"): ~7 KB per Atari transition instead of ~28 KB, so a 1M buffer takes ~7 GB.
    dedup_frames: bool = struct.field(pytree_node=False, default=False)
    learning_rate: float = 2.5e-4  # Adam step size
    gamma: float = 0.99  # discount
    tau: float = 1.0  # target update: target <- tau * online + (1 - tau) * target (1: hard copy)
    epsilon_start: float = 1.0  # exploration rate at step 0
    epsilon_end: float = 0.05  # exploration rate after the ramp
    exploration_fraction: float = 0.5  # fraction of total_timesteps over which epsilon falls linearly
    max_grad_norm: float | None = None  # global-norm gradient clip (None: none, as CleanRL)

    @property
    def vector_steps(self) -> int:
        """Steps of all ``num_envs`` environments per iteration."""
        return max(1, self.train_frequency // self.num_envs)

    @property
    def updates_per_iteration(self) -> int:
        return max(1, self.num_envs // self.train_frequency)

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.vector_steps

    @property
    def num_iterations(self) -> int:
        """Iterations in the whole run."""
        return self.total_timesteps // self.env_steps_per_iteration


class State(NamedTuple):
    params: Any  # online Q-network parameters
    target_params: Any  # target ("offline") network parameters
    opt_state: Any  # optax state
    replay: replay.ReplayState  # replay memory
    env: rollout.EnvCarry  # env state + last time step
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 iterations done
    last_return: jax.Array  # [] float32 mean return of the last finished episodes (NaN before any)


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # mean return of episodes finished this iteration (carried forward)
    env_steps: jax.Array  # env steps so far
    loss: jax.Array  # mean TD loss of this iteration's gradient steps (0 before learning starts)
    q_value: jax.Array  # mean Q(s, a) of the sampled transitions (0 before learning starts)
    epsilon: jax.Array  # exploration rate used this iteration


Stored = offpolicy.Stored  # one transition as the replay memory holds it
Batch = offpolicy.Batch  # a training minibatch with true next observations


# ------------------------------------------------------------------------------------ BUILDING
make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def make_network(cfg: Config, env: envs.Env) -> qnet.QNetwork:
    obs_shape = tuple(env.observation_space.shape)
    torso = qnet.pick_torso(obs_shape) if cfg.network == "auto" else cfg.network
    return qnet.QNetwork(
        num_actions=envs.num_actions(env.action_space),
        torso=torso,
        hidden=tuple(cfg.hidden),
        activation=cfg.activation,
        dueling=cfg.dueling,
        obs_ndim=len(obs_shape),
    )


def make_buffer(
    cfg: Config, example_obs: jax.Array, max_episode_steps: int | None = None
) -> replay.ReplayBuffer:
    """The replay memory for observations shaped like ``example_obs`` (one observation, no batch axis).

    With ``store_next_obs=False`` the buffer reads s' from the next row and keeps the true final
    observations of time-limit cuts in an end store sized for ``max_episode_steps`` (the env's time
    limit; looked up from ``cfg.env`` if not given).
    """
    if not cfg.store_next_obs and max_episode_steps is None:
        max_episode_steps = envs.make(cfg.env, 1, cfg.env_params).max_episode_steps
    return offpolicy.make_buffer(
        cfg.buffer_size,
        cfg.num_envs,
        example_obs,
        jax.ShapeDtypeStruct((), jnp.int32),
        store_next_obs=cfg.store_next_obs,
        max_episode_steps=max_episode_steps,
        dedup_frames=cfg.dedup_frames,
    )


def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    sizes = ("total_timesteps", "num_envs", "buffer_size", "minibatch_size", "train_frequency")
    checks.check_positive_ints("DQNConfig", cfg, *sizes, "target_update_period")
    if cfg.learning_starts < 0:
        raise ValueError(f"DQNConfig.learning_starts must be >= 0, got {cfg.learning_starts}")
    if cfg.train_frequency % cfg.num_envs and cfg.num_envs % cfg.train_frequency:
        raise ValueError(
            f"DQNConfig: train_frequency ({cfg.train_frequency}) and num_envs ({cfg.num_envs}) must divide "
            f"one another (one gradient step per train_frequency env steps, all envs stepped together)"
        )
    if cfg.buffer_size % cfg.num_envs:
        raise ValueError(
            f"DQNConfig.buffer_size ({cfg.buffer_size}) must be a multiple of num_envs ({cfg.num_envs}); "
            f"use {max(1, cfg.buffer_size // cfg.num_envs) * cfg.num_envs}"
        )
    checks.check_one_iteration(
        cfg,
        "DQNConfig",
        cfg.env_steps_per_iteration,
        "iteration",
        "num_envs * max(1, train_frequency // num_envs)",
        "raise it or use fewer envs",
    )
    if cfg.loss not in LOSSES:
        raise ValueError(f"DQNConfig.loss must be one of {LOSSES}, got {cfg.loss!r}")
    if cfg.network not in NETWORKS:
        raise ValueError(f"DQNConfig.network must be one of {NETWORKS}, got {cfg.network!r}")
    env = envs.make(cfg.env, 1, cfg.env_params)
    if not isinstance(env.action_space, envs.Discrete):
        raise ValueError(
            f"DQN needs a discrete action space (it takes max_a Q(s, a)), but {registry.env_name(cfg.env)} "
            f"has {env.action_space}; use PPOConfig (Gaussian policy) for continuous actions"
        )
    shape = tuple(env.observation_space.shape)
    if cfg.dedup_frames:
        if cfg.store_next_obs:
            raise ValueError(
                "DQNConfig.dedup_frames=True needs store_next_obs=False (s' is read from the next row)"
            )
        if env.frame_stack < 2:
            raise ValueError(
                f"DQNConfig.dedup_frames=True needs observations that are frame stacks (envpool Atari, "
                f"grey frames), but {registry.env_name(cfg.env)} does not declare one; set it to False"
            )
        if cfg.buffer_size // cfg.num_envs <= env.frame_stack:
            raise ValueError(
                f"DQNConfig.dedup_frames=True needs buffer_size // num_envs > {env.frame_stack} (the stack)"
            )
    if cfg.network in ("nature_cnn", "minatar_cnn") and len(shape) != 3:
        raise ValueError(
            f"DQNConfig.network={cfg.network!r} needs H x W x C image observations, got shape {shape}"
        )
    if cfg.network == "nature_cnn" and min(shape[:2]) < 36:
        raise ValueError(
            f"the Nature CNN needs images of at least 36x36 (84x84 as in the paper), got {shape}"
        )
    checks.check_positive(cfg, "learning_rate", "max_grad_norm")
    checks.check_range(cfg, "gamma", 0.0, 1.0)
    checks.check_range(cfg, "tau", 0.0, 1.0)
    for name in ("epsilon_start", "epsilon_end", "exploration_fraction"):
        checks.check_range(cfg, name, 0.0, 1.0)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    # Adam eps 1e-8: optax's and PyTorch's default, as CleanRL's DQN runs use.
    return optim.make_optimizer(cfg.learning_rate, cfg.max_grad_norm, eps=1e-8)


def epsilon(cfg: Config, env_steps: jax.Array) -> jax.Array:
    """The behaviour policy's exploration rate after ``env_steps`` env steps."""
    ramp = cfg.exploration_fraction * cfg.total_timesteps
    return schedules.linear(cfg.epsilon_start, cfg.epsilon_end, ramp, env_steps)


# ---------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    env = make_env(cfg)
    net = make_network(cfg, env)
    carry, params, key = env_building.init_env_and_params(env, net, key)
    return State(
        params=params,
        target_params=params,
        opt_state=_optimizer(cfg).init(params),
        replay=make_buffer(cfg, carry.timestep.obs[0], env.max_episode_steps).init(),
        env=carry,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# ---------------------------------------------------------------------------------------- LOSS
def td_errors(
    params: Any, target_params: Any, net: nn.Module, batch: Batch, gamma: jax.Array | float, double: bool
) -> tuple[jax.Array, jax.Array]:
    """``[N]`` TD errors ``r + gamma (1 - terminated) Q_target(s', a*) - Q(s, a)`` with
    ``a* = argmax Q_target(s', .)`` (DQN) or ``argmax Q(s', .)`` (Double DQN); also ``Q(s, a) [N]``."""
    q_tm1 = net.apply(params, batch.obs)
    q_t = net.apply(target_params, batch.next_obs)
    discount = gamma * (1.0 - batch.terminated.astype(jnp.float32))
    if double:
        q_t_online = net.apply(params, batch.next_obs)
        td = jax.vmap(losses.double_q_learning)(q_tm1, batch.action, batch.reward, discount, q_t, q_t_online)
    else:
        td = jax.vmap(losses.q_learning)(q_tm1, batch.action, batch.reward, discount, q_t)
    q_taken = jnp.take_along_axis(q_tm1, batch.action[:, None], axis=-1)[:, 0]
    return td, q_taken


class Losses(NamedTuple):
    """The terms of :func:`loss` on one minibatch, each ``[]``."""

    loss: jax.Array  # weighted mean TD loss (l2 or Huber)
    q_value: jax.Array  # weighted mean Q(s, a) of the minibatch (not differentiated)


class Learner(NamedTuple):
    """What one gradient step reads and changes (the ``update`` carry); the target network is read only."""

    params: Any
    target_params: Any
    opt_state: Any


def loss(
    params: Any, target_params: Any, cfg: Config, net: nn.Module, batch: Batch
) -> tuple[jax.Array, Losses]:
    """Weighted mean TD loss of one minibatch."""
    td, q_taken = td_errors(params, target_params, net, batch, cfg.gamma, cfg.double_dqn)
    per = losses.huber_loss(td) if cfg.loss == "huber" else losses.l2_loss(td)
    n = jnp.maximum(jnp.sum(batch.weight), 1.0)
    value = jnp.sum(per * batch.weight) / n
    return value, Losses(value, jax.lax.stop_gradient(jnp.sum(q_taken * batch.weight) / n))


to_batch = offpolicy.to_batch  # a replay sample as a training Batch


# -------------------------------------------------------------------------------------- UPDATE
def update(cfg: Config, net: nn.Module, learner: Learner, batch: Batch) -> tuple[Learner, Losses]:
    """One gradient step on one minibatch."""
    params, opt_state, terms = optim.step(
        _optimizer(cfg), loss, learner.params, learner.opt_state, learner.target_params, cfg, net, batch
    )
    return learner._replace(params=params, opt_state=opt_state), terms


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Act, store, and (after the warm-up) learn and refresh the target network."""
    env = make_env(cfg)
    net = make_network(cfg, env)
    buf = make_buffer(cfg, state.env.timestep.obs[0], env.max_episode_steps)
    key, k_roll, k_upd = jax.random.split(state.key, 3)
    steps_before = state.iteration * cfg.env_steps_per_iteration
    steps_after = steps_before + cfg.env_steps_per_iteration
    eps = epsilon(cfg, steps_before)

    # ACT epsilon-greedily and STORE
    act = lambda obs, k: (qnet.epsilon_greedy(k, net.apply(state.params, obs), eps), None)
    env_carry, traj = rollout.rollout(env, act, state.env, k_roll, cfg.vector_steps)

    replay_state = offpolicy.store(buf, state.replay, traj, cfg.store_next_obs)

    # LEARN (gradient steps on uniform minibatches, once learning_starts env steps are done). The
    # minibatches are drawn outside the cond so that the replay memory is not one of its operands.
    batches = offpolicy.sample_batches(
        buf, replay_state, k_upd, cfg.updates_per_iteration, cfg.minibatch_size
    )

    def learn(learner):
        learner, terms = jax.lax.scan(lambda c, b: update(cfg, net, c, b), learner, batches)
        return learner, jax.tree_util.tree_map(lambda x: x.mean(axis=0), terms)

    def wait(learner):
        return learner, Losses(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

    learning = steps_after > cfg.learning_starts
    learner = Learner(state.params, state.target_params, state.opt_state)
    (params, _, opt_state), terms = jax.lax.cond(learning, learn, wait, learner)

    # TARGET network: copied (or Polyak-averaged) every target_update_period env steps
    refresh = jnp.logical_and(
        learning, schedules.crossed(steps_before, steps_after, cfg.target_update_period)
    )
    target_params = offpolicy.update_target(params, state.target_params, cfg.tau, refresh)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    metrics = Metrics(
        episode_return=last_return,
        env_steps=iteration * cfg.env_steps_per_iteration,
        loss=terms.loss,
        q_value=terms.q_value,
        epsilon=eps,
    )
    new_state = State(params, target_params, opt_state, replay_state, env_carry, key, iteration, last_return)
    return new_state, metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action`` for single or batched observations: greedy in Q
    (``deterministic=False``: epsilon-greedy with ``epsilon_end``)."""
    net = make_network(cfg, envs.make(cfg.env, 1, cfg.env_params))

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        q = net.apply(state.params, obs)
        if deterministic:
            return jnp.argmax(q, axis=-1).astype(jnp.int32)
        return qnet.epsilon_greedy(key, q, cfg.epsilon_end)

    return act


def make_value_fn(cfg: Config, state: State):
    """``value(obs) -> max_a Q(obs, a)`` for single or batched observations."""
    net = make_network(cfg, envs.make(cfg.env, 1, cfg.env_params))
    return lambda obs: jnp.max(net.apply(state.params, obs), axis=-1)


ALGORITHM = base.register(
    base.Algorithm(
        name="dqn",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        make_value_fn=make_value_fn,
        validate=validate,
        description="DQN with replay memory and target network; Double DQN and dueling options",
        steps_per_iteration=lambda cfg: cfg.env_steps_per_iteration,
        restart_envs=offpolicy.restart_envs,
    )
)
