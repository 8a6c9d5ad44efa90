"""Throughput and memory vs population size, and the accelerator headline runs (issue: Scale).

    python benchmarks/scale_population.py                      # CPU sweep: PPO CartPole, 1..64 members
    python benchmarks/scale_population.py --preset gpu         # GPU: headline runs + sweep to 4096
    python benchmarks/scale_population.py --sizes 1 8 --timesteps 65536   # a quick look
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/scale_population.py  # 2 CPU devices

For each population size N it trains N PPO CartPole-v1 members (PureJaxRL settings, --timesteps steps
each) with ``jaxrl.parallel.train_population`` over all local devices and records compile time, run time,
total env steps/s, and XLA's memory estimate for the compiled program (arguments + outputs + temporaries).
It then does the same for one agent with growing ``num_envs`` (``--num-envs``; same steps per env, so the
work grows with num_envs), the other axis along which a single PPO run scales.
Results: ``benchmarks/results/scale_<device>.json`` and a PNG of steps/s and memory vs N.
No timing is asserted anywhere; figures go to benchmarks/RESULTS.md by hand with the device named.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import jaxrl
from jaxrl import parallel

RESULTS = Path(__file__).with_name("results")


def _mem_bytes(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def time_population(cfg, n: int, seed: int = 0) -> dict:
    """Compile and run ``train_population`` for ``n`` members; the timed run uses fresh keys."""
    mesh = parallel.make_mesh(parallel.POP_AXIS)
    n_dev = mesh.shape[parallel.POP_AXIS]
    total = -(-n // n_dev) * n_dev
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    row = NamedSharding(mesh, P(parallel.POP_AXIS))
    fn = jax.jit(jax.vmap(jaxrl.train, in_axes=(None, 0)), out_shardings=row)
    keys = jax.device_put(jax.random.split(jax.random.key(seed), total), row)
    t0 = time.perf_counter()
    compiled = fn.lower(cfg, keys).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(cfg, keys))  # warm-up run
    keys2 = jax.device_put(jax.random.split(jax.random.key(seed + 1), total), row)
    t0 = time.perf_counter()
    states, metrics = jax.block_until_ready(compiled(cfg, keys2))
    run_s = time.perf_counter() - t0
    final = jnp.asarray(metrics.episode_return)[:n, -1]
    steps = n * cfg.num_iterations * cfg.env_steps_per_iteration
    return {
        "population": n,
        "slots": total,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 3),
        "env_steps_per_s": round(steps / run_s, 1),
        "memory_bytes": _mem_bytes(compiled),
        "final_return_mean": float(jnp.nanmean(final)),
        "final_return_min": float(jnp.nanmin(final)),
    }


def time_num_envs(num_envs: int, steps_per_env: int) -> dict:
    """One PPO CartPole agent with ``num_envs`` environments (minibatch size grows with it)."""
    cfg = jaxrl.PPOConfig(num_envs=num_envs, total_timesteps=num_envs * steps_per_env)
    r = time_population(cfg, 1)
    r["num_envs"] = num_envs
    return r


def headline_runs(quick: bool) -> list[dict]:
    """The issue's accelerator runs: PPO CartPole x2048 seeds, PPO Breakout-MinAtar (1 and 256
    agents), DQN Breakout-MinAtar. Each is timed end to end (compile separately)."""
    out = []
    specs = [
        ("ppo_cartpole_2048_seeds", jaxrl.PPOConfig(), 2048),
        ("ppo_breakout_minatar_1M_x1", _minatar_ppo(1_000_000 if not quick else 131_072), 1),
        ("ppo_breakout_minatar_1M_x256", _minatar_ppo(1_000_000 if not quick else 131_072), 256),
    ]
    dqn = _minatar_dqn(1_000_000 if not quick else 100_000)
    if dqn is not None:
        specs.append(("dqn_breakout_minatar_1M_x1", dqn, 1))
    for name, cfg, n in specs:
        r = time_population(cfg, n)
        r["name"] = name
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


def _minatar_ppo(steps: int):
    # rejax's Breakout-MinAtar PPO shape: 64 envs x 128 steps, 8 minibatches, 4 epochs, relu 64x64.
    return jaxrl.PPOConfig(
        env="Breakout-MinAtar",
        total_timesteps=steps,
        num_envs=64,
        rollout_steps=128,
        num_minibatches=8,
        num_epochs=4,
        activation="relu",
        learning_rate=5e-4,
    )


def _minatar_dqn(steps: int):
    if not hasattr(jaxrl, "DQNConfig"):
        return None
    return jaxrl.DQNConfig(env="Breakout-MinAtar", total_timesteps=steps)


def plot(rows: list[dict], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pop = [r for r in rows if "name" not in r and "num_envs" not in r]
    env = [r for r in rows if "num_envs" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))

    def mib(rs):
        return [r["memory_bytes"] / 2**20 if r["memory_bytes"] else float("nan") for r in rs]

    ax[0].loglog(
        [r["population"] for r in pop],
        [r["env_steps_per_s"] for r in pop],
        "o-",
        label="population size (members x 4 envs)",
    )
    ax[1].loglog([r["population"] for r in pop], mib(pop), "o-", label="population size (members x 4 envs)")
    if env:
        ax[0].loglog(
            [r["num_envs"] for r in env],
            [r["env_steps_per_s"] for r in env],
            "s--",
            label="num_envs of one agent",
        )
        ax[1].loglog([r["num_envs"] for r in env], mib(env), "s--", label="num_envs of one agent")
    ax[0].set(
        xlabel="members, or envs of one agent",
        ylabel="env steps / s (all members)",
        title=f"PPO CartPole throughput ({device}, {len(jax.devices())} device(s))",
    )
    ax[1].set(xlabel="members, or envs of one agent", ylabel="XLA memory estimate (MiB)", title="memory")
    for a in ax:
        a.legend(fontsize=8)
    for a in ax:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--preset", choices=["cpu", "gpu"], default="gpu" if jax.default_backend() == "gpu" else "cpu"
    )
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--timesteps", type=int, default=None, help="env steps per member in the sweep")
    ap.add_argument("--quick", action="store_true", help="shorter headline runs")
    ap.add_argument(
        "--num-envs",
        type=int,
        nargs="*",
        default=None,
        help="num_envs of one agent (default: 4 16 64 on CPU, up to 16384 on GPU)",
    )
    args = ap.parse_args()
    device = jax.devices()[0].device_kind
    if args.sizes is None:
        args.sizes = [1, 4, 16, 64] if args.preset == "cpu" else [1, 16, 64, 256, 1024, 2048, 4096]
    cfg = jaxrl.PPOConfig(total_timesteps=args.timesteps or (131_072 if args.preset == "cpu" else 524_288))
    rows = []
    for n in args.sizes:
        r = time_population(cfg, n)
        print(json.dumps(r), flush=True)
        rows.append(r)
    steps_per_env = cfg.total_timesteps // 4  # as many steps per env as the population members take
    for e in (
        args.num_envs
        if args.num_envs is not None
        else ([4, 16, 64] if args.preset == "cpu" else [4, 64, 1024, 4096, 16384])
    ):
        r = time_num_envs(e, steps_per_env)
        print(json.dumps(r), flush=True)
        rows.append(r)
    if args.preset == "gpu":
        rows += headline_runs(args.quick)
    RESULTS.mkdir(exist_ok=True)
    tag = device.replace(" ", "_").lower() + (f"_x{len(jax.devices())}" if len(jax.devices()) > 1 else "")
    meta = {
        "device": device,
        "devices": len(jax.devices()),
        "jax": jax.__version__,
        "host": platform.node(),
        "timesteps_per_member": cfg.total_timesteps,
    }
    (RESULTS / f"scale_{tag}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, RESULTS / f"scale_{tag}.png", device)
    print(f"wrote {RESULTS / f'scale_{tag}.json'} and .png")


if __name__ == "__main__":
    main()
