"""PPO-clip (Schulman et al. 2017, arXiv:1707.06347) with GAE, discrete or Gaussian actions.

Loss per minibatch: ``-min(rho A, clip(rho, 1-eps, 1+eps) A) + vf_coef * L_V - ent_coef * H``,
with truncation-aware GAE (bootstraps from V(final obs) where an episode was cut by a time limit).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from jaxrl import batching, envs, normalization, optim, policies, rollout
from jaxrl.algos import base, checks, env_building, named_metrics
from jaxrl.losses import policy as policy_losses
from jaxrl.networks.heads import ActorCritic

NETWORKS = ("auto", "mlp", "nature_cnn", "minatar_cnn")


# ---------------------------------------------------------------------------------------- CONFIG
@checks.renamed_fields(num_steps="rollout_steps")
@struct.dataclass
class Config:
    """PPO settings; defaults are PureJaxRL's CartPole-v1 settings."""

    env: Any = struct.field(pytree_node=False, default="CartPole-v1")  # name or gymnax Environment
    env_params: Any = struct.field(pytree_node=False, default=None)  # gymnax EnvParams (None: defaults)
    total_timesteps: int = struct.field(pytree_node=False, default=524_288)  # env steps in all
    num_envs: int = struct.field(pytree_node=False, default=4)  # parallel environments
    rollout_steps: int = struct.field(pytree_node=False, default=128)  # rollout length per update
    num_epochs: int = struct.field(pytree_node=False, default=4)  # passes over each rollout
    num_minibatches: int = struct.field(pytree_node=False, default=4)  # minibatches per pass
    hidden: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))  # MLP widths
    activation: str = struct.field(pytree_node=False, default="tanh")
    shared_network: bool = struct.field(pytree_node=False, default=False)  # one trunk, two heads
    # auto | mlp | nature_cnn | minatar_cnn; "auto": the Nature CNN (shared by both heads) for images of
    # at least 36x36 pixels (Atari 84x84x4), an MLP on flattened observations otherwise.
    network: str = struct.field(pytree_node=False, default="auto")
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay to 0
    normalize_obs: bool = struct.field(pytree_node=False, default=False)  # running mean/std
    normalize_advantages: bool = struct.field(pytree_node=False, default=True)  # per minibatch
    clip_value: bool = struct.field(pytree_node=False, default=True)  # PPO2 value clipping
    learning_rate: float = 2.5e-4  # Adam step size (initial, if annealed)
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE trace decay
    clip_eps: float = 0.2  # ratio clip range (and value clip range)
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global-norm gradient clip

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // self.env_steps_per_iteration

    @property
    def minibatch_size(self) -> int:
        return self.env_steps_per_iteration // self.num_minibatches


class State(NamedTuple):
    params: Any  # network parameters
    opt_state: Any  # optax state
    env: rollout.EnvCarry  # env state + last time step
    obs_stats: normalization.RunningStats  # running observation statistics (unused if off)
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
    approx_kl: jax.Array
    clip_fraction: jax.Array


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array  # unclipped action (continuous) / int action (discrete)
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array
    valid: jax.Array


# ------------------------------------------------------------------------------------ BUILDING
make_env = env_building.make_env  # cfg.env, num_envs wide, with episode statistics


def make_network(cfg: Config, env: envs.Env) -> ActorCritic:
    torso = cfg.network
    if torso == "auto":
        shape = tuple(env.observation_space.shape)
        torso = "nature_cnn" if len(shape) == 3 and min(shape[:2]) >= 36 else "mlp"
    return policies.actor_critic(env, cfg.hidden, cfg.activation, cfg.shared_network, torso=torso)


def validate(cfg: Config) -> None:
    envs.check_name(cfg.env)
    sizes = ("total_timesteps", "num_envs", "rollout_steps", "num_epochs", "num_minibatches")
    checks.check_positive_ints("PPOConfig", cfg, *sizes)
    checks.check_one_iteration(
        cfg,
        "PPOConfig",
        cfg.env_steps_per_iteration,
        "rollout",
        "num_envs * rollout_steps",
        "raise it or shrink the rollout",
    )
    checks.check_divides(cfg, cfg.env_steps_per_iteration, cfg.num_minibatches, "num_envs * rollout_steps")
    if cfg.network not in NETWORKS:
        raise ValueError(f"PPOConfig.network must be one of {NETWORKS}, got {cfg.network!r}")
    checks.check_positive(cfg, "learning_rate", "clip_eps", "max_grad_norm")
    checks.check_range(cfg, "gamma", 0.0, 1.0)
    checks.check_range(cfg, "gae_lambda", 0.0, 1.0)


def _prep(cfg: Config, stats: normalization.RunningStats, obs: jax.Array) -> jax.Array:
    return normalization.normalize(stats, obs) if cfg.normalize_obs else obs


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    per_update = cfg.num_epochs * cfg.num_minibatches
    return optim.make_optimizer(
        cfg.learning_rate,
        cfg.max_grad_norm,
        anneal_steps=cfg.num_iterations * per_update if cfg.anneal_lr else None,
        anneal_every=per_update,
    )


class _FlatApply:
    """``net`` applied to its parameters given as one flat vector (``jax.flatten_util.ravel_pytree``)."""

    def __init__(self, net: nn.Module, unravel: Any):
        self.net, self.unravel = net, unravel
        self.discrete = net.discrete

    def apply(self, flat: jax.Array, *args: Any, **kwargs: Any) -> Any:
        return self.net.apply(self.unravel(flat), *args, **kwargs)


def _params_like(params: Any):
    treedef = jax.tree_util.tree_structure(params)
    return lambda x: jax.tree_util.tree_structure(x) == treedef


def _flatten_like(tree: Any, params: Any) -> Any:
    """Every subtree of ``tree`` shaped like ``params`` (Adam's moments) as one flat vector."""
    like = _params_like(params)
    return jax.tree_util.tree_map(lambda x: ravel_pytree(x)[0] if like(x) else x, tree, is_leaf=like)


def _unflatten_like(flat_tree: Any, template: Any, params: Any, unravel: Any) -> Any:
    """Inverse of :func:`_flatten_like` (``template``: the original tree)."""
    like = _params_like(params)
    return jax.tree_util.tree_map(
        lambda t, f: unravel(f) if like(t) else f, template, flat_tree, is_leaf=like
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
        obs_stats=normalization.init(env.observation_space.shape),
        key=key,
        iteration=jnp.zeros((), jnp.int32),
        last_return=jnp.full((), jnp.nan, jnp.float32),
    )


# ---------------------------------------------------------------------------------------- LOSS
class Losses(NamedTuple):
    """The terms of :func:`loss` on one minibatch, each ``[]``."""

    total: jax.Array  # policy_loss + vf_coef * value_loss - ent_coef * entropy
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array  # mean (r - 1) - log r, r the probability ratio
    clip_fraction: jax.Array  # fraction of steps with |r - 1| > clip_eps


def loss(params: Any, cfg: Config, net: nn.Module, mb: Batch) -> tuple[jax.Array, Losses]:
    """PPO loss on one minibatch ``[N]`` (flat, observations already normalised if asked)."""
    out = net.apply(params, mb.obs)
    log_prob, ent = policies.log_prob_entropy(out, mb.action, net.discrete)
    log_ratio = log_prob - mb.log_prob
    ratio = jnp.exp(log_ratio)
    mask = mb.valid.astype(jnp.float32)
    adv = policies.standardize(mb.advantage, mask) if cfg.normalize_advantages else mb.advantage
    pg = policy_losses.clipped_surrogate_loss(ratio, adv, cfg.clip_eps, mask_t=mask)
    if cfg.clip_value:
        vf = policy_losses.clipped_value_loss(out.value, mb.value, mb.target, cfg.clip_eps, mask_t=mask)
    else:
        vf = policy_losses.masked_mean(0.5 * jnp.square(out.value - mb.target), mask)
    ent_mean = policy_losses.masked_mean(ent, mask)
    total = pg + cfg.vf_coef * vf - cfg.ent_coef * ent_mean
    kl = policy_losses.masked_mean((ratio - 1.0) - log_ratio, mask)
    clipfrac = policy_losses.masked_mean((jnp.abs(ratio - 1.0) > cfg.clip_eps).astype(jnp.float32), mask)
    return total, Losses(total, pg, vf, ent_mean, kl, clipfrac)


# -------------------------------------------------------------------------------------- UPDATE
def update(
    cfg: Config, net: nn.Module, learner: policies.Learner, mb: Batch
) -> tuple[policies.Learner, Losses]:
    """One gradient step on one minibatch."""
    params, opt_state, terms = optim.step(_optimizer(cfg), loss, *learner, cfg, net, mb)
    return policies.Learner(params, opt_state), terms


# ---------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """Collect ``num_envs x rollout_steps`` transitions, compute GAE, run the minibatch epochs."""
    env = make_env(cfg)
    net = make_network(cfg, env)
    discrete = envs.is_discrete(env.action_space)
    key, k_roll, k_upd = jax.random.split(state.key, 3)
    stats = state.obs_stats

    # ROLLOUT
    # (the sampling noise of all steps is drawn before the loop: same actions, far fewer kernels on CPU)
    noise_shape = (env.num_envs, envs.num_actions(env.action_space))

    def act(obs, noise):
        out = net.apply(state.params, _prep(cfg, stats, obs))
        action = policies.sample_with_noise(out, noise, discrete)
        log_prob, _ = policies.log_prob_entropy(out, action, discrete)
        return policies.to_env_action(env, action), (action, log_prob)

    env_carry, traj = rollout.rollout(
        env,
        act,
        state.env,
        k_roll,
        cfg.rollout_steps,
        act_noise=lambda k: policies.sample_noise(k, noise_shape, discrete),
    )
    action, log_prob = traj.extras

    # ADVANTAGES (truncation-aware: V of the true next state, traces cut at every episode end).
    # The critic is not evaluated inside the loop: one batched pass over all observations and true next
    # observations after it does the same work in far fewer, larger kernels.
    both = jnp.concatenate([traj.obs, traj.next_obs])  # [2T, N, ...]
    v_both = net.apply(state.params, _prep(cfg, stats, both)).value
    value, v_next = v_both[: cfg.rollout_steps], v_both[cfg.rollout_steps :]
    adv = policies.advantages(traj, value, v_next, cfg.gamma, cfg.gae_lambda)
    batch = rollout.flatten_time_batch(Batch(traj.obs, action, log_prob, value, adv, adv + value, traj.valid))

    # UPDATE EPOCHS (on the parameters as one flat vector: the same Adam steps in a few kernels, not
    # a few per parameter array; State keeps the usual pytrees)
    # (observations normalised once here, with the statistics the rollout acted on)
    flat, unravel = ravel_pytree(state.params)
    upd = lambda c, mb: update(cfg, _FlatApply(net, unravel), c, mb)
    (flat, opt_flat), losses = batching.minibatch_epochs(
        k_upd,
        policies.Learner(flat, _flatten_like(state.opt_state, state.params)),
        batch._replace(obs=_prep(cfg, stats, batch.obs)),
        upd,
        num_epochs=cfg.num_epochs,
        num_minibatches=cfg.num_minibatches,
    )
    params, opt_state = unravel(flat), _unflatten_like(opt_flat, state.opt_state, state.params, unravel)
    if cfg.normalize_obs:
        stats = normalization.update(stats, batch.obs, batch.valid)

    last_return = rollout.mean_episode_return(traj, state.last_return)
    iteration = state.iteration + 1
    lm = jax.tree_util.tree_map(lambda x: x.mean(axis=(0, 1)), losses)  # over epochs and minibatches
    metrics = Metrics(
        episode_return=last_return,
        env_steps=iteration * cfg.env_steps_per_iteration,
        total_loss=lm.total,
        policy_loss=lm.policy_loss,
        value_loss=lm.value_loss,
        entropy=lm.entropy,
        approx_kl=lm.approx_kl,
        clip_fraction=lm.clip_fraction,
    )
    new_state = State(params, opt_state, env_carry, stats, key, iteration, last_return)
    return new_state, metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_iterations


# -------------------------------------------------------------------------------------- ACTING
def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """``act(obs, key) -> action`` for single or batched observations (greedy by default)."""
    env = envs.make(cfg.env, 1, cfg.env_params)
    prep = lambda obs: _prep(cfg, state.obs_stats, obs)
    return policies.make_act(
        make_network(cfg, env), state.params, env, deterministic=deterministic, preprocess=prep
    )


def make_value_fn(cfg: Config, state: State):
    """``value(obs) -> V(obs)`` for single or batched observations."""
    env = envs.make(cfg.env, 1, cfg.env_params)
    net = make_network(cfg, env)
    return lambda obs: net.apply(state.params, _prep(cfg, state.obs_stats, obs)).value


ALGORITHM = base.register(
    base.Algorithm(
        name="ppo",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        make_value_fn=make_value_fn,
        validate=validate,
        description="PPO-clip with GAE; discrete (categorical) or continuous (Gaussian) actions",
        steps_per_iteration=lambda cfg: cfg.env_steps_per_iteration,
    )
)
