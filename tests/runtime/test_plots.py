"""Learning curves: seeds as a band (mean, min, max), sweeps as separate curves, PNG written."""

import json

import numpy as np
import pytest

from jaxrl.runtime import plots


def _fake_run(path, sweep_values=(None,), seeds=2):
    path.mkdir()
    swept = sweep_values != (None,)
    spec = {
        "algo": "ppo",
        "config": {"env": "CartPole-v1"},
        "sweep": {"learning_rate": list(sweep_values)} if swept else {},
    }
    (path / "config.json").write_text(json.dumps(spec))
    head = "iteration,member,seed," + ("learning_rate," if swept else "") + "episode_return,env_steps\n"
    rows, ev = [], []
    m = 0
    for v in sweep_values:
        for s in range(seeds):
            for t in (1, 2, 3):
                # return = 10 t + 4 s (+ 100 for the second swept value)
                r = 10 * t + 4 * s + (100 if swept and v == sweep_values[1] else 0)
                rows.append(f"{t},{m},{s}," + (f"{v}," if swept else "") + f"{r},{8 * t}")
            ev.append(f"3,{m},{s}," + (f"{v}," if swept else "") + "24,50,0,50,50,4")
            m += 1
    (path / "metrics.csv").write_text(head + "\n".join(rows) + "\n")
    eh = (
        "iteration,member,seed,"
        + ("learning_rate," if swept else "")
        + "env_steps,eval_return_mean,eval_return_std,eval_return_min,eval_return_max,eval_episodes\n"
    )
    (path / "eval.csv").write_text(eh + "\n".join(ev) + "\n")
    return str(path)


def test_curves_mean_and_band_over_seeds(tmp_path):
    (c,) = plots.curves(_fake_run(tmp_path / "a"))
    # seeds 0 and 1: returns (10, 14), (20, 24), (30, 34) -> mean 12, 22, 32; band [10, 14] ...
    np.testing.assert_array_equal(c["x"], [8, 16, 24])
    np.testing.assert_array_equal(c["mean"], [12, 22, 32])
    np.testing.assert_array_equal(c["lo"], [10, 20, 30])
    np.testing.assert_array_equal(c["hi"], [14, 24, 34])
    assert c["seeds"] == 2 and list(c["eval_y"]) == [50.0]


def test_sweep_gives_one_curve_per_value(tmp_path):
    cs = plots.curves(_fake_run(tmp_path / "s", sweep_values=(0.001, 0.01)))
    assert [c["label"] for c in cs] == ["learning_rate=0.001", "learning_rate=0.01"]
    np.testing.assert_array_equal(cs[1]["mean"], [112, 122, 132])


def test_plot_writes_a_png_overlaying_runs(tmp_path):
    pytest.importorskip("matplotlib")
    a, b = _fake_run(tmp_path / "a"), _fake_run(tmp_path / "b", sweep_values=(0.001, 0.01), seeds=1)
    out = plots.plot_runs([a, b], str(tmp_path / "out" / "c.png"))
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_missing_run_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="jaxrl run directory"):
        plots.curves(str(tmp_path))
