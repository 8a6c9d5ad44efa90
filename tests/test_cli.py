"""The ``jaxrl`` console script: help lists, config building, errors before compilation, a tiny run."""

import json
import os
import time

import numpy as np
import pytest

from jaxrl import cli
from jaxrl.runtime import logs

# The runtime tests' tiny PPO (2 envs x 8 steps, 24 updates), so the compiled chunk program is shared.
TINY = [
    "--set",
    "num_envs=2",
    "rollout_steps=8",
    "total_timesteps=384",
    "hidden=8",
    "num_epochs=1",
    "num_minibatches=1",
    "--chunk-size",
    "4",
    "--no-compile-cache",
]


def test_help_lists_algorithms_environments_and_fields(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "ppo" in out and "dqn" in out and "CartPole-v1" in out and "probe:DelayedReward" in out
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert (
        "--sweep" in out and "total_timesteps" in out and "int = 524288" in out and "env steps in all" in out
    )
    with pytest.raises(SystemExit):
        cli.main(["train", "--algo", "dqn", "--help"])
    out = capsys.readouterr().out
    assert "config fields of dqn" in out and "target_update_period" in out


def test_envs_and_algos_commands(capsys):
    assert cli.main(["envs"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert "CartPole-v1" in names and "Pendulum-v1" in names
    assert cli.main(["algos"]) == 0
    assert "ppo" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "learning_rat=1e-3"], "Did you mean: learning_rate"),
        (["--set", "num_envs=two"], "PPOConfig.num_envs must be an integer, got 'two' (str)"),
        (["--env", "CartPol-v1"], "Did you mean: CartPole-v1"),
        (["--algo", "ppx"], "Unknown algorithm 'ppx'"),
        (["--sweep", "num_envs=4,8"], "static"),
        (["--set", "num_minibatches=3"], "divide evenly"),
        (["--seeds", "0"], "seeds must be >= 1"),
        (["--resume", "somewhere", "--set", "gamma=0.9"], "drop --set"),
    ],
)
def test_config_errors_fail_fast_without_writing_a_run(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    extra = ["--out", str(out)] if "--resume" not in argv else []
    t = time.perf_counter()
    assert cli.main(["train", *argv, *extra, "--no-compile-cache"]) == 2
    assert time.perf_counter() - t < 30  # nothing was compiled (a compile takes longer than the checks)
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_build_parses_overrides_sweeps_and_config_files(tmp_path):
    p = cli._parser()
    args = p.parse_args(
        ["train", "--set", "hidden=32,32", "learning_rate=1e-3", "--sweep", "gamma=0.9,0.99", "--seeds", "3"]
    )
    cfg, kw = cli._build(args)
    assert cfg.hidden == (32, 32) and cfg.learning_rate == 1e-3
    assert kw["sweep"] == {"gamma": [0.9, 0.99]} and kw["seeds"] == 3 and kw["key"] == 0
    assert os.path.basename(kw["out_dir"]).startswith("ppo-CartPole-v1-")
    spec = {
        "algo": "ppo",
        "config": {"num_envs": 8, "hidden": [16], "env": "Pendulum-v1"},
        "key": {"seed": 7},
        "seeds": 2,
        "sweep": {},
        "runtime": {"eval_episodes": 4},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec))
    cfg, kw = cli._build(p.parse_args(["train", "--config", str(path), "--set", "rollout_steps=64"]))
    assert (cfg.num_envs, cfg.hidden, cfg.env, cfg.rollout_steps) == (8, (16,), "Pendulum-v1", 64)
    assert kw["key"] == 7 and kw["seeds"] == 2 and kw["eval_episodes"] == 4


def test_tiny_train_end_to_end_then_rerun_from_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--eval-episodes", "4", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Compiling ppo on CartPole-v1" in captured.err and "100%" in captured.err  # progress on stderr
    text = captured.out
    assert "Done: ppo on CartPole-v1: 384 env steps" in text and "env steps/s" in text
    assert "Final greedy evaluation return:" in text and "(4 episodes)" in text
    assert f"Run directory: {out}" in text and "jaxrl train --config" in text
    for name in (
        "config.json",
        "metrics.csv",
        "metrics.jsonl",
        "eval.csv",
        "summary.json",
        "final_state.msgpack",
        "curve.png",
    ):
        assert (out / name).exists(), name
    assert (out / "checkpoints" / "24").is_dir()
    # --config re-runs the same run: identical metrics.
    again = tmp_path / "again"
    assert (
        cli.main(
            [
                "train",
                "--config",
                str(out / "config.json"),
                "--out",
                str(again),
                "-q",
                "--no-plot",
                "--no-compile-cache",
            ]
        )
        == 0
    )
    assert "Compiling" not in capsys.readouterr().err  # quiet
    a, b = logs.read_csv(str(out / "metrics.csv")), logs.read_csv(str(again / "metrics.csv"))
    for k in ("env_steps", "total_loss", "episode_return"):
        np.testing.assert_array_equal(a[k], b[k])  # NaN == NaN here
    # A finished run cannot be started again in the same directory.
    assert cli.main(["train", *TINY, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    # jaxrl plot overlays the two runs.
    assert cli.main(["plot", str(out), str(again), "-o", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").stat().st_size > 10_000


def test_absurd_learning_rate_exits_1_with_the_nan_message(tmp_path, capsys):
    rc = cli.main(
        [
            "train",
            *TINY,
            "--set",
            "learning_rate=1e38",
            "--eval-episodes",
            "0",
            "-q",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "Non-finite value" in err and "seed 0" in err and "learning_rate" in err


def test_summary_gives_one_line_per_swept_value():
    import types

    import numpy as np

    from jaxrl.algos import registry

    members = [
        {"member": 2 * i + s, "seed": s, "learning_rate": lr}
        for i, lr in enumerate((1e-3, 3e-3))
        for s in (0, 1)
    ]
    # member means: lr 1e-3 -> 10, 20; lr 3e-3 -> 100, 300
    returns = np.array([[9.0, 11.0], [19.0, 21.0], [100.0, 100.0], [300.0, 300.0]])
    result = types.SimpleNamespace(
        members=members,
        env_steps=64.0,
        wall_time=1.0,
        compile_time=0.1,
        train_time=0.5,
        steps_per_second=128.0,
        eval_time=0.1,
        eval_returns=returns,
        eval_metric=None,
        run_dir=None,
        state=None,
    )
    plan = types.SimpleNamespace(
        description="ppo on CartPole-v1, 4 members", algo=registry.algorithms()["ppo"], cfg=None
    )
    text = cli.summary_text(result, plan)
    assert "Final greedy evaluation return (2 episodes), per swept value:" in text
    assert "learning_rate=0.001: 15.00 +- 5.10 (2 seeds; their means 10.00 to 20.00)" in text
    assert "learning_rate=0.003: 200.00 +- 100.00 (2 seeds; their means 100.00 to 300.00)" in text
