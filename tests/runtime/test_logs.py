"""CSV/JSONL/summary/eval sinks, resume truncation, TensorBoard and offline W&B."""

import json
import sys
import types

import numpy as np
import pytest

from jaxrl.runtime import logs

MEMBERS = [{"member": 0, "seed": 0, "learning_rate": 0.1}, {"member": 1, "seed": 1, "learning_rate": 0.1}]


def _metrics(its):
    """Member m at iteration t: episode_return = 10 t + m (NaN for member 1 at t = 1), env_steps = 4 t."""
    t = np.asarray(its, np.float32)
    ret = np.stack([10 * t, 10 * t + 1])
    ret[1, t == 1] = np.nan
    steps = np.stack([4 * its, 4 * its]).astype(np.int32)
    return {"episode_return": ret, "env_steps": steps}


def test_rows_summary_eval_and_truncate_on_resume(tmp_path):
    log = logs.MetricsLog(str(tmp_path), MEMBERS)
    its = np.array([1, 2, 3])
    log.write(its, _metrics(its))
    log.write_eval(3, np.array([12.0, 12.0]), np.array([[1.0, 3.0], [5.0, 5.0]]))
    log.close()
    csv = logs.read_csv(str(tmp_path / logs.METRICS_CSV))
    assert list(csv) == ["iteration", "member", "seed", "learning_rate", "episode_return", "env_steps"]
    np.testing.assert_array_equal(csv["iteration"], [1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(csv["episode_return"], [10, np.nan, 20, 21, 30, 31])
    summ = logs.read_csv(str(tmp_path / logs.SUMMARY_CSV))
    # t=1: member 1 has no episode yet -> mean/min/max of member 0 alone; t=2: mean(20, 21) = 20.5
    np.testing.assert_array_equal(summ["episode_return_mean"], [10, 20.5, 30.5])
    np.testing.assert_array_equal(summ["episode_return_min"], [10, 20, 30])
    np.testing.assert_array_equal(summ["episode_return_max"], [10, 21, 31])
    np.testing.assert_array_equal(summ["env_steps"], [4, 8, 12])
    ev = logs.read_csv(str(tmp_path / logs.EVAL_CSV))
    # member 0 returns (1, 3): mean 2, std 1; member 1: (5, 5): mean 5, std 0
    np.testing.assert_array_equal(ev["eval_return_mean"], [2, 5])
    np.testing.assert_array_equal(ev["eval_return_std"], [1, 0])
    lines = (tmp_path / logs.METRICS_JSONL).read_text().splitlines()
    assert json.loads(lines[1]) == {
        "iteration": 1,
        "member": 1,
        "seed": 1,
        "learning_rate": 0.1,
        "episode_return": None,
        "env_steps": 4,
    }

    # Resume from update 2: rows after it are dropped, new rows appended after one header.
    log = logs.MetricsLog(str(tmp_path), MEMBERS, resume_iteration=2)
    log.write(np.array([3]), _metrics(np.array([3])))
    log.close()
    csv = logs.read_csv(str(tmp_path / logs.METRICS_CSV))
    np.testing.assert_array_equal(csv["iteration"], [1, 1, 2, 2, 3, 3])
    assert (tmp_path / logs.METRICS_CSV).read_text().count("iteration") == 1
    assert len((tmp_path / logs.METRICS_JSONL).read_text().splitlines()) == 6
    assert len(logs.read_csv(str(tmp_path / logs.EVAL_CSV))["iteration"]) == 0  # the eval at 3 went too


def test_truncate_drops_a_torn_last_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"iteration": 1}\n{"iteration": 2}\n{"itera')
    logs.truncate(str(p), 5, jsonl=True)
    assert p.read_text() == '{"iteration": 1}\n{"iteration": 2}\n'
    c = tmp_path / "m.csv"
    c.write_text("iteration,x\n1,0.5\n2,0.7\n3,0")
    logs.truncate(str(c), 2)
    assert c.read_text().splitlines() == ["iteration,x", "1,0.5", "2,0.7"]


def test_tensorboard_event_file(tmp_path):
    pytest.importorskip("tensorboardX")
    log = logs.MetricsLog(str(tmp_path), MEMBERS, tensorboard=True)
    its = np.array([1, 2])
    log.write(its, _metrics(its))
    log.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    # read the records back (TFRecord framing: u64 length, u32 crc, payload, u32 crc)
    from tensorboardX.proto import event_pb2

    data, pos, scalars = events[0].read_bytes(), 0, {}
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 8], "little")
        ev = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + n])
        pos += 12 + n + 4
        for v in ev.summary.value:
            scalars.setdefault(v.tag, {})[ev.step] = v.simple_value
    # logged against env steps (4 t): members, then the mean/min/max over members that have a value
    assert scalars["member_0/episode_return"] == {4: 10.0, 8: 20.0}
    assert scalars["member_1/episode_return"][8] == 21.0
    assert scalars["episode_return"] == {4: 10.0, 8: 20.5}
    assert scalars["episode_return_min"][8] == 20.0 and scalars["episode_return_max"][8] == 21.0


def test_wandb_is_offline_by_default(tmp_path, monkeypatch):
    calls = {}

    class Run:
        def log(self, d, step):
            calls.setdefault("log", []).append((step, d))

        def finish(self):
            calls["finished"] = True

    fake = types.SimpleNamespace(init=lambda **kw: calls.update(init=kw) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    log = logs.MetricsLog(str(tmp_path), MEMBERS[:1], wandb=True, wandb_config={"algo": "ppo"})
    log.write(np.array([1]), {k: v[:1] for k, v in _metrics(np.array([1])).items()})
    log.close()
    assert calls["init"]["mode"] == "offline" and calls["init"]["config"] == {"algo": "ppo"}
    assert calls["log"][0] == (1, {"episode_return": 10.0, "env_steps": 4, "iteration": 1})
    assert calls["finished"]


def test_wandb_failure_does_not_stop_training(tmp_path, monkeypatch):
    def broken(**kw):
        raise RuntimeError("no network")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=broken))
    with pytest.warns(UserWarning, match="continuing without W&B"):
        log = logs.MetricsLog(str(tmp_path), MEMBERS[:1], wandb=True)
    log.write(np.array([1]), {k: v[:1] for k, v in _metrics(np.array([1])).items()})
    log.close()
