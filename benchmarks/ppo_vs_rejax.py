"""PPO CartPole-v1 (PureJaxRL settings): jaxrl against rejax 0.1.3, same work, one invocation.

    python benchmarks/ppo_vs_rejax.py            # full: 524,288 steps per seed, 1 seed and 16 vmapped seeds
    python benchmarks/ppo_vs_rejax.py --quick    # short check (65,536 steps, 1 and 4 seeds, 1 repeat)
    python benchmarks/ppo_vs_rejax.py --seeds 1 --cpu-threads 1 --rounds 4   # 4 paired rounds
    python benchmarks/ppo_vs_rejax.py --seeds 16 --jaxrl-devices 1 2   # + jaxrl's seeds over 2 CPU devices

Each framework runs in its own subprocess (rejax in its own virtual environment: it needs gymnax 0.0.9;
create it with ``python -m venv ../venv-rejax && ../venv-rejax/bin/pip install rejax==0.1.3 gymnax==0.0.9``
and point ``--rejax-python``/``$REJAX_PYTHON`` at its interpreter). Measured per framework and setting
(see ``_harness.py``): compile time, best and median run time over ``--repeats`` calls, env steps/s, and
the greedy evaluation return (32 episodes per seed) of the trained agents. The floor (env steps and network
work each alone, ``floor_ppo.py``) is run first for reference. Results: ``results/ppo_vs_rejax.json``
(``..._quick.json`` with ``--quick``) and a Markdown table on stdout.

Timings depend on the machine and on what else runs on it: compare rows from the same invocation only.
On a machine whose speed drifts, use ``--rounds R``: every framework and setting is run R times,
alternating, and each round's ratio (rejax's best / jaxrl's best) is reported with their median.

``--jaxrl-devices 1 2`` adds rows where jaxrl splits the seeds over two simulated CPU devices
(``jaxrl.parallel.train_population``): a population then uses every core, one device program per core.
Those rows use more of the machine than a one-thread rejax row; rejax's "XLA threads" rows (its own best
use of several cores) are the like-for-like comparison, and the table compares each jaxrl row with the
faster rejax row whatever its thread count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _harness as H  # noqa: E402
import floor_ppo  # noqa: E402

RUNNER = HERE / "_ppo_runner.py"


def run(
    python: str,
    framework: str,
    seeds: int,
    repeats: int,
    timesteps: int,
    threads: int,
    timeout: float,
    devices: int = 1,
) -> H.Timing | str:
    """One framework and setting in a subprocess: its timing, or a line saying why there is none (a run
    that fails or outlives ``timeout``, e.g. XLA's CPU runtime stuck; see RESULTS.md) so that the other
    rows of the invocation are still written."""
    import subprocess

    cmd = [python, str(RUNNER), "--framework", framework, "--seeds", str(seeds)]
    cmd += ["--repeats", str(repeats), "--timesteps", str(timesteps), "--cpu-threads", str(threads)]
    cmd += ["--devices", str(devices)] if devices > 1 else []
    what = f"{framework}, {seeds} seed(s), cpu threads {threads or 'XLA default'}"
    what += f", {devices} CPU devices" if devices > 1 else ""
    print(f"... {what}", flush=True)
    try:
        out = H.run_json_subprocess(cmd, timeout=timeout)
    except subprocess.TimeoutExpired:
        msg = f"{what}: no result, killed after {timeout:.0f} s"
    except RuntimeError as e:
        msg = f"{what}: failed: {str(e).splitlines()[0][-300:]}"
    else:
        return H.Timing.from_dict(out["timing"])
    print(f"    {msg}", flush=True)
    return msg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short check: 65,536 steps, 1 and 4 seeds, 1 repeat")
    p.add_argument("--timesteps", type=int, default=None, help="env steps per seed (default 524,288)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="settings to run (default: 1 16)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per setting (default 3)")
    p.add_argument("--rejax-python", default=H.default_rejax_python(), help="interpreter of rejax's venv")
    p.add_argument("--no-rejax", action="store_true")
    p.add_argument("--no-floor", action="store_true")
    p.add_argument(
        "--timeout", type=float, default=1200, help="seconds before a run is killed (default 1200)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every framework and setting this many times, alternating (default 1); the table "
        "then gives each round's jaxrl/rejax ratio and their median, which slow drifts of a shared "
        "machine's speed bias far less than one run per framework",
    )
    p.add_argument(
        "--jaxrl-devices",
        type=int,
        nargs="+",
        default=[1],
        help="for settings of several seeds, also run jaxrl with the seeds split over this many CPU "
        "devices (jaxrl.parallel.train_population; 2 uses both cores of a 2-core machine), e.g. "
        "--jaxrl-devices 1 2 (default: 1 only)",
    )
    H.add_cpu_threads_arg(p)
    args = p.parse_args()
    timesteps = args.timesteps or (65_536 if args.quick else 524_288)
    seeds = args.seeds or ([1, 4] if args.quick else [1, 16])
    repeats = args.repeats or (1 if args.quick else 3)
    with_rejax = not args.no_rejax
    if with_rejax and not (args.rejax_python and Path(args.rejax_python).exists()):
        sys.exit(
            "rejax's interpreter not found; create its venv (see this file's docstring) and pass "
            "--rejax-python PATH, or run with --no-rejax"
        )

    floor = None
    if not args.no_floor and timesteps == 524_288:
        print("... floor (env steps and network work alone)", flush=True)
        floor = floor_ppo.run_floor()
    # key of a row: (seeds, cpu threads, framework, CPU devices)
    per_key: dict[tuple[int, int, str, int], list[H.Timing]] = {}
    failed: list[str] = []
    for _ in range(args.rounds):  # whole rounds, frameworks alternating within each setting
        for n in seeds:
            for threads in args.cpu_threads:
                runs = [
                    ("jaxrl", sys.executable, d)
                    for d in args.jaxrl_devices
                    if d == 1 or (n > 1 and n % d == 0)
                ]
                runs += [("rejax", args.rejax_python, 1)] if with_rejax else []
                for fw, py, devices in runs:
                    r = run(py, fw, n, repeats, timesteps, threads, args.timeout, devices)
                    if isinstance(r, str):
                        failed.append(r)
                    else:
                        per_key.setdefault((n, threads, fw, devices), []).append(r)
    rows = [H.merge_rounds(ts) for ts in per_key.values()]

    def faster_peer(key: tuple[int, int, str, int]) -> tuple[int, int, str, int] | None:
        """The rejax setting of the same seeds with the best run time (whatever its thread count)."""
        peers = [k for k in per_key if k[2] == "rejax" and k[0] == key[0]]
        return min(peers, key=lambda k: min(t.run_best_s for t in per_key[k]), default=None)

    # each round's ratio (rejax's best / jaxrl's best in that round), before the table and the JSON
    for key, row in zip(per_key, rows, strict=True):
        peer = faster_peer(key) if key[2] == "jaxrl" else None
        if peer and len(per_key[key]) > 1 and len(per_key[key]) == len(per_key[peer]):
            row.extra["round_ratios"] = [
                b.run_best_s / a.run_best_s for a, b in zip(per_key[key], per_key[peer], strict=True)
            ]

    def speedup(r: H.Timing) -> str:
        """Against the faster rejax row of the same work; with several rounds also the rounds' ratios."""
        key = next(k for k, row in zip(per_key, rows, strict=True) if row is r)
        peer_key = faster_peer(key) if key[2] == "jaxrl" else None
        if peer_key is None:
            return ""
        peer = rows[list(per_key).index(peer_key)]
        text = f"{peer.run_best_s / r.run_best_s:.2f}x run, {peer.compile_s / r.compile_s:.2f}x compile (vs {peer.name})"
        ratios = r.extra.get("round_ratios")
        if ratios:
            text += (
                f"; rounds {'/'.join(f'{x:.2f}' for x in ratios)}, median {statistics.median(ratios):.2f}x"
            )
        return text

    cols = [
        (
            "greedy return (mean ± sd over seeds)",
            lambda r: f"{r.extra['eval_return_mean']:.1f} ± {r.extra['eval_return_std_over_seeds']:.1f}",
        ),
        ("jaxrl vs the faster rejax row", speedup),
    ]
    machine = H.machine_info()
    print()
    print(
        f"PPO CartPole-v1, {timesteps:,} steps per seed; {machine['cpu']}, {machine['cores']} cores, "
        f"load {machine['load_avg_1min']:.1f}, jax {machine['jax']}"
    )
    if floor:
        print(
            f"floor (shared/tools/floor_ppo_cartpole.py): env {floor['env_s']:.2f} s + network "
            f"{floor['network_s']:.2f} s = {floor['sum_s']:.2f} s per seed"
        )
    print(H.table(rows, cols))
    for msg in failed:
        print(f"no result: {msg}")
    if args.quick:
        stem = "ppo_vs_rejax_quick"
    elif timesteps == 524_288 and seeds == [1, 16]:
        stem = "ppo_vs_rejax"
    else:
        stem = f"ppo_vs_rejax_{timesteps}steps_{'-'.join(map(str, seeds))}seeds"
    path = H.write_json(
        stem,
        {
            "work": {
                "env": "CartPole-v1",
                "timesteps_per_seed": timesteps,
                "num_envs": 4,
                "num_steps": 128,
                "epochs": 4,
                "minibatches": 4,
                "lr": "2.5e-4 annealed",
                "network": "tanh 64x64 x2",
                "cpu_threads": args.cpu_threads,
                "jaxrl_devices": args.jaxrl_devices,
                "rounds": args.rounds,
            },
            "rows": [r.as_dict() for r in rows],
            "no_result": failed,
            "floor": floor,
            "machine": machine,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
