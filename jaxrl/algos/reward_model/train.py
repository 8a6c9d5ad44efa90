"""Training: state, metrics, loss, one gradient step, one epoch (``train_step``)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import batching, optim
from jaxrl.algos import checks, grpo, named_metrics
from jaxrl.algos.reward_model.config import READOUTS, Config, is_hf
from jaxrl.algos.reward_model.data import dataset
from jaxrl.algos.reward_model.network import RewardModel, answer_log_probs, make_network
from jaxrl.data import preferences as prefs
from jaxrl.losses import preference as preference_losses
from jaxrl.networks import transformer
from jaxrl.runtime import rundir


class State(NamedTuple):
    params: Any  # reward-model parameters (transformer trunk + scalar head)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next epoch's shuffle
    iteration: jax.Array  # [] int32 epochs done


@named_metrics.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # held-out pair accuracy (the headline number; = eval_accuracy)
    env_steps: jax.Array  # training pairs seen so far
    train_loss: jax.Array  # mean Bradley-Terry loss over this epoch's minibatches
    lm_loss: jax.Array  # mean next-token loss on the chosen answers (trained only if lm_coef > 0)
    train_accuracy: jax.Array  # fraction of training pairs ranked right (during the epoch)
    eval_loss: jax.Array  # Bradley-Terry loss on the held-out pairs after the epoch
    eval_accuracy: jax.Array  # fraction of held-out pairs with r(chosen) > r(rejected)
    eval_margin: jax.Array  # mean r(chosen) - r(rejected) on the held-out pairs


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    steps = dataset(cfg).train.num_pairs // cfg.minibatch_size
    return optim.make_optimizer(
        cfg.learning_rate, cfg.max_grad_norm, anneal_steps=cfg.num_epochs * steps if cfg.anneal_lr else None
    )


# ----------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    data = dataset(cfg)
    k_net, key = jax.random.split(key)
    first = jax.tree_util.tree_map(lambda x: jnp.asarray(x[:1]), data.train)
    params = make_network(cfg).init(k_net, first.chosen, first.chosen_len, first.prompt_len, with_logits=True)
    if cfg.init_from is not None:
        params = {"params": {**params["params"], "trunk": policy_trunk(cfg)}}
    return State(params, _optimizer(cfg).init(params), key, jnp.zeros((), jnp.int32))


def validate(cfg: Config) -> None:
    """Host-side checks, including loading and checking the data (errors name the bad line)."""
    for name in ("num_epochs", "minibatch_size", "max_len", "num_pairs", "num_eval_pairs"):
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(
                f"RewardModelConfig.{name} must be a positive integer, got {getattr(cfg, name)!r}"
            )
    if cfg.readout not in (*READOUTS, "auto"):
        raise ValueError(
            f"RewardModelConfig.readout must be one of {(*READOUTS, 'auto')}, got {cfg.readout!r}"
        )
    if is_hf(cfg):
        from jaxrl import lm

        lm.read_config(lm.spec_path(cfg.model))  # a clear error for a missing or unsupported checkpoint
        if cfg.init_from is not None:
            raise ValueError(
                f"RewardModelConfig.init_from={cfg.init_from!r} starts a built-in transformer from a GRPO run; "
                f"model={cfg.model!r} already starts from that checkpoint: drop init_from"
            )
    elif cfg.model not in transformer.SIZES:
        raise ValueError(
            f"RewardModelConfig.model must be one of {sorted(transformer.SIZES)} or 'hf:<checkpoint dir>', "
            f"got {cfg.model!r}"
        )
    checks.check_positive(cfg, "learning_rate", "max_grad_norm")
    checks.check_range(cfg, "margin", 0.0, float("inf"))
    checks.check_range(cfg, "lm_coef", 0.0, float("inf"))
    if not 0.0 < cfg.eval_fraction < 1.0:
        raise ValueError(f"RewardModelConfig.eval_fraction must be in (0, 1), got {cfg.eval_fraction!r}")
    dataset(cfg)
    if cfg.init_from is not None:
        policy_trunk(cfg)  # loads and checks it now, before any training


def policy_trunk(cfg: Config) -> Any:
    """The transformer parameters of ``cfg.init_from``'s reference policy (a GRPO run directory), checked
    to fit this reward model's trunk (same size, context and vocabulary)."""
    run_dir = cfg.init_from
    if not os.path.isfile(os.path.join(run_dir, rundir.FINAL_STATE)):
        raise FileNotFoundError(
            f"RewardModelConfig.init_from={run_dir!r} is not a finished jaxrl run (no {rundir.FINAL_STATE}); "
            f"give the directory of a GRPO run (jaxrl train --algo grpo --out DIR)"
        )
    algo = rundir.read_spec(run_dir).get("algo")
    if algo != "grpo":
        raise ValueError(f"RewardModelConfig.init_from={run_dir!r} holds a {algo} run, not a GRPO policy")
    _, state = rundir.load_state(run_dir, grpo.ALGORITHM)
    trunk = state.ref_params["params"]
    net = make_network(cfg)
    data = dataset(cfg)
    first = jax.tree_util.tree_map(lambda x: jnp.asarray(x[:1]), data.train)
    shapes = jax.eval_shape(
        lambda: net.init(
            jax.random.key(0), first.chosen, first.chosen_len, first.prompt_len, with_logits=True
        )
    )["params"]["trunk"]
    want = jax.tree_util.tree_map(lambda x: x.shape, shapes)
    got = jax.tree_util.tree_map(lambda x: tuple(x.shape), trunk)
    if want != got:  # nested dicts of shape tuples: structure and shapes
        raise ValueError(
            f"RewardModelConfig.init_from={run_dir!r}: that policy's transformer does not fit this reward model "
            f"(model={cfg.model!r}, max_len={cfg.max_len}); use the GRPO run's model and max_len"
        )
    return jax.tree_util.tree_map(jnp.asarray, trunk)


# ----------------------------------------------------------------------------------------- LOSS
def _both(pairs: prefs.PairTokens) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Chosen rows then rejected rows: (tokens [2N, L], lengths [2N], prompt_len [2N])."""
    tokens = jnp.concatenate([pairs.chosen, pairs.rejected])
    lengths = jnp.concatenate([pairs.chosen_len, pairs.rejected_len])
    return tokens, lengths, jnp.concatenate([pairs.prompt_len, pairs.prompt_len])


def pair_rewards(params: Any, net: RewardModel, pairs: prefs.PairTokens) -> tuple[jax.Array, jax.Array]:
    """Rewards of the chosen and rejected answers, ``[N]`` each (one forward pass over ``2N`` rows)."""
    r = net.apply(params, *_both(pairs))
    n = pairs.chosen.shape[0]
    return r[:n], r[n:]


def answer_nll(logits: jax.Array, tokens: jax.Array, prompt_len: jax.Array, lengths: jax.Array) -> jax.Array:
    """Mean next-token loss on the answer tokens (``<eos>`` included) of right-padded rows.

    logits [B, L, V], tokens [B, L], prompt_len [B], lengths [B] -> [].
    """
    logp, mask = answer_log_probs(logits, tokens, prompt_len, lengths)
    return -jnp.sum(logp * mask) / jnp.maximum(mask.sum(), 1.0)


def loss(
    params: Any,
    net: RewardModel,
    pairs: prefs.PairTokens,
    margin: jax.Array | float,
    lm_coef: jax.Array | float,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    """Mean Bradley-Terry loss over a batch of pairs (+ ``lm_coef`` x next-token loss on the chosen
    answers); aux = (Bradley-Terry loss, pair accuracy, next-token loss)."""
    n = pairs.chosen.shape[0]
    r, (logp, mask) = net.apply(params, *_both(pairs), with_answer_logp=True)
    r_c, r_r = r[:n], r[n:]
    bt = jax.vmap(lambda c, x: preference_losses.preference_loss(c, x, margin=margin))(r_c, r_r).mean()
    acc = jax.vmap(preference_losses.preference_accuracy)(r_c, r_r).mean()
    lm = -jnp.sum(logp[:n] * mask[:n]) / jnp.maximum(mask[:n].sum(), 1.0)
    return bt + lm_coef * lm, (bt, acc, lm)


# --------------------------------------------------------------------------------------- UPDATE
def update(cfg: Config, net: RewardModel, carry: tuple, mb: prefs.PairTokens) -> tuple[tuple, jax.Array]:
    """One gradient step on a minibatch of pairs. ``carry = (params, opt_state)``."""
    params, opt_state = carry
    (_, (bt, acc, lm)), grads = jax.value_and_grad(loss, has_aux=True)(
        params, net, mb, cfg.margin, cfg.lm_coef
    )
    updates, opt_state = _optimizer(cfg).update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), jnp.stack([bt, acc, lm])


def evaluate_pairs(
    params: Any,
    net: RewardModel,
    pairs: prefs.PairTokens,
    *,
    margin: jax.Array | float = 0.0,
    batch_size: int = 256,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(loss, accuracy, mean reward gap) over all ``pairs``, scored ``batch_size`` pairs at a time."""
    r_c, r_r = jax.lax.map(
        lambda p: pair_rewards(params, net, jax.tree_util.tree_map(lambda x: x[None], p)),
        pairs,
        batch_size=batch_size,
    )
    r_c, r_r = r_c.reshape(-1), r_r.reshape(-1)
    per_pair = jax.vmap(lambda c, r: preference_losses.preference_loss(c, r, margin=margin))(r_c, r_r)
    acc = jax.vmap(preference_losses.preference_accuracy)(r_c, r_r)
    return per_pair.mean(), acc.mean(), (r_c - r_r).mean()


# ----------------------------------------------------------------------------------- TRAIN STEP
def train_step(cfg: Config, state: State) -> tuple[State, Metrics]:
    """One epoch: shuffled minibatches over the training pairs, then held-out loss and accuracy."""
    data = dataset(cfg)
    net = make_network(cfg)
    key, k_epoch = jax.random.split(state.key)
    train = jax.tree_util.tree_map(jnp.asarray, data.train)
    held = jax.tree_util.tree_map(jnp.asarray, data.eval)

    # EPOCH
    (params, opt_state), stats = batching.minibatch_epochs(
        k_epoch,
        (state.params, state.opt_state),
        train,
        lambda c, mb: update(cfg, net, c, mb),
        num_epochs=1,
        num_minibatches=data.train.num_pairs // cfg.minibatch_size,
    )
    train_loss, train_acc, lm_loss = stats.mean(axis=(0, 1))

    # HELD-OUT
    eval_loss, eval_acc, eval_margin = evaluate_pairs(
        params, net, held, margin=cfg.margin, batch_size=cfg.minibatch_size
    )
    iteration = state.iteration + 1
    metrics = Metrics(
        episode_return=eval_acc,
        env_steps=iteration * data.train.num_pairs,
        train_loss=train_loss,
        lm_loss=lm_loss,
        train_accuracy=train_acc,
        eval_loss=eval_loss,
        eval_accuracy=eval_acc,
        eval_margin=eval_margin,
    )
    return State(params, opt_state, key, iteration), metrics


def num_iterations(cfg: Config) -> int:
    return cfg.num_epochs
