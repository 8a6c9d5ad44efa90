"""Sampling throughput at language-model scale: jaxrl's jitted KV-cache sampler against
``transformers``' ``generate`` on the same random-initialised Llama checkpoint, same prompts.

The model is ``jaxrl.lm`` preset ``llama-30m`` (the TRL peer's throughput model: hidden 512, 4 layers,
8 heads / 4 KV heads, vocabulary 32,768, tied; 28.4M parameters), written once with
``jaxrl.lm.random_checkpoint`` and loaded by both frameworks from that directory. 64 prompts of 5-12
tokens (8 distinct x 8, left-padded for transformers as TRL does), exactly ``--new-tokens`` new
tokens each (no EOS stop: transformers gets ``min_new_tokens``, jaxrl an EOS id that never occurs).
Modes: ``plain`` (temperature 1), ``filtered`` (top-k 50, top-p 0.9), ``nucleus`` (top-p 0.9 alone),
``greedy``. One thread each (XLA CPU one thread, ``torch.set_num_threads(1)``).

Each framework runs in its own child process (so its peak RSS, ``ru_maxrss``, is its own: library,
weights, caches and sampling); the parent alternates the two over ``--rounds`` rounds and reports
per-mode median seconds per call, generated tokens/s and the per-round ratio. jaxrl's compile time
is reported apart (not in the per-call time).

    python benchmarks/lm_sampling_throughput.py [--rounds 2] [--repeats 3] [--modes plain,filtered]

Writes ``benchmarks/results/lm_sampling_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = {
    "plain": dict(top_k=0, top_p=1.0, greedy=False),
    "filtered": dict(top_k=50, top_p=0.9, greedy=False),
    "nucleus": dict(top_k=0, top_p=0.9, greedy=False),
    "greedy": dict(top_k=0, top_p=1.0, greedy=True),
}
WORDS = (
    "the a robot ate seven green apples while counting primes under bright moons and nine cats sang".split()
)


def prompts(n: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(0)
    distinct = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(8)]
    return [distinct[i % 8] for i in range(n)]


def child_jaxrl(args) -> dict:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from jaxrl import cpu

    cpu.set_cpu_threads(1)
    import jax
    import numpy as np

    import jaxrl.lm
    from jaxrl.networks import transformer

    model, params, tok = jaxrl.lm.from_pretrained(args.model, dtype="float32")
    ids, lengths = tok.encode_batch(prompts(args.batch), bos=False)
    out = {
        "framework": f"jaxrl (jax {jax.__version__})",
        "prompt_tokens": [int(lengths.min()), int(lengths.max())],
    }
    for mode in args.modes:
        m = MODES[mode]
        sample = transformer.make_sampler(
            model, max_new_tokens=args.new_tokens, eos_id=-1, pad_id=tok.pad_id, top_k=m["top_k"]
        )

        def call(key, sample=sample, m=m):
            return sample(params, ids, lengths, key, 1.0, m["top_p"], m["greedy"])

        t0 = time.perf_counter()
        jax.block_until_ready(call(jax.random.key(0)))
        compile_s = time.perf_counter() - t0
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            res = jax.block_until_ready(call(jax.random.key(r + 1)))
            times.append(time.perf_counter() - t0)
        n_new = int(np.asarray(res.completion_mask).sum())
        out[mode] = {"seconds": times, "compile_and_first_s": compile_s, "new_tokens": n_new}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def child_transformers(args) -> dict:
    import torch
    import transformers

    torch.set_num_threads(1)
    tok = transformers.AutoTokenizer.from_pretrained(args.model)
    tok.padding_side = "left"
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    enc = tok(prompts(args.batch), return_tensors="pt", padding=True, add_special_tokens=False)
    out = {"framework": f"transformers {transformers.__version__} / torch {torch.__version__}"}
    for mode in args.modes:
        m = MODES[mode]
        kw = dict(
            max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id
        )
        if m["greedy"]:
            kw.update(do_sample=False)
        else:
            kw.update(do_sample=True, temperature=1.0, top_k=m["top_k"] or None, top_p=m["top_p"])
        times = []
        for r in range(args.repeats + 1):  # the first call warms up
            torch.manual_seed(r)
            t0 = time.perf_counter()
            with torch.no_grad():
                res = model.generate(**enc, **kw)
            if r:
                times.append(time.perf_counter() - t0)
        out[mode] = {
            "seconds": times,
            "new_tokens": int((res.shape[1] - enc["input_ids"].shape[1]) * args.batch),
        }
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--modes", default="plain,filtered,nucleus,greedy")
    ap.add_argument("--model", default=None, help="checkpoint dir (default: a fresh random llama-30m)")
    ap.add_argument("--child", choices=("jaxrl", "transformers"), default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lm_sampling_throughput.json"))
    args = ap.parse_args()
    args.modes = args.modes.split(",")
    if args.child:
        res = (child_jaxrl if args.child == "jaxrl" else child_transformers)(args)
        print("RESULT " + json.dumps(res))
        return

    sys.path.insert(0, str(ROOT))
    tmp = tempfile.mkdtemp()
    if args.model is None:
        import jaxrl.lm

        args.model = str(jaxrl.lm.random_checkpoint(Path(tmp) / "llama-30m", "llama-30m", seed=0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rounds = []
    for r in range(args.rounds):
        row = {}
        for fw in ("jaxrl", "transformers") if r % 2 == 0 else ("transformers", "jaxrl"):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                fw,
                "--model",
                args.model,
                "--repeats",
                str(args.repeats),
            ]
            cmd += [
                "--batch",
                str(args.batch),
                "--new-tokens",
                str(args.new_tokens),
                "--modes",
                ",".join(args.modes),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                raise SystemExit(f"{fw} child failed:\n{proc.stderr[-3000:]}")
            row[fw] = json.loads(lines[-1][len("RESULT ") :])
        rounds.append(row)
        for mode in args.modes:
            j, t = (statistics.median(row[fw][mode]["seconds"]) for fw in ("jaxrl", "transformers"))
            tokens = args.batch * args.new_tokens
            print(
                f"round {r} {mode:9s} jaxrl {j:.3f} s ({tokens / j:.0f} tok/s)  transformers {t:.3f} s "
                f"({tokens / t:.0f} tok/s)  ratio {t / j:.2f}x"
            )
        print(
            f"round {r} peak RSS: jaxrl {row['jaxrl']['peak_rss_mb']:.0f} MB, "
            f"transformers {row['transformers']['peak_rss_mb']:.0f} MB; load {os.getloadavg()[0]:.1f}"
        )
    summary = {}
    for mode in args.modes:
        ratios = [
            statistics.median(rw["transformers"][mode]["seconds"])
            / statistics.median(rw["jaxrl"][mode]["seconds"])
            for rw in rounds
        ]
        summary[mode] = {"ratios": ratios, "median_ratio": statistics.median(ratios)}
    result = {
        "model": "llama-30m random (28.4M params, vocab 32768)",
        "batch": args.batch,
        "new_tokens": args.new_tokens,
        "load_avg_end": os.getloadavg(),
        "rounds": rounds,
        "summary": summary,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
