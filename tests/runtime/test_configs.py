"""Config parsing from dataclass field types, overrides, sweeps and the JSON round trip."""

import dataclasses
import typing

import pytest

import jaxrl
from jaxrl.algos import registry
from jaxrl.runtime import configs


@pytest.mark.parametrize(
    "tp, text, want",
    [
        (int, "524288", 524288),
        (int, "1_000", 1000),
        (float, "3e-4", 3e-4),
        (bool, "false", False),
        (bool, "Yes", True),
        (str, "relu", "relu"),
        (tuple[int, ...], "64,64", (64, 64)),
        (tuple[int, ...], "(32, 16, 8)", (32, 16, 8)),
        (tuple[int, ...], "()", ()),
        (float | None, "none", None),
        (float | None, "0.5", 0.5),
        (typing.Literal["a", "b"], "b", "b"),
        (typing.Any, "CartPole-v1", "CartPole-v1"),
        (typing.Any, "3", 3),
    ],
)
def test_parse_value(tp, text, want):
    got = configs.parse_value(tp, text)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    "tp, text, match",
    [
        (int, "1.5", "integer"),
        (int, "1e6", "integer"),  # a float, refused as PPOConfig(total_timesteps=1e6) is
        (bool, "1", "true or false"),  # a number, refused as PPOConfig(normalize_obs=1) is
        (bool, "maybe", "true or false"),
        (float, "fast", "number"),
        (typing.Literal["a"], "c", "one of"),
    ],
)
def test_parse_value_errors_say_what_is_expected(tp, text, match):
    with pytest.raises(ValueError, match=match):
        configs.parse_value(tp, text, "field")


def test_overrides_are_typed_and_unknown_fields_get_close_matches():
    cfg = configs.apply_overrides(
        jaxrl.PPOConfig(), ["learning_rate=1e-3", "hidden=32,32", "anneal_lr=false"]
    )
    assert cfg.learning_rate == 1e-3 and cfg.hidden == (32, 32) and cfg.anneal_lr is False
    with pytest.raises(ValueError, match="Did you mean: learning_rate"):
        configs.apply_overrides(jaxrl.PPOConfig(), ["learning_rat=1"])
    with pytest.raises(ValueError, match="field=value"):
        configs.apply_overrides(jaxrl.PPOConfig(), ["learning_rate"])


def test_env_params_override_and_json_round_trip():
    cfg = configs.apply_overrides(jaxrl.PPOConfig(), ["env_params.max_steps_in_episode=200"])
    assert cfg.env_params.max_steps_in_episode == 200
    d = configs.to_dict(cfg)
    assert d["hidden"] == [64, 64] and d["env_params"]["max_steps_in_episode"] == 200
    back = configs.from_dict(jaxrl.PPOConfig, d)
    assert back.hidden == (64, 64) and back.env_params.max_steps_in_episode == 200
    assert configs.to_dict(back) == d
    with pytest.raises(ValueError, match="Did you mean: max_steps_in_episode"):
        configs.apply_overrides(jaxrl.PPOConfig(), ["env_params.max_step_in_episode=3"])


@pytest.mark.parametrize("name", sorted(registry.algorithms()))
def test_every_registered_default_config_round_trips(name):
    algo = registry.get(name)
    d = configs.to_dict(algo.config())
    if configs.is_rerunnable(d):
        assert configs.to_dict(configs.from_dict(algo.config, d)) == d
    assert all(f.name in d for f in configs.fields(algo.config))


def test_sweeps_take_tunable_fields_only():
    cfg = jaxrl.PPOConfig()
    assert configs.parse_sweep(cfg, ["learning_rate=1e-4,3e-4"]) == {"learning_rate": [1e-4, 3e-4]}
    with pytest.raises(ValueError, match="static"):
        configs.parse_sweep(cfg, ["num_envs=4,8"])
    cfgs, points = configs.sweep_configs(cfg, {"learning_rate": [1.0, 2.0], "gamma": [0.9, 0.5]})
    assert points == [
        {"learning_rate": 1.0, "gamma": 0.9},
        {"learning_rate": 1.0, "gamma": 0.5},
        {"learning_rate": 2.0, "gamma": 0.9},
        {"learning_rate": 2.0, "gamma": 0.5},
    ]
    assert [c.gamma for c in cfgs] == [0.9, 0.5, 0.9, 0.5]


def test_field_docs_come_from_source_comments():
    docs = configs.field_docs(jaxrl.PPOConfig)
    assert docs["total_timesteps"] == "env steps in all"
    info = {f.name: f for f in configs.fields(jaxrl.PPOConfig)}
    assert info["num_envs"].static and not info["learning_rate"].static
    assert info["hidden"].default == (64, 64)


def test_diff_names_nested_keys():
    assert configs.diff({"config": {"a": 1, "b": 2}}, {"config": {"a": 1, "b": 3}}) == ["config.b: 2 -> 3"]


def test_field_docs_survive_the_python_311_ast_race(monkeypatch):
    """CPython 3.11.7's ast recursion counters are not per thread: a class-source parse racing another
    thread's traceback formatting raised ``SystemError: AST constructor recursion depth mismatch`` once in
    CI (resuming a checkpoint while orbax logged a background error). The source is read once per class
    and the read is retried on that error."""
    import inspect

    from jaxrl.runtime import configs as cfgmod

    @dataclasses.dataclass(frozen=True)
    class Tiny:
        alpha: float = 0.1  # step size

    real, calls = inspect.getsource, []

    def flaky(obj):
        calls.append(obj)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=147, after=199)")
        return real(obj)

    monkeypatch.setattr(cfgmod.inspect, "getsource", flaky)
    assert cfgmod.field_docs(Tiny) == {"alpha": "step size"}
    assert cfgmod.field_docs(Tiny) == {"alpha": "step size"} and len(calls) == 2  # read once, then cached

    @dataclasses.dataclass(frozen=True)
    class Other:
        beta: int = 1  # b

    def broken(obj):
        raise SystemError("AST constructor recursion depth mismatch")

    monkeypatch.setattr(cfgmod.inspect, "getsource", broken)
    with pytest.raises(SystemError):
        cfgmod.field_docs(Other)
