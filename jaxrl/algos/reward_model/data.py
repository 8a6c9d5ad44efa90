"""The tokenised training and held-out pairs of a config (JSONL or synthetic), cached."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, NamedTuple

import numpy as np

from jaxrl import tasks
from jaxrl.algos.reward_model.config import Config, context_length, is_hf
from jaxrl.data import preferences as prefs


class Dataset(NamedTuple):
    """Host arrays, both splits padded to the same width (one compiled shape)."""

    train: prefs.PairTokens  # [N_train, W], N_train a multiple of minibatch_size
    eval: prefs.PairTokens  # [N_eval, W]
    tokenizer: Any


def make_task(cfg: Config):
    """The task ``cfg.task`` names; with an ``"hf:<dir>"`` model its tokenizer is the checkpoint's."""
    task = tasks.make_task(cfg.task)
    if not is_hf(cfg):
        return task
    from jaxrl import lm

    return _with_tokenizer(task, lm.resolve(cfg.model)[2])


@functools.lru_cache(maxsize=8)
def _with_tokenizer(task: Any, tokenizer: Any) -> Any:
    return dataclasses.replace(task, tokenizer=tokenizer)  # (cached: one task object per tokenizer)


def _data_key(cfg: Config) -> tuple:
    """What the data depends on: static fields only (so tunable leaves may be traced), and the files'
    modification times (an edited file is reloaded)."""
    files = tuple(os.path.getmtime(f) if f and os.path.exists(f) else None for f in (cfg.data, cfg.eval_data))
    return (cfg.task, cfg.data, cfg.eval_data, cfg.eval_fraction, cfg.num_pairs, cfg.num_eval_pairs,
            cfg.data_seed, cfg.max_len, cfg.minibatch_size, cfg.model, cfg.system_prompt, files)  # fmt: skip


_DATA_CACHE: dict[tuple, Dataset] = {}


def dataset(cfg: Config) -> Dataset:
    """The (cached) tokenised training and held-out pairs of ``cfg``; raises on bad data."""
    key = _data_key(cfg)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = _build_dataset(cfg)
    return _DATA_CACHE[key]


def _load_jsonl(cfg: Config, path: str, tok: Any) -> list[prefs.PreferencePair]:
    """Pairs of ``path``; with an hf: model each prompt is formatted as GRPO's JSONL tasks format it
    (system turn, the checkpoint's chat template), then checked to fit the context."""
    max_len = context_length(cfg)
    pairs = prefs.load_jsonl(path, tokenizer=tok, max_len=max_len)
    if not is_hf(cfg):
        return pairs
    from jaxrl.tasks import jsonl

    out = [p._replace(prompt=jsonl.format_prompt(tok, p.prompt, cfg.system_prompt)) for p in pairs]
    for i, p in enumerate(out):
        prefs.check_pair(
            p._asdict(), where=f"{path}: pair {i + 1} (prompt formatted)", tokenizer=tok, max_len=max_len
        )
    return out


def _build_dataset(cfg: Config) -> Dataset:
    task = make_task(cfg)
    tok = task.tokenizer
    if cfg.data is None:
        train = prefs.synthetic_pairs(task, cfg.num_pairs, seed=cfg.data_seed)
        held = prefs.synthetic_pairs(task, cfg.num_eval_pairs, seed=cfg.data_seed + 1, heldout=True)
        for p in train + held:  # the built-in rules keep answers short; a user task might not
            prefs.check_pair(
                p._asdict(), where=f"synthetic pair {p}", tokenizer=tok, max_len=context_length(cfg)
            )
    else:
        train = _load_jsonl(cfg, cfg.data, tok)
        if cfg.eval_data is not None:
            held = _load_jsonl(cfg, cfg.eval_data, tok)
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
    n_train = (len(train) // cfg.minibatch_size) * cfg.minibatch_size
    if n_train == 0:
        raise ValueError(
            f"RewardModelConfig: {len(train)} training pairs are fewer than minibatch_size={cfg.minibatch_size}; "
            f"lower minibatch_size or add data"
        )
    train = train[:n_train]  # the remainder would make a ragged last minibatch
    width = max(
        len(prefs.sequence_ids(tok, p.prompt, a)) for p in train + held for a in (p.chosen, p.rejected)
    )
    return Dataset(prefs.tokenize_pairs(train, tok, width), prefs.tokenize_pairs(held, tok, width), tok)
