"""The GPU check (scripts/gpu_check.sh, benchmarks/gpu_check.py) works before a GPU is lent: its CPU dry
run exercises every part at toy sizes and writes the JSON a GPU run would; the budget, argument checks
and the envpool wheel cutter behave."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
PARTS = [
    "device",
    "correctness",
    "ppo_cartpole",
    "ppo_minatar",
    "dqn_minatar",
    "grpo_builtin",
    "grpo_qwen",
    "envpool_pong",
]


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("JAX_PLATFORMS", None)  # the script chooses; --cpu must put every part on the CPU itself
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    proc = _run("--cpu", "--tiny", "--jobs", "2", "--out", str(out))
    report = json.loads((out / "gpu_check.json").read_text())
    return proc, report, out


def test_dry_run_runs_every_part_and_writes_the_report(dry_run):
    proc, report, out = dry_run
    parts = report["parts"]
    assert list(parts) == PARTS
    not_done = {
        k: (v["status"], v.get("reason"), v.get("log_tail"))
        for k, v in parts.items()
        if v["status"] != "done"
    }
    expected_skips = set()
    if importlib.util.find_spec("jaxrl.lm") is None:
        expected_skips.add("grpo_qwen")
        assert "jaxrl.lm" in parts["grpo_qwen"]["reason"]
    if importlib.util.find_spec("envpool") is None:
        expected_skips.add("envpool_pong")
    assert set(not_done) == expected_skips, not_done
    assert all(parts[k]["status"] == "skipped" for k in expected_skips)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the device is named, and it is the CPU (--cpu), whatever the machine has
    assert parts["device"]["backend"] == "cpu"
    assert report["device"] == parts["device"]["headline"] and "cpu" in report["device"]
    assert report["mode"] == "CPU dry run, tiny sizes"
    # correctness ran pytest for real: the two tiny-mode tests passed
    assert parts["correctness"]["counts"]["passed"] == 2 and parts["correctness"]["counts"]["failed"] == 0
    # every throughput part trained: env steps counted, time measured, compilation timed apart
    for name in ("ppo_cartpole", "ppo_minatar", "dqn_minatar") + (
        ("envpool_pong",) if "envpool_pong" not in expected_skips else ()
    ):
        r = parts[name]
        assert r["env_steps"] > 0 and r["train_s"] > 0 and r["compile_s"] > 0, (name, r)
        assert r["env_steps_per_s"] == pytest.approx(r["env_steps"] / r["train_s"])
        assert r["chunks_done"] == r["chunks"], (name, r)  # toy sizes finish well within the caps
        assert "ratio_vs_anchor" not in r  # toy sizes are compared with nothing
    pc = parts["ppo_cartpole"]
    assert pc["seeds"] == 4 and pc["env_steps"] == pc["total_env_steps"] == 4 * 2 * 512
    assert parts["grpo_builtin"]["completions_per_s"] > 0 and parts["grpo_builtin"]["iterations_timed"] == 3
    # peak device memory is recorded: null on the CPU, which keeps no allocator statistics
    assert "peak_device_memory_bytes" in parts["grpo_builtin"]
    assert parts["grpo_builtin"]["peak_device_memory_bytes"] is None  # (a GPU gives bytes)
    if parts["grpo_qwen"]["status"] == "done":
        assert parts["grpo_qwen"]["peak_device_memory_bytes"] is None
    # each part carries its cap and wall time; the table names every part
    for name in PARTS:
        if parts[name]["status"] == "done":
            assert 0 < parts[name]["wall_s"] <= parts[name]["cap_s"] + 5
        assert f"| {name} | {parts[name]['status']} |" in report["table"]
    assert report["table"] in proc.stdout
    assert (out / "gpu_check.log").read_text().count("===== ") == len(PARTS)  # every part ran a process


def test_spent_budget_skips_parts_with_a_reason_without_running_them(tmp_path):
    proc = _run(
        "--cpu",
        "--tiny",
        "--budget",
        "5",
        "--parts",
        "ppo_cartpole,dqn_minatar",
        "--out",
        str(tmp_path),
        timeout=120,
    )
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(report["parts"]) == ["ppo_cartpole", "dqn_minatar"]
    for r in report["parts"].values():
        assert r["status"] == "skipped" and "budget spent" in r["reason"]
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parts", "ppo_cartpole,warp_drive"], "unknown part"),
        (["--jobs", "2"], "--jobs is for the CPU dry run"),
        (["--wheels", "/nonexistent/wheels"], "--fetch-wheels"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(tmp_path, args, message):
    proc = _run(*args, "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "gpu_check.json").exists()


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_envpool_wheel_cut_keeps_atari_and_classic_control_with_a_valid_record(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "cut_envpool_wheels", ROOT / "scripts" / "cut_envpool_wheels.py"
    )
    cut = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cut)
    files = {
        "envpool/__init__.py": b"import envpool.entry\n",
        "envpool/entry.py": b"import envpool.mujoco.gym.registration\n",
        "envpool/registration.py": b"x = 1\n",
        "envpool/python/api.py": b"y = 2\n",
        "envpool/atari/atari_envpool.so": b"\x7fELF atari" * 100,
        "envpool/classic_control/registration.py": b"z = 3\n",
        "envpool/mujoco/mujoco_gym_envpool.so": b"\x7fELF mujoco" * 1000,
        "envpool/vizdoom/bin/vizdoom": b"doom" * 1000,
        "envpool.libs/libEGL.so": b"egl",
        "envpool-1.2.5.dist-info/METADATA": b"Name: envpool\nVersion: 1.2.5\n",
        "envpool-1.2.5.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
        "envpool-1.2.5.dist-info/RECORD": b"stale\n",
    }
    wheel = tmp_path / "envpool-1.2.5-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    before, after = cut.cut(wheel, cut.ENVPOOL_KEEP, {"envpool/entry.py": cut.ENTRY.encode()})
    assert after < before
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert not any(n.startswith(("envpool/mujoco/", "envpool/vizdoom/")) for n in names)
        assert {
            "envpool/atari/atari_envpool.so",
            "envpool/classic_control/registration.py",
            "envpool.libs/libEGL.so",
        } <= names
        entry = z.read("envpool/entry.py").decode()
        assert "envpool.atari.registration" in entry and "mujoco" not in entry
        record = z.read("envpool-1.2.5.dist-info/RECORD").decode().splitlines()
        listed = {row.split(",")[0]: row.split(",")[1:] for row in record}
        assert set(listed) == names  # every member listed once, RECORD itself without a hash
        for name in names - {"envpool-1.2.5.dist-info/RECORD"}:
            data = z.read(name)
            assert listed[name] == [_digest(data), str(len(data))], name
    # a wheel that is not envpool's layout is refused rather than cut to nothing
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("other/__init__.py", b"")
        z.writestr("other-1.0.dist-info/RECORD", b"")
    with pytest.raises(SystemExit, match="not the wheel"):
        cut.cut(other, cut.ASSETS_KEEP)


def test_a_part_past_its_cap_is_killed_and_reported_failed(tmp_path):
    # the full-size PPO CartPole part (2048 seeds x 1M steps) cannot end on a CPU within 16 s
    t0 = time.time()
    proc = _run("--cpu", "--budget", "16", "--parts", "ppo_cartpole", "--out", str(tmp_path), timeout=300)
    wall = time.time() - t0
    r = json.loads((tmp_path / "gpu_check.json").read_text())["parts"]["ppo_cartpole"]
    assert r["status"] == "failed" and "killed at its time cap (16 s)" in r["reason"], r
    assert r["seeds"] == 2048 and r["total_env_steps"] == 2048 * 999_936  # what it recorded before the kill
    assert 16 <= r["wall_s"] < 30 and wall < 90
    assert proc.returncode == 1


def test_ratio_against_the_anchor_is_anchor_seconds_over_projected_seconds(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    rec = gpu_check.Recorder(tmp_path / "part.json", "ppo_cartpole")
    rec.update(tiny=False, env_steps_per_s=2048 * 999_936 / 49.0)  # the anchor's work in 49 s
    gpu_check._anchored(rec, "ppo_cartpole")
    assert rec.data["projected_s_for_anchor_work"] == pytest.approx(49.0)
    assert rec.data["ratio_vs_anchor"] == pytest.approx(98.0 / 49.0)
    assert json.loads((tmp_path / "part.json").read_text())["ratio_vs_anchor"] == pytest.approx(2.0)
    rec = gpu_check.Recorder(tmp_path / "tiny.json", "ppo_minatar")
    rec.update(tiny=True, env_steps_per_s=1e6)
    gpu_check._anchored(rec, "ppo_minatar")  # toy sizes get no ratio
    assert "ratio_vs_anchor" not in rec.data
