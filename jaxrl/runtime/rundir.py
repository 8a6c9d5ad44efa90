"""The run directory's format: file names, config.json (the run's spec), the final state's msgpack.

Used by the driver, which writes run directories, and by anything that reads one (``jaxrl.load_state``,
the reward model starting from a GRPO run): it needs no algorithm registry, the caller gives the
:class:`~jaxrl.algos.base.Algorithm` whose run it reads.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos import base, stacking
from jaxrl.runtime import checkpoint, configs

CONFIG_JSON = "config.json"
SUMMARY_JSON = "summary.json"
FINAL_STATE = "final_state.msgpack"
CURVE_PNG = "curve.png"
CHECKPOINTS = "checkpoints"


def key_spec(key: Any) -> dict[str, Any]:
    """A JSON description of the run's key (an int seed, a typed key, or a raw uint32 key)."""
    if isinstance(key, int | np.integer):
        return {"seed": int(key)}
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()}
    return {"raw": np.asarray(key).tolist()}


def key_from_spec(spec: dict[str, Any]) -> jax.Array:
    if "seed" in spec:
        return jax.random.key(spec["seed"])
    if "data" in spec:
        return jax.random.wrap_key_data(np.asarray(spec["data"], np.uint32), impl=spec.get("impl"))
    return jnp.asarray(np.asarray(spec["raw"], np.uint32))


def write_json(path: str, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, written atomically (a temporary file, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_spec(run_dir: str) -> dict[str, Any]:
    """The run's config.json: algorithm name, config, key, seeds, sweep, runtime settings."""
    path = os.path.join(run_dir, CONFIG_JSON)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no {CONFIG_JSON}; is it a jaxrl run directory?")
    with open(path) as f:
        return json.load(f)


def save_state(path: str, state: Any) -> None:
    """The training state as flax msgpack (typed keys stored as key data), written atomically."""
    from flax import serialization

    leaves = checkpoint.to_host(state)
    data = serialization.msgpack_serialize({f"leaf_{i:05d}": x for i, x in enumerate(leaves)})
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(run_dir: str, algo: base.Algorithm) -> tuple[Any, Any]:
    """``(config, final_state)`` of a finished run of ``algo`` (the caller knows which algorithm wrote
    it: ``jaxrl.load_state(run_dir)`` looks it up by the name in config.json, the reward model asks GRPO).

    For a population the config is stacked (sweeps) and state leaves have a leading member axis.
    ``jaxrl.load_state(run_dir)`` finds the algorithm by the name in config.json.
    """
    from flax import serialization

    spec = read_spec(run_dir)
    if spec.get("algo") != algo.name:
        raise ValueError(f"{run_dir} holds a {spec.get('algo')} run, not {algo.name}")
    cfg = configs.from_dict(algo.config, spec["config"])
    seeds, sweep = spec.get("seeds", 1), spec.get("sweep") or {}
    member_cfgs, points = configs.sweep_configs(cfg, sweep)
    n = seeds * len(points)
    key = key_from_spec(spec["key"])  # the template's keys have the run's implementation (and shape)
    if n > 1:
        cfg_arg = stacking.stack_configs([c for c in member_cfgs for _ in range(seeds)]) if sweep else cfg
        template = jax.eval_shape(
            jax.vmap(algo.init, in_axes=(0 if sweep else None, 0)), cfg_arg, jax.random.split(key, n)
        )
    else:
        cfg_arg = cfg
        if algo.state_template is not None:
            template = algo.state_template(cfg, key)
        else:
            template = jax.eval_shape(algo.init, cfg, key)
    with open(os.path.join(run_dir, FINAL_STATE), "rb") as f:
        raw = serialization.msgpack_restore(f.read())
    leaves = [np.asarray(raw[f"leaf_{i:05d}"]) for i in range(len(raw))]
    want = checkpoint.to_host_shapes(template)
    if [[list(x.shape), str(x.dtype)] for x in leaves] != want:
        raise checkpoint.CheckpointError(
            f"{run_dir}/{FINAL_STATE} does not match the state of {spec['algo']}"
        )
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return cfg_arg, checkpoint.from_host(
        leaves, template, key_impl=jax.random.key_impl(key) if typed else None
    )
