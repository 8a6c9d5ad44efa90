"""CPU seconds of one GRPO loss forward + backward on the 28.4M Llama checkpoint, per log-prob variant.

The decisions behind the GRPO update's log-prob path (``jaxrl/algos/grpo/logprobs.py``), measured on one
XLA thread: every position vs the completion window only, the head chunked and rematerialised
(``chunked_log_probs``) vs one float32 ``[B, T, V]`` block, and bfloat16 matmuls (head only, or every
parameter cast as ``compute_dtype="bfloat16"`` does, whose products run through
``jaxrl.networks.matmul``) against float32. Each line: the best of 3 calls
after compilation, the loss, and the largest gradient error relative to the first variant's.

    python -c "import sys; sys.path.insert(0, 'benchmarks'); import grpo_hf_vs_peers as b; b.make_checkpoint('CKPT')"
    python benchmarks/grpo_update_variants.py CKPT [VARIANT ...]

(the checkpoint of ``grpo_hf_vs_peers.py``; the bf16-head variants read its tied embedding table).

Workload: 64 rows (8 prompts x G = 8) of a 7-token prompt width + 32 completion tokens.
"""

import os
import sys
import time
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxrl import cpu  # noqa: E402

cpu.set_cpu_threads(1)
import jaxrl.lm  # noqa: E402
from jaxrl.algos.grpo import logprobs  # noqa: E402
from jaxrl.networks import transformer as T  # noqa: E402

B, W, N = 64, 7, 32


def main() -> None:
    policy, params, _ = jaxrl.lm.from_pretrained(sys.argv[1], dtype="float32")
    length = W + N
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(3, policy.vocab_size, size=(B, length)), jnp.int32)
    plen = jnp.asarray(rng.integers(5, W + 1, size=B), jnp.int32)
    pos = jnp.arange(length)[None]
    mask = ((pos >= plen[:, None]) & (pos < plen[:, None] + N)).astype(jnp.float32)
    adv = jnp.asarray(rng.normal(size=B), jnp.float32)
    bf16 = lambda p: jax.tree.map(lambda x: x.astype(jnp.bfloat16), p)  # noqa: E731

    def window(p, remat=True, head_bf16=False):
        if remat and not head_bf16:
            return logprobs.completion_log_probs(policy, p, tokens, mask, N)
        start = jnp.clip(jnp.argmax(mask > 0, axis=1), 1, length - N)
        idx = start[:, None] + jnp.arange(N)[None]
        h = jnp.take_along_axis(policy.features(p, tokens), (idx - 1)[..., None], axis=1)
        tgt = jnp.take_along_axis(tokens, idx, axis=1)
        if head_bf16:
            emb = p["params"]["embed_tokens"]["embedding"].astype(jnp.bfloat16)
            fn = lambda x: jnp.einsum(  # noqa: E731
                "bcd,vd->bcv", x.astype(jnp.bfloat16), emb, preferred_element_type=jnp.float32
            )
        else:
            fn = lambda x: policy.unembed(p, x).astype(jnp.float32)  # noqa: E731
        lp = T.chunked_log_probs(fn, h, tgt) if remat else T._target_log_probs(fn(h), tgt)
        return jnp.zeros((B, length), jnp.float32).at[jnp.arange(B)[:, None], idx].set(lp)

    variants = {
        "every_position_chunked": lambda p: T.token_log_probs(policy, p, tokens, 1.0),
        "window_chunked": window,
        "window_one_block": lambda p: window(p, remat=False),
        "window_chunked_bf16_head": lambda p: window(p, head_bf16=True),
        "window_one_block_bf16_head": lambda p: window(p, remat=False, head_bf16=True),
        "bf16_params_window_chunked": lambda p: window(bf16(p)),
        "bf16_params_window_one_block": lambda p: window(bf16(p), remat=False),
        "bf16_params_every_position": lambda p: T.token_log_probs(policy, bf16(p), tokens, 1.0),
    }
    ref = None
    for name in sys.argv[2:] or list(variants):
        fn = variants[name]
        f = jax.jit(
            jax.value_and_grad(lambda p, fn=fn: -jnp.sum(adv[:, None] * fn(p) * mask) / jnp.sum(mask))
        )
        jax.block_until_ready(f(params))
        times = []
        for _ in range(3):
            c = time.process_time()
            loss, g = jax.block_until_ready(f(params))
            times.append(time.process_time() - c)
        ref = ref or (loss, g)
        err = max(
            float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ref[1]), strict=True)
        )
        print(
            f"{name:30s} {min(times):6.2f} CPU s  loss {float(loss):.6f}  rel. grad error {err:.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
