"""Reward model from preference pairs (Bradley-Terry), and its use as a GRPO reward source.

The model is the built-in decoder-only transformer (:mod:`jaxrl.networks.transformer`) with a scalar
head read at the last non-pad token of ``<bos> prompt answer <eos>``; it is trained to rank the chosen
answer of each pair above the rejected one, ``-log sigmoid(r(chosen) - r(rejected) - margin)``
(Ouyang et al. 2022, arXiv:2203.02155). Data is a JSONL file (``data=``, see
:mod:`jaxrl.data.preferences`) or synthetic pairs for a built-in task from a hidden rule (the default).

One ``train_step`` is one epoch: shuffled minibatches over the training pairs, then the loss and pair
accuracy on the held-out pairs. It is pure JAX, so ``jaxrl.train(RewardModelConfig(), key)`` is one
``lax.scan`` and runs under the same runtime as every other algorithm::

    state, metrics = jaxrl.train(jaxrl.RewardModelConfig(task="addition"), key)
    metrics["eval_accuracy"][-1]                  # held-out pair accuracy after the last epoch
    score = jaxrl.make_policy(cfg, state)         # score("12+34=", "46") -> float
    grpo = jaxrl.GRPOConfig(reward=reward_source(cfg, state.params))  # or reward="rm:<run_dir>"

A trained model becomes a GRPO reward with :func:`reward_source` (or ``GRPOConfig(reward="rm:<run_dir>")``,
``"rm:<run_dir>?normalize"`` for per-batch standardised scores, ``"0.5*rm:<dir> + 0.5*task"`` to mix).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxrl import batching, optim
from jaxrl.algos import base
from jaxrl.data import preferences as prefs
from jaxrl.losses import preference as preference_losses
from jaxrl.networks import transformer


# ---------------------------------------------------------------------------------------- CONFIG
@struct.dataclass
class Config:
    """Reward-model settings; defaults train a ``tiny`` transformer on synthetic addition preferences."""

    # DATA
    task: Any = struct.field(
        pytree_node=False, default="addition"
    )  # GRPO task (name or jaxrl.Task): tokenizer, synthetic pairs
    data: str | None = struct.field(
        pytree_node=False, default=None
    )  # JSONL with prompt/chosen/rejected (None: synthetic)
    eval_data: str | None = struct.field(
        pytree_node=False, default=None
    )  # held-out JSONL (None: a split of data)
    eval_fraction: float = struct.field(
        pytree_node=False, default=0.1
    )  # held-out share of data when eval_data is None
    num_pairs: int = struct.field(pytree_node=False, default=20_000)  # synthetic training pairs
    num_eval_pairs: int = struct.field(
        pytree_node=False, default=2_000
    )  # synthetic held-out pairs (held-out prompts)
    data_seed: int = struct.field(pytree_node=False, default=0)  # synthetic pairs / JSONL split
    # MODEL
    model: str = struct.field(pytree_node=False, default="tiny")  # built-in transformer: nano | tiny | small
    max_len: int = struct.field(
        pytree_node=False, default=32
    )  # model context in tokens (<bos> and <eos> included)
    # TRAINING
    num_epochs: int = struct.field(
        pytree_node=False, default=12
    )  # passes over the training pairs (one per iteration)
    batch_size: int = struct.field(pytree_node=False, default=128)  # pairs per gradient step
    anneal_lr: bool = struct.field(pytree_node=False, default=True)  # linear decay of the step size to 0
    learning_rate: float = 1e-3  # Adam step size (initial, if annealed)
    max_grad_norm: float = 1.0  # global-norm gradient clip
    margin: float = 0.0  # Bradley-Terry margin: -log sigmoid(r_c - r_r - margin)
    # weight of an auxiliary next-token loss on the chosen answers (0: pure Bradley-Terry); it teaches
    # the trunk what good answers look like, which the scalar head alone learns slowly
    lm_coef: float = 0.0

    def transformer_config(self, vocab_size: int) -> transformer.TransformerConfig:
        return transformer.TransformerConfig.of_size(self.model, vocab_size=vocab_size, max_len=self.max_len)


class State(NamedTuple):
    params: Any  # reward-model parameters (transformer trunk + scalar head)
    opt_state: Any  # optax state
    key: jax.Array  # PRNG key for the next epoch's shuffle
    iteration: jax.Array  # [] int32 epochs done


@base.metrics_type
class Metrics(NamedTuple):
    episode_return: jax.Array  # held-out pair accuracy (the headline number; = eval_accuracy)
    env_steps: jax.Array  # training pairs seen so far
    train_loss: jax.Array  # mean Bradley-Terry loss over this epoch's minibatches
    lm_loss: jax.Array  # mean next-token loss on the chosen answers (trained only if lm_coef > 0)
    train_accuracy: jax.Array  # fraction of training pairs ranked right (during the epoch)
    eval_loss: jax.Array  # Bradley-Terry loss on the held-out pairs after the epoch
    eval_accuracy: jax.Array  # fraction of held-out pairs with r(chosen) > r(rejected)
    eval_margin: jax.Array  # mean r(chosen) - r(rejected) on the held-out pairs


# ---------------------------------------------------------------------------------------- MODEL
class RewardModel(nn.Module):
    """Transformer trunk + linear scalar head read at the last real token.

    ``apply(params, tokens [B, L] int, lengths [B] int) -> rewards [B] float32``; rows are right-padded
    and ``lengths`` counts the real tokens, so the head reads position ``lengths - 1`` (the ``<eos>``).
    The trunk is causal, so padding after a row's end never changes its reward. With
    ``with_logits=True`` it also returns the trunk's next-token logits ``[B, L, V]`` (the auxiliary
    language-model loss; the parameters always include that head).
    """

    cfg: transformer.TransformerConfig

    def setup(self):
        self.trunk = transformer.Transformer(self.cfg)
        self.head = nn.Dense(1, kernel_init=nn.initializers.normal(0.02))

    def __call__(self, tokens: jax.Array, lengths: jax.Array, *, with_logits: bool = False):
        h = self.trunk.features(tokens)  # [B, L, D]
        last = jnp.take_along_axis(h, (lengths - 1)[:, None, None].astype(jnp.int32), axis=1)[:, 0]  # [B, D]
        r = self.head(last)[:, 0].astype(jnp.float32)
        if with_logits:
            return r, self.trunk.head(h)
        return r


# ----------------------------------------------------------------------------------------- DATA
class Dataset(NamedTuple):
    """Host arrays, both splits padded to the same width (one compiled shape)."""

    train: prefs.PairTokens  # [N_train, W], N_train a multiple of batch_size
    eval: prefs.PairTokens  # [N_eval, W]
    tokenizer: Any


def make_task(cfg: Config):
    from jaxrl.algos.grpo import tasks  # the task API (tokenizer + problems) lives with GRPO

    return tasks.make_task(cfg.task)


def _data_key(cfg: Config) -> tuple:
    """What the data depends on: static fields only (so tunable leaves may be traced), and the files'
    modification times (an edited file is reloaded)."""
    files = tuple(os.path.getmtime(f) if f and os.path.exists(f) else None for f in (cfg.data, cfg.eval_data))
    return (cfg.task, cfg.data, cfg.eval_data, cfg.eval_fraction, cfg.num_pairs, cfg.num_eval_pairs,
            cfg.data_seed, cfg.max_len, cfg.batch_size, files)  # fmt: skip


_DATA_CACHE: dict[tuple, Dataset] = {}


def dataset(cfg: Config) -> Dataset:
    """The (cached) tokenised training and held-out pairs of ``cfg``; raises on bad data."""
    key = _data_key(cfg)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = _build_dataset(cfg)
    return _DATA_CACHE[key]


def _build_dataset(cfg: Config) -> Dataset:
    task = make_task(cfg)
    tok = task.tokenizer
    if cfg.data is None:
        train = prefs.synthetic_pairs(task, cfg.num_pairs, seed=cfg.data_seed)
        held = prefs.synthetic_pairs(task, cfg.num_eval_pairs, seed=cfg.data_seed + 1, heldout=True)
        for p in train + held:  # the built-in rules keep answers short; a user task might not
            prefs.check_pair(p._asdict(), where=f"synthetic pair {p}", tokenizer=tok, max_len=cfg.max_len)
    else:
        train = prefs.load_jsonl(cfg.data, tokenizer=tok, max_len=cfg.max_len)
        if cfg.eval_data is not None:
            held = prefs.load_jsonl(cfg.eval_data, tokenizer=tok, max_len=cfg.max_len)
        else:
            order = np.random.default_rng(cfg.data_seed).permutation(len(train))
            n_eval = int(round(cfg.eval_fraction * len(train)))
            if n_eval < 1 or n_eval >= len(train):
                raise ValueError(
                    f"RewardModelConfig: {cfg.data} has {len(train)} pairs; eval_fraction={cfg.eval_fraction} "
                    f"leaves {n_eval} held-out pairs. Give eval_data=<file> or an eval_fraction that keeps "
                    f"at least one pair on each side"
                )
            held = [train[i] for i in order[:n_eval]]
            train = [train[i] for i in order[n_eval:]]
    n_train = (len(train) // cfg.batch_size) * cfg.batch_size
    if n_train == 0:
        raise ValueError(
            f"RewardModelConfig: {len(train)} training pairs are fewer than batch_size={cfg.batch_size}; "
            f"lower batch_size or add data"
        )
    train = train[:n_train]  # the remainder would make a ragged last minibatch
    width = max(
        len(prefs.sequence_ids(tok, p.prompt, a)) for p in train + held for a in (p.chosen, p.rejected)
    )
    return Dataset(prefs.tokenize_pairs(train, tok, width), prefs.tokenize_pairs(held, tok, width), tok)


def make_network(cfg: Config) -> RewardModel:
    return RewardModel(cfg.transformer_config(make_task(cfg).tokenizer.vocab_size))


def validate(cfg: Config) -> None:
    """Host-side checks, including loading and checking the data (errors name the bad line)."""
    for name in ("num_epochs", "batch_size", "max_len", "num_pairs", "num_eval_pairs"):
        if int(getattr(cfg, name)) <= 0:
            raise ValueError(
                f"RewardModelConfig.{name} must be a positive integer, got {getattr(cfg, name)!r}"
            )
    if cfg.model not in transformer.SIZES:
        raise ValueError(
            f"RewardModelConfig.model must be one of {sorted(transformer.SIZES)}, got {cfg.model!r}"
        )
    base.check_positive(cfg, "learning_rate", "max_grad_norm")
    base.check_range(cfg, "margin", 0.0, float("inf"))
    base.check_range(cfg, "lm_coef", 0.0, float("inf"))
    if not 0.0 < cfg.eval_fraction < 1.0:
        raise ValueError(f"RewardModelConfig.eval_fraction must be in (0, 1), got {cfg.eval_fraction!r}")
    dataset(cfg)


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    steps = dataset(cfg).train.num_pairs // cfg.batch_size
    return optim.make_optimizer(
        cfg.learning_rate, cfg.max_grad_norm, anneal_steps=cfg.num_epochs * steps if cfg.anneal_lr else None
    )


# ----------------------------------------------------------------------------------------- INIT
def init(cfg: Config, key: jax.Array) -> State:
    data = dataset(cfg)
    k_net, key = jax.random.split(key)
    rows, lengths = jnp.asarray(data.train.chosen[:1]), jnp.asarray(data.train.chosen_len[:1])
    params = make_network(cfg).init(k_net, rows, lengths, with_logits=True)  # the LM head too
    return State(params, _optimizer(cfg).init(params), key, jnp.zeros((), jnp.int32))


# ----------------------------------------------------------------------------------------- LOSS
def pair_rewards(params: Any, net: RewardModel, pairs: prefs.PairTokens) -> tuple[jax.Array, jax.Array]:
    """Rewards of the chosen and rejected answers, ``[N]`` each (one forward pass over ``2N`` rows)."""
    tokens = jnp.concatenate([pairs.chosen, pairs.rejected])
    lengths = jnp.concatenate([pairs.chosen_len, pairs.rejected_len])
    r = net.apply(params, tokens, lengths)
    n = pairs.chosen.shape[0]
    return r[:n], r[n:]


def answer_nll(logits: jax.Array, tokens: jax.Array, prompt_len: jax.Array, lengths: jax.Array) -> jax.Array:
    """Mean next-token loss on the answer tokens (``<eos>`` included) of right-padded rows.

    logits [B, L, V], tokens [B, L], prompt_len [B], lengths [B] -> [].
    """
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]  # [B, L-1], predicts t+1
    pos = jnp.arange(1, tokens.shape[1])[None, :]
    mask = ((pos >= prompt_len[:, None]) & (pos < lengths[:, None])).astype(jnp.float32)
    return jnp.sum(nll * mask) / jnp.maximum(mask.sum(), 1.0)


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
    tokens = jnp.concatenate([pairs.chosen, pairs.rejected])
    lengths = jnp.concatenate([pairs.chosen_len, pairs.rejected_len])
    r, logits = net.apply(params, tokens, lengths, with_logits=True)
    r_c, r_r = r[:n], r[n:]
    bt = jax.vmap(lambda c, x: preference_losses.preference_loss(c, x, margin=margin))(r_c, r_r).mean()
    acc = jax.vmap(preference_losses.preference_accuracy)(r_c, r_r).mean()
    lm = answer_nll(logits[:n], pairs.chosen, pairs.prompt_len, pairs.chosen_len)
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
        num_minibatches=data.train.num_pairs // cfg.batch_size,
    )
    train_loss, train_acc, lm_loss = stats.mean(axis=(0, 1))

    # HELD-OUT
    eval_loss, eval_acc, eval_margin = evaluate_pairs(
        params, net, held, margin=cfg.margin, batch_size=cfg.batch_size
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


# -------------------------------------------------------------------------------------- SCORING
def make_scorer(cfg: Config, params: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """Jitted ``score(tokens [B, L] int32, lengths [B] int32) -> [B] float32`` of right-padded
    ``<bos> prompt answer <eos>`` rows (``L <= cfg.max_len``)."""
    net = make_network(cfg)
    return jax.jit(lambda tokens, lengths: net.apply(params, tokens, lengths))


def make_policy(cfg: Config, state: State, *, deterministic: bool = True):
    """A reward model does not act; its "policy" is its scorer on text:
    ``score(prompt, answer) -> float`` or ``score([prompts], [answers]) -> np.ndarray [N]``."""
    del deterministic
    tok = make_task(cfg).tokenizer
    scorer = make_scorer(cfg, state.params)

    def score(prompts: str | Sequence[str], answers: str | Sequence[str]):
        single = isinstance(prompts, str)
        ps, ans = ([prompts], [answers]) if single else (list(prompts), list(answers))
        pairs = [prefs.PreferencePair(p, a, a) for p, a in zip(ps, ans, strict=True)]
        tokens = prefs.tokenize_pairs(pairs, tok)
        if tokens.chosen.shape[1] > cfg.max_len:
            raise ValueError(f"an answer is {tokens.chosen.shape[1]} tokens, more than max_len={cfg.max_len}")
        r = np.asarray(scorer(tokens.chosen, tokens.chosen_len))
        return float(r[0]) if single else r

    return score


# ------------------------------------------------------------------------------- GRPO REWARD SOURCE
def completion_rows(batch: Any, eos_id: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``<bos> prompt text <eos>`` rows of a GRPO ``RewardBatch``: (tokens [N, L+1], lengths [N]).

    A completion that did not finish gets an ``<eos>`` after its text, so the model scores the text the
    policy wrote, exactly what the verifier grades.
    """
    tokens = np.asarray(batch.tokens)
    n, width = tokens.shape
    finished = np.asarray(batch.finished, bool)
    n_text = (
        np.asarray(batch.prompt_len)
        + np.asarray(batch.completion_mask).sum(axis=1).astype(np.int64)
        - finished
    )
    rows = np.full((n, width + 1), pad_id, np.int32)
    rows[:, :width] = tokens
    rows[np.arange(width + 1)[None, :] >= n_text[:, None]] = pad_id
    rows[np.arange(n), n_text] = eos_id
    return rows, (n_text + 1).astype(np.int32)


def reward_source(cfg: Config, params: Any, *, normalize: bool = False, task: Any = None, eps: float = 1e-6):
    """A GRPO reward source (``RewardBatch -> [N]`` float32) that scores completions with the model.

    Scoring is one jitted batched forward pass. ``normalize``: standardise the scores over the batch
    (zero mean, unit std), so weights in a mix with 0/1 verifier rewards mean what they say. ``task``
    (the GRPO task) is checked to use the same tokenizer alphabet as the reward model.
    """
    tok = make_task(cfg).tokenizer
    if task is not None and getattr(task.tokenizer, "chars", None) != getattr(tok, "chars", None):
        raise ValueError(
            f"the reward model was trained with tokenizer {tok!r} (task {make_task(cfg).name!r}) but the GRPO "
            f"task {task.name!r} uses {task.tokenizer!r}; train the reward model on the same task"
        )
    scorer = make_scorer(cfg, params)

    def reward(batch: Any) -> np.ndarray:
        rows, lengths = completion_rows(batch, tok.eos_id, tok.pad_id)
        if rows.shape[1] > cfg.max_len:
            raise ValueError(
                f"GRPO sequences need {rows.shape[1]} tokens (with <eos>) but the reward model's max_len is "
                f"{cfg.max_len}; train it with a larger max_len"
            )
        r = np.asarray(scorer(rows, lengths), np.float32)
        if normalize:
            r = (r - r.mean()) / (r.std() + eps)
        return r

    return reward


def load(run_dir: str) -> tuple[Config, State]:
    """The config and final state of a reward-model run directory written by ``jaxrl.run`` / the CLI."""
    from jaxrl import runtime  # lazy: the runtime pulls in checkpointing

    if not os.path.isfile(os.path.join(run_dir, "final_state.msgpack")):
        raise FileNotFoundError(
            f"{run_dir!r} is not a finished jaxrl run (no final_state.msgpack); train one with "
            f"`jaxrl train --algo reward_model --out {run_dir}`"
        )
    cfg, state = runtime.load_state(run_dir)
    if not isinstance(cfg, Config):
        raise ValueError(
            f"{run_dir} holds a {type(cfg).__name__} run, not a reward model (--algo reward_model)"
        )
    return cfg, state


def _rm_source(arg: str, task: Any):
    """``"rm:<run_dir>"`` or ``"rm:<run_dir>?normalize"``."""
    path, _, opts = arg.partition("?")
    if opts not in ("", "normalize"):
        raise ValueError(f"reward 'rm:{arg}': unknown option {opts!r}; the only option is '?normalize'")
    cfg, state = load(path)
    return reward_source(cfg, state.params, normalize=opts == "normalize", task=task)


def _register_reward_source() -> None:
    from jaxrl.algos.grpo import rewards

    rewards.register_reward_source("rm", _rm_source)


_register_reward_source()


def report(cfg: Config, state: State) -> str:
    """The end-of-run lines of ``jaxrl train --algo reward_model``."""
    data = dataset(cfg)
    net = make_network(cfg)
    held = jax.tree_util.tree_map(jnp.asarray, data.eval)
    loss_, acc, gap = jax.jit(
        lambda p: evaluate_pairs(p, net, held, margin=cfg.margin, batch_size=cfg.batch_size)
    )(state.params)
    return (
        f"held-out pair accuracy {float(acc):.3f} on {data.eval.num_pairs} pairs "
        f"(loss {float(loss_):.3f}, mean r(chosen) - r(rejected) {float(gap):.2f}); "
        f"use it in GRPO with --set reward=rm:<this run dir>"
    )


ALGORITHM = base.register(
    base.Algorithm(
        name="reward_model",
        config=Config,
        init=init,
        train_step=train_step,
        num_iterations=num_iterations,
        make_policy=make_policy,
        validate=validate,
        description="Bradley-Terry reward model on preference pairs (JSONL or synthetic); a GRPO reward source",
        steps_per_iteration=lambda cfg: dataset(cfg).train.num_pairs,
        report=report,
    )
)
