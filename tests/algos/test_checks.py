"""Bad input is refused the same way by the Python API and the CLI, before any work; a user reward
function that raises or returns a non-number stops the run with a message and a summary.json."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

import jaxrl
from jaxrl import cli, parallel, tasks
from jaxrl.algos import checks
from jaxrl.tasks import reward_checks

PPO = jaxrl.PPOConfig(env="CartPole-v1")


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"num_envs": 2.5}, r"PPOConfig.num_envs must be an integer, got 2.5 \(float\)"),
        ({"total_timesteps": "4096"}, r"PPOConfig.total_timesteps must be an integer, got '4096' \(str\)"),
        ({"total_timesteps": 1e6}, r"must be an integer \(write 1_000_000\)"),
        ({"learning_rate": "3e-4"}, r"PPOConfig.learning_rate must be a number, got '3e-4'"),
        ({"hidden": (64, 64.5)}, r"PPOConfig.hidden must hold only int values"),
        ({"normalize_obs": 1}, r"PPOConfig.normalize_obs must be True or False"),
    ],
)
def test_api_refuses_wrong_types_before_any_work(kw, message, tmp_path):
    cfg = PPO.replace(**kw)
    with pytest.raises(checks.ConfigTypeError, match=message):
        jaxrl.train(cfg, 0)
    with pytest.raises(ValueError, match=message):  # also a ValueError, as the CLI catches
        jaxrl.run(cfg, 0, out_dir=str(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match=message):
        parallel.train_population(cfg, jax.random.split(jax.random.key(0), 2))


@pytest.mark.parametrize(
    "algo,field,text,value,message",
    [
        (
            "ppo",
            "num_envs",
            "3.0",
            3.0,
            r"PPOConfig.num_envs must be an integer \(write 3\), got 3.0 \(float\)",
        ),
        (
            "ppo",
            "total_timesteps",
            "1e6",
            1e6,
            r"PPOConfig.total_timesteps must be an integer \(write 1_000_000\)",
        ),
        ("ppo", "num_envs", "2.5", 2.5, r"PPOConfig.num_envs must be an integer, got 2.5 \(float\)"),
        (
            "ppo",
            "learning_rate",
            "fast",
            "fast",
            r"PPOConfig.learning_rate must be a number, got 'fast' \(str\)",
        ),
        ("ppo", "normalize_obs", "1", 1, r"PPOConfig.normalize_obs must be True or False, got 1 \(int\)"),
        ("ppo", "hidden", "64,64.5", (64, 64.5), r"PPOConfig.hidden must hold only int values"),
        ("dqn", "buffer_size", "1e4", 1e4, r"DQNConfig.buffer_size must be an integer \(write 10_000\)"),
        ("grpo", "max_new_tokens", "4.0", 4.0, r"GRPOConfig.max_new_tokens must be an integer \(write 4\)"),
        ("grpo", "unsafe_local_exec", "1", 1, r"GRPOConfig.unsafe_local_exec must be True or False, got 1"),
    ],
)
def test_api_and_cli_refuse_the_same_values_with_the_same_message(
    algo, field, text, value, message, tmp_path, capsys
):
    """``Config(field=value)`` through the Python API and ``--set field=text`` through the CLI go through
    one check (``checks.check_field``): the same value is refused with the same message by both."""
    from jaxrl.algos import registry

    cfg = registry.get(algo).config().replace(**{field: value})
    with pytest.raises(checks.ConfigTypeError, match=message) as api:
        jaxrl.run(cfg, 0, out_dir=str(tmp_path / "api"), progress=False)
    out = tmp_path / "cli"
    assert cli.main(["train", "--algo", algo, "--set", f"{field}={text}", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == f"jaxrl train: error: {api.value}"
    assert not out.exists() and not (tmp_path / "api").exists()


def test_api_and_cli_accept_the_same_spellings():
    from jaxrl.runtime import configs

    cfg = configs.apply_overrides(
        PPO, ["num_envs=1_024", "learning_rate=3", "normalize_obs=yes", "hidden=32,32"]
    )
    assert (cfg.num_envs, cfg.learning_rate, cfg.normalize_obs, cfg.hidden) == (1024, 3.0, True, (32, 32))
    checks.check_field_types(cfg)
    checks.check_field_types(
        PPO.replace(num_envs=1_024, learning_rate=3, normalize_obs=True, hidden=[32, 32])
    )


def test_valid_values_of_other_types_pass():
    # numpy integers, jax scalars for tunable leaves, None where allowed
    checks.check_field_types(PPO.replace(num_envs=np.int64(4), learning_rate=np.float32(1e-3)))
    checks.check_field_types(PPO.replace(learning_rate=jax.numpy.asarray(1e-3)))
    checks.check_field_types(jaxrl.DQNConfig(env="CartPole-v1"))
    checks.check_field_types(jaxrl.GRPOConfig())


def test_negative_episode_limit_is_refused_up_front(tmp_path, capsys):
    params = jaxrl.envs.make("CartPole-v1", 1, None).params.replace(max_steps_in_episode=-1)
    cfg = PPO.replace(env_params=params)
    with pytest.raises(ValueError, match=r"env_params.max_steps_in_episode must be a positive integer.*-1"):
        jaxrl.train(cfg, 0)
    with pytest.raises(ValueError, match=r"max_steps_in_episode must be a positive integer"):
        jaxrl.evaluate(cfg, None, 0)
    out = str(tmp_path / "cli")
    argv = ["train", "--env", "CartPole-v1", "--set", "env_params.max_steps_in_episode=-1", "--out", out]
    assert cli.main([*argv, "--quiet"]) == 2
    assert "env_params.max_steps_in_episode must be a positive integer" in capsys.readouterr().err
    assert not os.path.exists(out)


def _reverse_task(reward):
    def generate(rng):
        s = "".join(rng.choice(list("abcd"), size=3))
        return jaxrl.Problem(prompt=s + ">", answer=s[::-1], solution=s[::-1])

    return jaxrl.Task(
        name="reverse", tokenizer=jaxrl.CharTokenizer("abcd>"), generate=generate, reward=reward,
        max_new_tokens=4, num_heldout=8,
    )  # fmt: skip


class TestRewardFunctions:
    P = [tasks.Problem("abc>", "cba")]

    @pytest.mark.parametrize(
        "value,shown", [("1.0", r"'1.0' \(str\)"), ([1.0], r"\[1.0\]"), (True, "True"), (float("nan"), "nan")]
    )
    def test_non_numbers_are_refused_with_task_prompt_and_completion(self, value, shown):
        task = _reverse_task(lambda p, t: value)
        with pytest.raises(
            reward_checks.RewardError, match=rf"Task 'reverse'.*returned {shown}.*'abc>'.*'cb'"
        ):
            task.score(self.P, ["cb"], [True])

    def test_numbers_and_none_pass(self):
        for value in (1, 0.5, np.float32(0.25), np.array(0.75), np.int64(0)):
            assert _reverse_task(lambda p, t, v=value: v).score(self.P, ["x"], [True])[0] == float(value)
        # None: the completion could not be parsed (scored 0 and flagged, not an error)
        rewards, unparsed = _reverse_task(lambda p, t: None).score_details(self.P, ["x"], [True])
        assert rewards.tolist() == [0.0] and unparsed.tolist() == [True]

    def test_raising_and_bad_batched_rewards(self):
        def boom(p, t):
            raise KeyError("missing")

        with pytest.raises(reward_checks.RewardError, match=r"raised KeyError: 'missing' for prompt 'abc>'"):
            _reverse_task(boom).score(self.P, ["cb"], [True])
        task = _reverse_task(lambda p, t: 0.0)
        for batch, msg in (
            (lambda ps, ts: [1.0, 2.0], "returned 2 rewards for 1 completions"),
            (lambda ps, ts: ["1"], r"returned '1' \(str\)"),
            (lambda ps, ts: 3.0, "expected a sequence of 1 numbers"),
        ):
            with pytest.raises(reward_checks.RewardError, match=msg):
                dataclasses.replace(task, batch_reward=batch).score(self.P, ["cb"], [True])

    def test_a_raising_reward_stops_the_run_with_a_summary(self, tmp_path, capsys):
        calls = []

        def reward(problem, text):
            calls.append(text)
            if len(calls) > 3:
                raise ZeroDivisionError("user bug")
            return 0.0

        cfg = jaxrl.GRPOConfig(task=_reverse_task(reward), model="nano", warmup_steps=0, num_iterations=2,
                               prompts_per_iteration=2, group_size=2, eval_every=10**6)  # fmt: skip
        run_dir = tmp_path / "run"
        with pytest.raises(reward_checks.RewardError, match="raised ZeroDivisionError: user bug"):
            jaxrl.run(cfg, 0, out_dir=str(run_dir), progress=False)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "error"
        assert "RewardError" in summary["error"] and "user bug" in summary["error"]
        assert "prompt" in summary["error"] and "completion" in summary["error"]
