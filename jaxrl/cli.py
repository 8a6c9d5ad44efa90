"""The ``jaxrl`` console script: parses arguments, builds a config, calls the runtime.

jaxrl train                                   # PPO on CartPole-v1, default config
jaxrl train --algo dqn --env CartPole-v1 --set learning_rate=1e-3 hidden=64,64
jaxrl train --seeds 8 --sweep learning_rate=1e-4,3e-4
jaxrl train --config runs/<run>/config.json   # re-run a run
jaxrl train --resume runs/<run>               # continue after a crash / Ctrl-C
jaxrl envs                                    # environment names
jaxrl plot runs/a runs/b -o curves.png        # overlay learning curves
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from jaxrl.runtime.settings import DEFAULTS

DEFAULT_ALGO = "ppo"


# -------------------------------------------------------------------------------------- HELP
def _algorithms() -> dict[str, Any]:
    from jaxrl.algos import registry

    return registry.algorithms()


def _env_names() -> list[str]:
    from jaxrl import envs

    return envs.available_names()


def _wrap(items: Sequence[str], indent: str = "  ") -> str:
    return textwrap.fill(", ".join(items), width=100, initial_indent=indent, subsequent_indent=indent)


def _algorithms_help() -> str:
    algos = _algorithms()
    return "\n".join(f"  {name:<14} {a.description}" for name, a in sorted(algos.items()))


def _fields_help(algo_name: str) -> str:
    from jaxrl.runtime import configs

    algo = _algorithms()[algo_name]
    lines = []
    for f in configs.fields(algo.config):
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        head = f"  {f.name:<22} {configs.type_name(f.type) + ' = ' + str(default):<28}"
        doc = f.doc + (" [tunable: --sweep]" if not f.static else "")
        text = textwrap.fill(doc, width=110, initial_indent=head + " ", subsequent_indent=" " * 54)
        lines.append(text or head.rstrip())
    return "\n".join(lines)


def _envs_help() -> str:
    from jaxrl.envs import registry

    return "\n".join([_wrap(_env_names()), *("  " + p for p in registry.name_patterns())])


# ------------------------------------------------------------------------------------ PARSER
def _parser(algo_for_help: str = DEFAULT_ALGO, *, full_help: bool = False) -> argparse.ArgumentParser:
    epilog_main = "Run `jaxrl train --help` for training options and config fields."
    if full_help:
        epilog_main = (
            f"algorithms (--algo):\n{_algorithms_help()}\n\nenvironments (--env):\n{_envs_help()}\n\n"
            + epilog_main
        )
    p = argparse.ArgumentParser(
        prog="jaxrl",
        description="JAX reinforcement learning: train, resume, list environments, plot runs.",
        epilog=epilog_main,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="{train,envs,algos,plot,export}")

    train_epilog = ""
    if full_help:
        train_epilog = (
            f"algorithms (--algo):\n{_algorithms_help()}\n\n"
            f"environments (--env):\n{_envs_help()}\n\n"
            f"config fields of {algo_for_help} (--set FIELD=VALUE; `--algo NAME --help` for another):\n"
            f"{_fields_help(algo_for_help)}\n\n"
            "examples:\n"
            "  jaxrl train                                  # PPO on CartPole-v1 (about a minute on 2 CPU cores)\n"
            "  jaxrl train --env Pendulum-v1 --set total_timesteps=1_000_000 num_envs=16\n"
            "  jaxrl train --seeds 8 --sweep learning_rate=1e-4,3e-4,1e-3\n"
            "  jaxrl train --config runs/RUN/config.json    # re-run\n"
            "  jaxrl train --resume runs/RUN                # continue after a crash or Ctrl-C"
        )
    t = sub.add_parser(
        "train",
        help="train an agent (default: PPO on CartPole-v1)",
        description="Train an agent; writes a run directory with config, metrics, checkpoints, params, curve.",
        epilog=train_epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--algo", default=None, help=f"algorithm (default {DEFAULT_ALGO}; see the list below)")
    t.add_argument("--env", default=None, help="environment name (default: the algorithm's)")
    t.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="FIELD=VALUE",
        help="override config fields, e.g. --set learning_rate=3e-4 hidden=64,64 env_params.max_steps_in_episode=200",
    )
    t.add_argument("--seeds", type=int, default=None, help="train N seeds at once (vmapped); default 1")
    t.add_argument(
        "--sweep",
        nargs="+",
        action="extend",
        default=[],
        metavar="FIELD=V1,V2",
        help="train every value of a tunable field at once (vmapped; several --sweep: the grid)",
    )
    t.add_argument("--seed", type=int, default=None, help="the run's PRNG seed (default 0)")
    t.add_argument("--config", default=None, metavar="CONFIG_JSON", help="start from a run's config.json")
    t.add_argument(
        "--resume", default=None, metavar="RUN_DIR", help="continue a run from its newest checkpoint"
    )
    t.add_argument(
        "--out", default=None, metavar="RUN_DIR", help="run directory (default runs/<algo>-<env>-<time>)"
    )
    t.add_argument("--quiet", "-q", action="store_true", help="no progress bar; print only the final summary")
    t.add_argument(
        "--chunk-size", type=int, default=None, help="updates per jitted chunk (default: ~1 s chunks)"
    )
    t.add_argument(
        "--log-every", type=int, default=None, help="log every k-th update (default: <= 2000 rows)"
    )
    t.add_argument(
        "--eval-every", type=int, default=None, help="greedy evaluation every k updates (0: final only)"
    )
    t.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help=f"episodes per evaluation (default {DEFAULTS.eval_episodes}; 0: none)",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help=f"checkpoint every k chunks (default {DEFAULTS.checkpoint_every}; 0: never)",
    )
    t.add_argument(
        "--keep-checkpoints",
        type=int,
        default=None,
        help=f"checkpoints kept (default {DEFAULTS.keep_checkpoints})",
    )
    t.add_argument(
        "--tensorboard", action="store_true", help="also log to RUN_DIR/tensorboard (jaxrl[tensorboard])"
    )
    t.add_argument(
        "--wandb", action="store_true", help="also log to Weights & Biases, offline unless WANDB_MODE is set"
    )
    t.add_argument("--no-plot", action="store_true", help="do not write curve.png")
    t.add_argument(
        "--cpu-threads",
        type=int,
        default=None,
        metavar="N",
        help="threads of XLA's CPU runtime (default: $JAXRL_CPU_THREADS or 1, faster for RL's small "
        "kernels; 0: XLA's default, one per CPU)",
    )
    t.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="N",
        help="split the CPU into N XLA devices so that a population (--seeds/--sweep) runs one share of "
        "its members per device, i.e. per core (default: $JAXRL_CPU_DEVICES or 1; 0: one per CPU); a "
        "single run gains nothing",
    )
    t.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use the persistent XLA compilation cache (JAXRL_CACHE_DIR, default ~/.cache/jaxrl/xla)",
    )

    sub.add_parser("envs", help="list environment names")
    sub.add_parser("algos", help="list algorithms")
    pl = sub.add_parser("plot", help="overlay the learning curves of run directories")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    pl.add_argument("-o", "--output", default="curves.png", help="PNG to write (default curves.png)")
    pl.add_argument("--metric", default="episode_return", help="metrics.csv column (default episode_return)")
    pl.add_argument("--title", default=None)
    ex = sub.add_parser(
        "export",
        help="write a GRPO run's policy (model=hf:<dir>) as a Hugging Face checkpoint",
        description="Write the final policy of RUN_DIR (a GRPO run of --set model=hf:<dir>) to OUT_DIR in "
        "the Hugging Face format (config.json, model.safetensors, tokenizer): transformers and vLLM load it.",
    )
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("out_dir", metavar="OUT_DIR")
    ex.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default=None, help="stored dtype (default: as trained)"
    )
    return p


class UsageError(Exception):
    """A mistake in the command line or config: printed without a traceback, exit status 2."""


# ------------------------------------------------------------------------------------ TRAIN
def _build(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``(config, run keyword arguments)`` from the command line; nothing compiled."""
    from jaxrl.algos import registry
    from jaxrl.runtime import configs, driver, rundir

    if args.resume:
        clash = [
            flag
            for flag, v in (
                ("--algo", args.algo),
                ("--env", args.env),
                ("--set", args.overrides),
                ("--sweep", args.sweep),
                ("--seeds", args.seeds),
                ("--seed", args.seed),
                ("--config", args.config),
                ("--out", args.out),
            )
            if v
        ]
        if clash:
            raise UsageError(
                f"--resume continues a run with the settings in its config.json; drop {', '.join(clash)} "
                f"(to change settings, start a new run with --config {args.resume}/config.json)"
            )
        return None, {"resume_dir": args.resume}

    spec: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read --config {args.config}: {e}") from None
        if args.algo and args.algo != spec.get("algo"):
            raise UsageError(f"--algo {args.algo} differs from the config's algorithm {spec.get('algo')!r}")
    algo_name = args.algo or spec.get("algo") or DEFAULT_ALGO
    algo = registry.get(algo_name)
    cfg = configs.from_dict(algo.config, spec["config"]) if spec else algo.config()
    if args.env:
        if not hasattr(cfg, "env"):
            raise UsageError(
                f"{algo_name} has no environment (it trains on a task); use --set to configure it"
            )
        cfg = cfg.replace(env=args.env, env_params=None)
    cfg = configs.apply_overrides(cfg, args.overrides)
    sweep = dict(spec.get("sweep") or {})
    sweep.update(configs.parse_sweep(cfg, args.sweep))
    rt = spec.get("runtime", {})
    seed = args.seed if args.seed is not None else spec.get("key", {}).get("seed", 0)
    if spec.get("key") and "seed" not in spec["key"] and args.seed is None:
        seed = rundir.key_from_spec(spec["key"])
    kw = {
        "key": seed,
        "seeds": args.seeds if args.seeds is not None else spec.get("seeds", 1),
        "sweep": sweep,
        "chunk_size": args.chunk_size if args.chunk_size is not None else rt.get("chunk_size"),
        "log_every": args.log_every,
        "eval_every": args.eval_every if args.eval_every is not None else rt.get("eval_every"),
        "eval_episodes": _first(args.eval_episodes, rt.get("eval_episodes"), DEFAULTS.eval_episodes),
        "checkpoint_every": _first(
            args.checkpoint_every, rt.get("checkpoint_every"), DEFAULTS.checkpoint_every
        ),
        "keep_checkpoints": _first(
            args.keep_checkpoints, rt.get("keep_checkpoints"), DEFAULTS.keep_checkpoints
        ),
    }
    kw["out_dir"] = args.out or driver.default_run_dir(algo_name, cfg)
    return cfg, kw


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _enable_compile_cache() -> None:
    import jax

    path = os.environ.get("JAXRL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxrl", "xla"
    )
    try:
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
    except Exception:  # a read-only home: compile every time
        pass


def cmd_train(args: argparse.Namespace) -> int:
    from jaxrl import cpu, sandbox
    from jaxrl.algos import checks
    from jaxrl.runtime import checkpoint, driver

    try:  # before anything creates JAX's backends: XLA sizes its CPU thread pool then
        threads = args.cpu_threads if args.cpu_threads is not None else cpu.threads_from_env(1)
        if threads < 0:
            raise UsageError(f"--cpu-threads must be >= 0 (0: XLA's default), got {threads}")
        devices = args.cpu_devices if args.cpu_devices is not None else cpu.devices_from_env(1)
        if devices < 0:
            raise UsageError(f"--cpu-devices must be >= 0 (0: one per CPU), got {devices}")
        # cli.main called in a process whose JAX backends exist already: keep its pool and devices unless
        # a flag asks
        if args.cpu_devices is not None or (devices != 1 and not cpu.backends_initialized()):
            cpu.set_cpu_devices(devices)
        if args.cpu_threads is not None or not cpu.backends_initialized():
            cpu.set_cpu_threads(threads)
    except (ValueError, RuntimeError, UsageError) as e:
        print(f"jaxrl train: error: {e}", file=sys.stderr)
        return 2

    try:
        cfg, kw = _build(args)
        resume_dir = kw.pop("resume_dir", None)
        if resume_dir:
            plan = driver.prepare_resume(resume_dir)
        else:
            plan = driver.prepare(cfg, kw.pop("key"), kw.pop("out_dir"), **kw)
    except (
        ValueError,
        TypeError,
        FileExistsError,
        FileNotFoundError,
        checkpoint.CheckpointError,
        sandbox.SandboxUnavailable,  # a code-scored task on a machine without the sandbox
        UsageError,
    ) as e:
        print(f"jaxrl train: error: {e}", file=sys.stderr)
        return 2

    if not args.no_compile_cache:
        _enable_compile_cache()
    try:
        result = driver.execute(
            plan,
            progress=not args.quiet,
            tensorboard=args.tensorboard,
            wandb=args.wandb,
            plot=not args.no_plot,
        )
    except checkpoint.CheckpointError as e:
        print(f"jaxrl train: error: {e}", file=sys.stderr)
        return 2
    except driver.NonFiniteError as e:
        print(f"jaxrl train: stopped: {e}", file=sys.stderr)
        return 1
    except checks.UserFunctionError as e:  # e.g. a GRPO reward function that raised
        print(f"jaxrl train: stopped: {e}", file=sys.stderr)
        return 1
    except sandbox.SandboxUnavailable as e:  # a code-scored task on a machine without the sandbox
        print(f"jaxrl train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.quiet:
            print(
                f"jaxrl train: interrupted; continue with: jaxrl train --resume {plan.run_dir}",
                file=sys.stderr,
            )
        return 130
    print(summary_text(result, plan))
    return 0


def _per_point(what: str, values: Any, members: list, swept: list, digits: int, note: str = "") -> list[str]:
    """``values [M, k]`` -> one line (seeds pooled), or with a sweep one line per swept value."""
    groups: dict[tuple, list[int]] = {}
    for m, member in enumerate(members):
        groups.setdefault(tuple(member[k] for k in swept), []).append(m)

    def stats(rows: list[int]) -> str:
        v = values[rows]
        text = f"{v.mean():.{digits}f} +- {v.std():.{digits}f}"
        if len(rows) > 1:
            per = v.mean(axis=-1)
            text += f" ({len(rows)} seeds; their means {per.min():.{digits}f} to {per.max():.{digits}f})"
        return text

    if not swept:
        return [f"{what}: {stats(list(range(len(members))))}{note}"]
    lines = [f"{what}{note}, per swept value:"]
    for point, rows in groups.items():
        head = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in zip(swept, point, strict=True)
        )
        lines.append(f"  {head}: {stats(rows)}")
    return lines


def summary_text(result: Any, plan: Any) -> str:
    """The final report of ``jaxrl train``."""
    import numpy as np

    from jaxrl.runtime.progress import fmt_count

    n = len(result.members)
    pop = f" x {n} members" if n > 1 else ""
    steps = plan.algo.presentation.steps_short
    lines = [
        f"Done: {plan.description}: {result.env_steps:,.0f} {steps}{pop} in {result.wall_time:.1f} s "
        f"(compile {result.compile_time:.1f} s, training {result.train_time:.1f} s = "
        f"{fmt_count(result.steps_per_second)} {steps}/s, evaluation {result.eval_time:.1f} s)"
    ]
    swept = [k for k in result.members[0] if k not in ("member", "seed")]
    if result.eval_metric:
        ((_, values),) = result.eval_metric.items()
        what = plan.algo.presentation.eval_label
        lines += _per_point(
            f"Final {what}", np.asarray(values, np.float64)[:, None], result.members, swept, 3
        )
    if result.eval_returns is not None:
        e = np.asarray(result.eval_returns, np.float64)
        lines += _per_point(
            "Final greedy evaluation return", e, result.members, swept, 2, f" ({e.shape[-1]} episodes)"
        )
    report = getattr(plan.algo, "report", None)
    if report is not None and n == 1:
        lines.append(str(report(plan.cfg, result.state)).rstrip())
    if result.run_dir:
        rel = os.path.relpath(result.run_dir)
        rel = result.run_dir if rel.startswith("..") else rel
        lines.append(f"Run directory: {rel}")
        files = [
            f
            for f in ("curve.png", "metrics.csv", "eval.csv", "final_state.msgpack")
            if os.path.exists(os.path.join(result.run_dir, f))
        ]
        lines.append(
            f"  {', '.join(files)}; re-run with: jaxrl train --config {os.path.join(rel, 'config.json')}"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- OTHER COMMANDS
def cmd_envs(args: argparse.Namespace) -> int:
    from jaxrl.envs import registry

    for name in _env_names() + registry.name_patterns():
        print(name)
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    print(_algorithms_help())
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from jaxrl.runtime import plots

    try:
        out = plots.plot_runs(args.run_dirs, args.output, metric=args.metric, title=args.title)
    except (FileNotFoundError, ValueError) as e:
        print(f"jaxrl plot: error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from jaxrl.runtime import export

    try:
        out = export.export_run(args.run_dir, args.out_dir, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as e:
        print(f"jaxrl export: error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {out}")
    return 0


# -------------------------------------------------------------------------------------- MAIN
def _wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def _help_algo(argv: Sequence[str]) -> str:
    """The ``--algo`` of a ``--help`` command line (its fields are listed), if valid."""
    argv = list(argv)
    for i, a in enumerate(argv):
        name = (
            a.split("=", 1)[1]
            if a.startswith("--algo=")
            else (argv[i + 1] if a == "--algo" and i + 1 < len(argv) else None)
        )
        if name and name in _algorithms():
            return name
    return DEFAULT_ALGO


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    full = _wants_help(argv)
    parser = _parser(_help_algo(argv) if full else DEFAULT_ALGO, full_help=full)
    args = parser.parse_args(argv)
    if args.command is None:
        _parser(full_help=True).print_help()
        return 0
    commands = {
        "train": cmd_train,
        "envs": cmd_envs,
        "algos": cmd_algos,
        "plot": cmd_plot,
        "export": cmd_export,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
