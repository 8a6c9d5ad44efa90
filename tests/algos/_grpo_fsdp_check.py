"""Run in a subprocess with 4 simulated CPU devices (XLA_FLAGS set by the caller): one GRPO update on
1 device and FSDP-sharded over 4 must agree; prints a JSON line of what it found."""

import json
import sys

import jax
import numpy as np

import jaxrl
from jaxrl.algos.grpo import sharding, trainer

cfg = jaxrl.GRPOConfig(
    model="nano",
    warmup_steps=0,
    num_iterations=1,
    prompts_per_iteration=2,
    group_size=4,
    oversample=1,
    inner_steps=2,
    beta=0.1,
    lr_schedule="constant",
    learning_rate=1e-3,
)
s = trainer.setup(cfg)
state = trainer.init(cfg, jax.random.key(0))
rng = np.random.default_rng(0)
tokens = rng.integers(3, 15, size=(8, 12)).astype(np.int32)
mask = np.zeros((8, 12), np.float32)
mask[:, 6:] = 1.0
logp_old = np.asarray(s.programs.ref_log_probs(state.params, tokens, 1.0)) - 0.05 * rng.random(
    (8, 12)
).astype(np.float32)
logp_ref = logp_old + 0.1
rewards = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]], np.float32)
hp = trainer.HParams.of(cfg)

one = s.programs.update(
    hp, state.params, None, state.opt_state, tokens, logp_old, mask, rewards, logp_ref, np.float32(1.0)
)
mesh = sharding.make_mesh(4)
params = sharding.shard_params(state.params, mesh)
opt = sharding.shard_params(state.opt_state, mesh)
batch = sharding.shard_batch((tokens, logp_old, mask, logp_ref), mesh)
four = s.programs.update(
    hp, params, None, opt, batch[0], batch[1], batch[2], rewards, batch[3], np.float32(1.0)
)

diff = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four), strict=True)
)
moved = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(state.params), strict=True)
)
kernel = four[0]["params"]["block_0"]["fc"]["kernel"]
json.dump(
    {
        "devices": len(jax.devices()),
        "max_diff": diff,
        "moved": moved,
        "kernel_shards": len(kernel.sharding.device_set),
        "kernel_shard_shape": list(kernel.addressable_shards[0].data.shape),
    },
    sys.stdout,
)

if "full" not in sys.argv:  # the update alone
    sys.exit(0)

# the whole path through GRPOConfig(fsdp_devices=4): a sharded warm-up and a GRPO iteration
cfg1 = cfg.replace(warmup_steps=10, warmup_batch=8, warmup_demos=32, num_iterations=2)
cfg4 = cfg1.replace(fsdp_devices=4)
jaxrl.algos.grpo.validate(cfg4)
s1, s4 = trainer.init(cfg1, jax.random.key(1)), trainer.init(cfg4, jax.random.key(1))
n1, m1 = trainer.train_step(cfg1, s1)
n4, m4 = trainer.train_step(cfg4, s4)
run_diff = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(n1.params), jax.tree.leaves(n4.params), strict=True)
)
warm_moved = max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(state.params), strict=True)
)
k4 = n4.params["params"]["block_0"]["fc"]["kernel"]
print()
json.dump(
    {
        "devices": len(jax.devices()),
        "max_diff": diff,
        "moved": moved,
        "kernel_shards": len(kernel.sharding.device_set),
        "kernel_shard_shape": list(kernel.addressable_shards[0].data.shape),
        "run_diff": run_diff,
        "warm_moved": warm_moved,
        "run_kernel_shards": len(k4.sharding.device_set),
        "rewards": [float(m1.reward), float(m4.reward)],
    },
    sys.stdout,
)
