"""REINFORCE (Williams 1992): Monte Carlo policy gradient on whole episodes, reward-to-go returns.

Each iteration resets ``num_envs`` environments and steps them ``rollout_steps`` times (by default the
env's time limit, so every env finishes at least one episode). Every episode that *finishes* inside
the rollout is used; the steps of each env's last, unfinished episode are masked out (their returns
are unknown), so the shapes stay fixed under ``jit``. Then one gradient step on

    -mean_t log pi(a_t|s_t) (G_t - b(s_t))        G_t = sum_k gamma^k r_{t+k}, within the episode

over the used steps. ``baseline=True`` learns b = V(s) on the same returns (then an episode cut by a
time limit bootstraps its return from V(final obs); without a baseline there is nothing to bootstrap
from and the cut is treated as the episode's end). ``normalize_returns`` standardises the weights
``G - b`` over the batch (so ``reward_scale`` then matters only to the baseline). Softmax policy for
discrete actions, diagonal Gaussian for continuous ones.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import envs, optim, policies, rollout
from jaxrl.algos import base, checks, env_building, named_metrics
from jaxrl.losses import returns as returns_losses
from jaxrl.networks.heads import ActorCritic


# ---------------------------------------------------------------------------------------- CONFIG
@checks.renamed_fields(num_steps="rollout_steps")
@struct.dataclass
class Config:
    """REINFORCE settings; the defaults reach CartPole-v1's 500 within 1M steps (see benchmarks/)."""

    env: Any = struct.field(pytree_node=False, default="CartPole-v1")  # name or gymnax Environment
    env_params: Any = struct.field(pytree_node=False, default=None)  # gymnax EnvParams (None: defaults)
    total_timesteps: int = struct.field(pytree_node=False, default=1_000_000)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=8)  # parallel environments
    # rollout length per update; None: the env's time limit (shorter would never use long episodes)
    rollout_steps: int | None = struct.field(pytree_node=False, default=None)
    hidden: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))  # MLP widths
    activation: str = struct.field(pytree_node=False, default="tanh")
    shared_network: bool = struct.field(pytree_node=False, default=False)  # one trunk for pi and b
    baseline: bool = struct.field(pytree_node=False, default=False)  # learned state-value baseline
    normalize_returns: bool = struct.field(pytree_node=False, default=True)  # standardise G - b
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay to 0
    learning_rate: float = 2e-3  # Adam step size (initial, if annealed)
    gamma: float = 0.99  # discount
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # baseline (value) loss weight; unused without a baseline
    max_grad_norm: float = 1.0  # global-norm gradient clip
    # rewards are multiplied by this before the returns are computed (the baseline learns the scaled
    # return); with one value step per update, 0.01 lets it fit CartPole's returns near 100
    reward_scale: float = 1.0


class State(NamedTuple):
    params: Any  # network parameters (the value head is trained only with ``baseline``)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next iteration
    iteration: jax.Array  # [] int32 updates done
    last_return: jax.Array  # [] float32 mean return of the last finished episodes (NaN before any)


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # mean return of the episodes finished (and used) this iteration
    env_steps: jax.Array  # env steps so far, including the masked-out unfinished tails
    total_loss: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    episodes: jax.Array  # episodes used this iteration
    used_fraction: jax.Array  # fraction of this iteration's steps inside finished episodes


# ------------------------------------------------------------------------------------ BUILDING
make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def make_network(cfg: Config, env: envs.Env) -> ActorCritic:
    return policies.actor_critic(env, cfg.hidden, cfg.activation, cfg.shared_network)


def rollout_length(cfg: Config) -> int:
    """Steps per env per iteration: ``rollout_steps``, or the env's time limit."""
    if cfg.rollout_steps is not None:
        return int(cfg.rollout_steps)
    return envs.make(cfg.env, 1, cfg.env_params).max_episode_steps


def steps_per_iteration(cfg: Config) -> int:
    return cfg.num_envs * rollout_length(cfg)


def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    checks.check_positive_ints("ReinforceConfig", cfg, "total_timesteps", "num_envs")
    limit = envs.make(cfg.env, 1, cfg.env_params).max_episode_steps
    if cfg.rollout_steps is not None and int(cfg.rollout_steps) < limit:
        raise ValueError(
            f"ReinforceConfig.rollout_steps ({cfg.rollout_steps}) is shorter than the env's time limit ({limit}): "
            f"episodes longer than the rollout would never finish inside it and never be learned from. "
            f"Use rollout_steps=None (the time limit) or a larger value."
        )
    checks.check_one_iteration(
        cfg,
        "ReinforceConfig",
        steps_per_iteration(cfg),
        "rollout",
        "num_envs * rollout length",
        "raise it or use fewer envs",
    )
    checks.check_positive(cfg, "learning_rate", "max_grad_norm", "reward_scale")
    checks.check_range(cfg, "gamma", 0.0, 1.0)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    return optim.make_optimizer(
        cfg.learning_rate, cfg.max_grad_norm, anneal_steps=num_iterations(cfg) if cfg.anneal_lr else None
    )


# ---------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    env = make_env(cfg)
    net = make_network(cfg, env)
    k_net, key = jax.random.split(key)
    obs = jnp.zeros((cfg.num_envs,) + env.observation_space.shape, env.observation_space.dtype)
    params = net.init(k_net, obs)
    return State(
        params=params,
        opt_state=_optimizer(cfg).init(params),
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# ------------------------------------------------------------------------------------- RETURNS
def finished_episode_mask(traj: rollout.Transition) -> jax.Array:
    """``[T, B]`` bool: step t is a valid step of an episode that ends at some t' >= t in the rollout.

    The rollout must start at an episode start (a fresh reset); the steps after each env's last
    episode end belong to an episode whose return is unknown and get ``False``.
    """
    ends_later = jax.lax.cummax(traj.episode_end.astype(jnp.int32), axis=0, reverse=True) > 0
    return jnp.logical_and(ends_later, traj.valid)


def reward_to_go(
    traj: rollout.Transition, gamma: jax.Array | float, v_final: jax.Array | None = None
) -> jax.Array:
    """``[T, B]`` discounted reward-to-go within each episode of a rollout.

    ``G_t = r_t + gamma (1 - end_t) G_{t+1}``: every episode end (and invalid step) cuts the sum.
    ``v_final [T, B]``: V(next_obs); where given, a truncated step adds ``gamma V(final obs)`` (the
    episode was cut, not finished); termination never bootstraps.
    """
    r = traj.reward
    if v_final is not None:
        r = r + gamma * traj.truncated.astype(r.dtype) * v_final
    discount = gamma * (1.0 - traj.trace_end.astype(r.dtype))
    return jax.vmap(returns_losses.discounted_returns, in_axes=(1, 1), out_axes=1)(r, discount)


# ------------------------------------------------------------------------------------- LOSS
def loss(
    params: Any, cfg: Config, net: ActorCritic, batch: policies.PGBatch
) -> tuple[jax.Array, policies.ActorCriticLosses]:
    """REINFORCE loss on a flat batch ``[N]`` (``advantage`` = G - b, ``target`` = G); returns
    ``(total, (pg, vf, entropy))``. The value loss counts only with ``baseline``."""
    vf_coef = cfg.vf_coef if cfg.baseline else 0.0
    return policies.actor_critic_loss(
        params, net, net.discrete, batch, vf_coef, cfg.ent_coef, normalize_advantages=cfg.normalize_returns
    )


def episode_batch(cfg: Config, net: ActorCritic, params: Any, traj: rollout.Transition) -> policies.PGBatch:
    """Returns (and baseline advantages) of a ``[T, B]`` rollout, flattened to a ``[T * B]`` batch.

    ``traj.extras = (action, V(obs))`` as the behaviour policy recorded them; rewards are scaled by
    ``cfg.reward_scale`` first.
    """
    action, value = traj.extras
    traj = traj._replace(reward=traj.reward * cfg.reward_scale)
    if cfg.baseline:
        g = reward_to_go(traj, cfg.gamma, net.apply(params, traj.next_obs).value)
        adv = g - value
    else:
        g = reward_to_go(traj, cfg.gamma)
        adv = g
    mask = finished_episode_mask(traj)
    return rollout.flatten_time_batch(policies.PGBatch(traj.obs, action, adv, g, mask))


# -------------------------------------------------------------------------------------- UPDATE
def update(
    cfg: Config, net: ActorCritic, learner: policies.Learner, batch: policies.PGBatch
) -> tuple[policies.Learner, policies.ActorCriticLosses]:
    """One gradient step on the batch."""
    params, opt_state, terms = optim.step(_optimizer(cfg), loss, *learner, cfg, net, batch)
    return policies.Learner(params, opt_state), terms


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Reset, roll out ``num_envs x rollout_length`` steps, one gradient step on the finished episodes."""
    env = make_env(cfg)
    net = make_network(cfg, env)
    discrete = envs.is_discrete(env.action_space)
    key, k_reset, k_roll = jax.random.split(state.key, 3)

    def act(obs, k):
        out = net.apply(state.params, obs)
        action = policies.sample(out, k, discrete)
        return policies.to_env_action(env, action), (action, out.value)

    _, traj = rollout.rollout(env, act, rollout.reset(env, k_reset), k_roll, rollout_length(cfg))
    batch = episode_batch(cfg, net, state.params, traj)
    (params, opt_state), losses = update(cfg, net, policies.Learner(state.params, state.opt_state), batch)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    metrics = Metrics(
        episode_return=last_return,
        env_steps=iteration * steps_per_iteration(cfg),
        total_loss=losses.total,
        policy_loss=losses.policy_loss,
        value_loss=losses.value_loss,
        entropy=losses.entropy,
        episodes=jnp.sum(traj.episode_end),
        used_fraction=jnp.mean(batch.mask.astype(jnp.float32)),
    )
    return State(params, opt_state, key, iteration, last_return), metrics


def num_iterations(cfg: Config) -> int:
    return cfg.total_timesteps // steps_per_iteration(cfg)


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action`` for single or batched observations (greedy by default)."""
    env = envs.make(cfg.env, 1, cfg.env_params)
    return policies.make_act(make_network(cfg, env), state.params, env, deterministic=deterministic)


def make_value_fn(cfg: Config, state: State):
    """``value(obs) -> b(obs)``, the learned baseline (only with ``baseline=True``)."""
    if not cfg.baseline:
        raise ValueError(
            "REINFORCE without a baseline learns no value function; set ReinforceConfig(baseline=True)"
        )
    net = make_network(cfg, envs.make(cfg.env, 1, cfg.env_params))
    return lambda obs: net.apply(state.params, obs).value


ALGORITHM = base.register(
    base.Algorithm(
        name="reinforce",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        make_value_fn=make_value_fn,
        validate=validate,
        description="REINFORCE on whole episodes, reward-to-go, optional learned baseline",
        steps_per_iteration=steps_per_iteration,
    )
)
