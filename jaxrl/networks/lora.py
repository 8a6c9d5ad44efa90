"""LoRA (Hu et al. 2021, arXiv:2106.09685): low-rank adapters on a frozen model's dense kernels.

A targeted kernel ``W [in, out]`` is used as ``W + (alpha / rank) * a @ b`` with ``a [in, rank]``
(random) and ``b [rank, out]`` (zeros), so a fresh adapter leaves the model exactly as it was. Only the
adapters are trained: :func:`split` gives (trainable, frozen) so that gradients and optimizer state
cover the adapters alone, and the reference policy of GRPO is the same base weights with the adapters
set to zero (:func:`without_adapters`): no second copy of the model. :func:`merge` folds the adapters
into the kernels (for export: a plain checkpoint of the same shape).

Works on any :class:`~jaxrl.networks.transformer.PolicyModel` whose parameters are nested dicts with
2-D ``"kernel"`` leaves (flax ``nn.Dense``): targets are module names on the path to the kernel, e.g.
``("q_proj", "v_proj")`` for the Llama family, ``("qkv", "proj")`` for the built-in transformer.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.networks.transformer import PolicyModel

#: attention projections of the Llama family (jaxrl.lm) and of the built-in transformer
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv", "proj")


class LoRAParams(NamedTuple):
    """Parameters of a LoRA-wrapped model."""

    base: Any  # the frozen model's parameters
    adapters: dict[str, dict[str, jax.Array]]  # "path/to/kernel" -> {"a": [in, r], "b": [r, out]}


def _kernels(base: Any, targets: Sequence[str]) -> dict[str, tuple[tuple, jax.Array]]:
    """``{"a/b/kernel": (key path, kernel)}`` for every 2-D kernel under a targeted module."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(base)[0]:
        names = [str(getattr(k, "key", k)) for k in path]
        if names[-1] == "kernel" and getattr(leaf, "ndim", 0) == 2 and set(names[:-1]) & set(targets):
            out["/".join(names)] = (tuple(names), leaf)
    return out


def init_adapters(key: jax.Array, base: Any, rank: int, targets: Sequence[str] = DEFAULT_TARGETS) -> dict:
    """Adapters for every targeted kernel of ``base``: ``a ~ N(0, 1/in)``, ``b = 0`` (float32)."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    found = _kernels(base, targets)
    if not found:
        names = sorted(
            {
                str(getattr(k, "key", k))
                for p, _ in jax.tree_util.tree_flatten_with_path(base)[0]
                for k in p[:-1]
            }
        )
        raise ValueError(
            f"no dense kernel under the LoRA targets {tuple(targets)}; module names here: {names}"
        )
    adapters = {}
    for i, (name, (_, w)) in enumerate(sorted(found.items())):
        d_in, d_out = w.shape
        a = jax.random.normal(jax.random.fold_in(key, i), (d_in, rank), jnp.float32) / jnp.sqrt(d_in)
        adapters[name] = {"a": a, "b": jnp.zeros((rank, d_out), jnp.float32)}
    return adapters


def merge(params: LoRAParams, scale: float) -> Any:
    """The base parameters with ``scale * a @ b`` added to every adapted kernel (in its dtype)."""
    merged = jax.tree_util.tree_map(lambda x: x, params.base)  # new containers, same arrays

    def put(tree: dict, names: tuple, value: jax.Array) -> None:
        for n in names[:-1]:
            tree = tree[n]
        tree[names[-1]] = value

    for name, ab in params.adapters.items():
        names = tuple(name.split("/"))
        w = params.base
        for n in names:
            w = w[n]
        delta = scale * (ab["a"].astype(jnp.float32) @ ab["b"].astype(jnp.float32))
        put(merged, names, (w.astype(jnp.float32) + delta).astype(w.dtype))
    return merged


def without_adapters(params: LoRAParams) -> LoRAParams:
    """The same base arrays with zero adapters: exactly the base model (GRPO's reference policy)."""
    return LoRAParams(params.base, jax.tree_util.tree_map(jnp.zeros_like, params.adapters))


def split(params: Any) -> tuple[Any, Any]:
    """``(trainable, frozen)``: the adapters and the base for LoRA parameters, else ``(params, None)``."""
    if isinstance(params, LoRAParams):
        return params.adapters, params.base
    return params, None


def join(trainable: Any, frozen: Any) -> Any:
    """Inverse of :func:`split`."""
    return trainable if frozen is None else LoRAParams(frozen, trainable)


def wrap(
    policy: PolicyModel, rank: int, alpha: float, targets: Sequence[str] = DEFAULT_TARGETS
) -> PolicyModel:
    """``policy`` taking :class:`LoRAParams`: every call merges the adapters into the kernels first
    (``rank x in x out`` extra work per adapted kernel and call, small next to a batch's matmuls).
    ``init(key)`` gives random base weights with fresh adapters; GRPO swaps in a checkpoint's base."""
    scale = float(alpha) / int(rank)

    def lifted(fn):
        if fn is None:
            return None

        @functools.wraps(fn)  # keeps fn's signature visible (the sampler checks decode's parameters)
        def call(params, *a, **k):
            return fn(merge(params, scale), *a, **k)

        return call

    def init(key: jax.Array) -> LoRAParams:
        k_base, k_ad = jax.random.split(key)
        base = policy.init(k_base)
        return LoRAParams(base, init_adapters(k_ad, base, rank, targets))

    return dataclasses.replace(
        policy,
        apply=lifted(policy.apply),
        init=init,
        decode=lifted(policy.decode),
        features=lifted(policy.features),
        unembed=lifted(policy.unembed),
    )
