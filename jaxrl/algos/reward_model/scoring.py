"""Scoring with a trained reward model: text scorer, GRPO reward source, loading a run, report."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos import base
from jaxrl.algos.reward_model.config import Config, context_length
from jaxrl.algos.reward_model.data import dataset, make_task
from jaxrl.algos.reward_model.network import make_network
from jaxrl.algos.reward_model.train import State, evaluate_pairs
from jaxrl.data import preferences as prefs
from jaxrl.runtime import rundir

NAME = "reward_model"


def make_scorer(cfg: Config, params: Any) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """Jitted ``score(tokens [B, L] int32, lengths [B] int32, prompt_len [B] int32) -> [B] float32`` of
    right-padded ``<bos> prompt answer <eos>`` rows (``L <=`` the model's context)."""
    net = make_network(cfg)
    return jax.jit(lambda tokens, lengths, prompt_len: net.apply(params, tokens, lengths, prompt_len))


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
        if tokens.chosen.shape[1] > context_length(cfg):
            raise ValueError(
                f"a row is {tokens.chosen.shape[1]} tokens, more than the model's context {context_length(cfg)}"
            )
        r = np.asarray(scorer(tokens.chosen, tokens.chosen_len, tokens.prompt_len))
        return float(r[0]) if single else r

    return score


# ------------------------------------------------------------------------------- GRPO REWARD SOURCE
def completion_rows(batch: Any, eos_id: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``<bos> prompt text <eos>`` rows of a GRPO ``RewardBatch``: (tokens [N, L+1], lengths [N],
    prompt_len [N]).

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
    return rows, (n_text + 1).astype(np.int32), np.asarray(batch.prompt_len, np.int32)


def reward_source(cfg: Config, params: Any, *, normalize: bool = False, task: Any = None, eps: float = 1e-6):
    """A GRPO reward source (``RewardBatch -> [N]`` float32) that scores completions with the model.

    Scoring is one jitted batched forward pass. ``normalize``: standardise the scores over the batch
    (zero mean, unit std), so weights in a mix with 0/1 verifier rewards mean what they say. ``task``
    (the GRPO task, with its policy's tokenizer) is checked to use the reward model's token ids: the model
    scores the policy's tokens as they are.
    """
    tok = make_task(cfg).tokenizer
    if task is not None:
        why = tokenizer_mismatch(tok, task.tokenizer)
        if why:
            raise ValueError(
                f"the reward model (model={cfg.model!r}, task {make_task(cfg).name!r}) reads tokens with "
                f"{tok!r} but the GRPO policy writes them with {task.tokenizer!r}: {why}. It scores the "
                f"policy's token ids as they are, so train the reward model on the same task (built-in "
                f"models) or on a checkpoint with the policy's tokenizer (model='hf:<dir>')"
            )
    scorer = make_scorer(cfg, params)
    max_len = context_length(cfg)

    def reward(batch: Any) -> np.ndarray:
        rows, lengths, prompt_len = completion_rows(batch, tok.eos_id, tok.pad_id)
        if rows.shape[1] > max_len:
            raise ValueError(
                f"GRPO sequences need {rows.shape[1]} tokens (with <eos>) but the reward model's context is "
                f"{max_len}; train it with a larger max_len (or a checkpoint with a longer context)"
            )
        r = np.asarray(scorer(rows, lengths, prompt_len), np.float32)
        if normalize:
            r = (r - r.mean()) / (r.std() + eps)
        return r

    return reward


def tokenizer_mismatch(a: Any, b: Any) -> str:
    """Why tokenizers ``a`` and ``b`` do not give the same ids ("" when they do): the same character
    alphabet (``jaxrl.CharTokenizer``), or the same vocabulary and special ids (Hugging Face tokenizers)."""
    if a is b:
        return ""
    hf_a, hf_b = getattr(a, "hf", None), getattr(b, "hf", None)
    if (hf_a is None) != (hf_b is None):
        return "one is a checkpoint's tokenizer and the other a built-in task's"
    if hf_a is None:
        return "" if getattr(a, "chars", None) == getattr(b, "chars", None) else "different alphabets"
    if a.vocab_size != b.vocab_size:
        return f"{a.vocab_size} vs {b.vocab_size} token ids"
    for name in ("eos_id", "pad_id", "bos_id"):
        if getattr(a, name) != getattr(b, name):
            return f"{name} {getattr(a, name)} vs {getattr(b, name)}"
    if hf_a.get_vocab() != hf_b.get_vocab():
        return "the same number of ids, mapped to different tokens"
    return ""


def load(run_dir: str) -> tuple[Config, State]:
    """The config and final state of a reward-model run directory written by ``jaxrl.run`` / the CLI."""
    if not os.path.isfile(os.path.join(run_dir, rundir.FINAL_STATE)):
        raise FileNotFoundError(
            f"{run_dir!r} is not a finished jaxrl run (no {rundir.FINAL_STATE}); train one with "
            f"`jaxrl train --algo reward_model --out {run_dir}`"
        )
    algo = rundir.read_spec(run_dir).get("algo")
    if algo != NAME:
        raise ValueError(
            f"{run_dir} holds a {algo} run, not a reward model (jaxrl train --algo reward_model)"
        )
    return rundir.load_state(run_dir, base.registered(NAME))


def _rm_source(arg: str, task: Any):
    """``"rm:<run_dir>"`` or ``"rm:<run_dir>?normalize"``."""
    path, _, opts = arg.partition("?")
    if opts not in ("", "normalize"):
        raise ValueError(f"reward 'rm:{arg}': unknown option {opts!r}; the only option is '?normalize'")
    cfg, state = load(path)
    return reward_source(cfg, state.params, normalize=opts == "normalize", task=task)


def register_reward_source() -> None:
    """Make ``GRPOConfig(reward="rm:<run_dir>[?normalize]")`` load a reward model run."""
    from jaxrl.algos.grpo import rewards

    rewards.register_reward_source("rm", _rm_source)


def report(cfg: Config, state: State) -> str:
    """The end-of-run lines of ``jaxrl train --algo reward_model``."""
    data = dataset(cfg)
    net = make_network(cfg)
    held = jax.tree_util.tree_map(jnp.asarray, data.eval)
    loss_, acc, gap = jax.jit(
        lambda p: evaluate_pairs(p, net, held, margin=cfg.margin, batch_size=cfg.minibatch_size)
    )(state.params)
    return (
        f"held-out pair accuracy {float(acc):.3f} on {data.eval.num_pairs} pairs "
        f"(loss {float(loss_):.3f}, mean r(chosen) - r(rejected) {float(gap):.2f}); "
        f"use it in GRPO with --set reward=rm:<this run dir>"
    )
