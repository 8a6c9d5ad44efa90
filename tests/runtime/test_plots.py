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


def test_band_is_a_95_percent_t_interval_of_the_mean(tmp_path):
    (c,) = plots.curves(_fake_run(tmp_path / "a"))
    # two seeds 4 apart: sample std 2 * sqrt(2), standard error 2, t(0.975, 1 dof) = 12.7062
    half = 12.7062047 * 2.0
    np.testing.assert_allclose(c["ci_lo"], np.array([12, 22, 32]) - half, rtol=1e-6)
    np.testing.assert_allclose(c["ci_hi"], np.array([12, 22, 32]) + half, rtol=1e-6)
    lo, hi = plots.t_interval(np.array([[1.0], [np.nan]]))  # one finite seed: no interval
    assert lo[0] == hi[0] == 1.0


def test_grpo_run_is_labelled_with_its_own_axes_and_accuracy(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "g"
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps({"algo": "grpo", "config": {"task": "x:rev"}, "target": "rev", "sweep": {}})
    )
    (path / "metrics.csv").write_text(
        "iteration,member,seed,episode_return,env_steps\n1,0,0,0.1,32\n2,0,0,0.3,64\n"
    )
    (path / "eval.csv").write_text("iteration,member,seed,env_steps,heldout_accuracy\n2,0,0,64,0.75\n")
    (c,) = plots.curves(str(path))
    assert list(c["eval_y"]) == [0.75]
    import matplotlib.pyplot as plt

    seen = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, *a, **k):
        ax = fig.axes[0]
        seen.update(
            title=ax.get_title(),
            x=ax.get_xlabel(),
            y=ax.get_ylabel(),
            legend=[t.get_text() for t in ax.get_legend().get_texts()],
        )
        return real_savefig(fig, *a, **k)

    plt.Figure.savefig = spy
    try:
        plots.plot_runs([str(path)], str(tmp_path / "c.png"))
    finally:
        plt.Figure.savefig = real_savefig
    assert seen["title"] == "GRPO on rev" and seen["x"] == "completions sampled"
    assert seen["y"].startswith("reward") and "held-out greedy accuracy" in seen["y"]
    assert any(t.startswith("dots: held-out greedy accuracy") for t in seen["legend"])
