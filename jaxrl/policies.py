"""Stochastic policies on an :class:`~jaxrl.networks.heads.ActorCritic`, shared by the policy-gradient
algorithms (PPO, A2C, REINFORCE): building the network for an env, sampling, log-probabilities and
entropy (categorical or diagonal Gaussian), acting, and truncation-aware advantages of a rollout.

    net = policies.actor_critic(env, hidden=(64, 64), activation="tanh", shared=True)
    out = net.apply(params, obs)                          # PolicyOutput(logits, log_std, value)
    action = policies.sample(out, key, discrete)          # [B] int or [B, D] float (unclipped)
    log_prob, entropy = policies.log_prob_entropy(out, action, discrete)   # [B], [B]

:func:`actor_critic_loss` is the one-update policy-gradient loss of A2C and REINFORCE (with or
without a baseline): ``-mean log pi(a|s) A + vf_coef * mean 0.5 (V(s) - G)^2 - ent_coef * mean H``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl import envs, rollout
from jaxrl.losses import policy as policy_losses
from jaxrl.losses import returns as returns_losses
from jaxrl.networks.heads import ActorCritic, PolicyOutput


def actor_critic(
    env: envs.Env, hidden: tuple[int, ...], activation: str, shared: bool, torso: str = "mlp"
) -> ActorCritic:
    """The actor-critic network for ``env``'s spaces (``shared``: one trunk with V- and pi-heads;
    ``torso``: "mlp" or an image CNN shared by both heads, see :class:`ActorCritic`)."""
    return ActorCritic(
        action_dim=envs.num_actions(env.action_space),
        discrete=envs.is_discrete(env.action_space),
        hidden=tuple(hidden),
        activation=activation,
        shared=shared,
        obs_ndim=len(env.observation_space.shape),
        torso=torso,
    )


def log_prob_entropy(out: PolicyOutput, action: jax.Array, discrete: bool) -> tuple[jax.Array, jax.Array]:
    """``(log pi(action|s) [...], entropy [...])`` for a categorical or diagonal-Gaussian head."""
    if discrete:
        return policy_losses.categorical_log_prob(out.logits, action), policy_losses.entropy(out.logits)
    log_std = jnp.broadcast_to(out.log_std, out.logits.shape)
    return policy_losses.gaussian_log_prob(out.logits, log_std, action), policy_losses.gaussian_entropy(
        log_std
    )


def sample(out: PolicyOutput, key: jax.Array, discrete: bool) -> jax.Array:
    """Draw an action: categorical over logits, or mean + std * N(0, 1) (not clipped)."""
    if discrete:
        return jax.random.categorical(key, out.logits)
    std = jnp.exp(jnp.broadcast_to(out.log_std, out.logits.shape))  # [D] -> [..., D], explicitly
    return out.logits + std * jax.random.normal(key, out.logits.shape)


def sample_noise(key: jax.Array, shape: tuple[int, ...], discrete: bool) -> jax.Array:
    """The noise :func:`sample` draws with ``key`` for logits / means of ``shape`` (Gumbel or N(0, 1)).

    Drawn ahead of a rollout (``rollout.rollout(act_noise=...)``) and used with :func:`sample_with_noise`,
    it gives the same actions as :func:`sample` in far fewer kernels on CPU."""
    return jax.random.gumbel(key, shape) if discrete else jax.random.normal(key, shape)


def sample_with_noise(out: PolicyOutput, noise: jax.Array, discrete: bool) -> jax.Array:
    """:func:`sample` given its noise (:func:`sample_noise`): the same action, bit for bit."""
    if discrete:  # jax.random.categorical: argmax(gumbel + logits)
        return jnp.argmax(noise + out.logits, axis=-1)
    return out.logits + jnp.exp(jnp.broadcast_to(out.log_std, out.logits.shape)) * noise


def mode(out: PolicyOutput, discrete: bool) -> jax.Array:
    """The most likely action: argmax of the logits, or the Gaussian mean."""
    return jnp.argmax(out.logits, axis=-1) if discrete else out.logits


def to_env_action(env: envs.Env, action: jax.Array) -> jax.Array:
    """Continuous actions are sampled unbounded and clipped to the action box for the env only."""
    space = env.action_space
    if isinstance(space, envs.Box):
        low = jnp.broadcast_to(jnp.asarray(space.low, action.dtype), action.shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, action.dtype), action.shape)
        return jnp.clip(action, low, high)
    return action


def make_act(
    net: ActorCritic,
    params,
    env: envs.Env,
    *,
    deterministic: bool,
    preprocess: Callable[[jax.Array], jax.Array] = lambda obs: obs,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``act(obs, key) -> env action`` for single or batched observations (the mode if deterministic)."""
    discrete = envs.is_discrete(env.action_space)

    def act(obs: jax.Array, key: jax.Array) -> jax.Array:
        out = net.apply(params, preprocess(obs))
        action = mode(out, discrete) if deterministic else sample(out, key, discrete)
        return to_env_action(env, action)

    return act


def advantages(
    traj: rollout.Transition,
    v_tm1: jax.Array,
    v_t: jax.Array,
    gamma: jax.Array | float,
    lambda_: jax.Array | float,
) -> jax.Array:
    """Truncation-aware GAE over a ``[T, B]`` rollout (``jaxrl.losses.truncated_gae`` per env).

    ``v_tm1 [T, B]``: V(s_t); ``v_t [T, B]``: V of the *true* next states (``traj.next_obs``).
    Termination zeroes the bootstrap, truncation bootstraps from V(final obs); every episode end (and
    invalid step) cuts the trace. ``lambda_ = 0`` gives ``r + gamma V(s') - V(s)``; ``lambda_ = 1``
    the n-step return to the end of the rollout minus V(s). Returns ``[T, B]``; targets are ``+ v_tm1``.
    """
    gae = jax.vmap(returns_losses.truncated_gae, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)
    return gae(traj.reward, traj.discount(gamma), v_tm1, v_t, traj.trace_end, lambda_)


# ------------------------------------------------------------------------------------------- LOSS
class PGBatch(NamedTuple):
    """A flat batch ``[N]`` for :func:`actor_critic_loss`."""

    obs: jax.Array  # [N, *obs_shape]
    action: jax.Array  # [N] int or [N, D] float (as sampled, before clipping)
    advantage: jax.Array  # [N] policy-gradient weight (A, or G - b, or G)
    target: jax.Array  # [N] value target
    mask: jax.Array  # [N] bool: the step takes part (valid, inside a used episode)


def standardize(x: jax.Array, mask: jax.Array) -> jax.Array:
    """``(x - mean) / (std + 1e-8)`` with mean and std taken over ``mask``ed entries only."""
    m = mask.astype(x.dtype)
    n = jnp.maximum(m.sum(), 1.0)
    mean = jnp.sum(x * m) / n
    std = jnp.sqrt(jnp.sum(jnp.square(x - mean) * m) / n)
    return (x - mean) / (std + 1e-8)


class ActorCriticLosses(NamedTuple):
    """The terms of :func:`actor_critic_loss`, each ``[]``."""

    total: jax.Array  # policy_loss + vf_coef * value_loss - ent_coef * entropy
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array


class Learner(NamedTuple):
    """What one gradient step of a single-network algorithm reads and changes (its ``update`` carry)."""

    params: Any
    opt_state: Any


def actor_critic_loss(
    params: Any,
    net: ActorCritic,
    discrete: bool,
    batch: PGBatch,
    vf_coef: jax.Array | float,
    ent_coef: jax.Array | float,
    *,
    normalize_advantages: bool = False,
) -> tuple[jax.Array, ActorCriticLosses]:
    """``pg + vf_coef * vf - ent_coef * entropy`` over the masked steps of ``batch``.

    pg = ``-mean log pi(a|s) A`` (A not differentiated; standardised first if asked),
    vf = ``mean 0.5 (V(s) - target)^2``. Returns ``(total, ActorCriticLosses)``.
    """
    out = net.apply(params, batch.obs)
    log_prob, ent = log_prob_entropy(out, batch.action, discrete)
    adv = standardize(batch.advantage, batch.mask) if normalize_advantages else batch.advantage
    pg = policy_losses.policy_gradient_loss(log_prob, adv, mask_t=batch.mask)
    vf = policy_losses.masked_mean(
        0.5 * jnp.square(out.value - jax.lax.stop_gradient(batch.target)), batch.mask
    )
    ent_mean = policy_losses.masked_mean(ent, batch.mask)
    total = pg + vf_coef * vf - ent_coef * ent_mean
    return total, ActorCriticLosses(total, pg, vf, ent_mean)
