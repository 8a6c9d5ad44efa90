"""Config fields renamed so that each name says what it counts (#23): the old names are refused, by the
Python API and by the CLI alike, with a message naming the new field."""

from __future__ import annotations

import json

import pytest

import jaxrl
from jaxrl import cli
from jaxrl.runtime import configs

RENAMED = [
    (jaxrl.PPOConfig, "ppo", "num_steps", "rollout_steps", 8),
    (jaxrl.A2CConfig, "a2c", "num_steps", "rollout_steps", 8),
    (jaxrl.ReinforceConfig, "reinforce", "num_steps", "rollout_steps", 500),
    (jaxrl.QLearningConfig, "qlearning", "num_steps", "rollout_steps", 8),
    (jaxrl.DQNConfig, "dqn", "batch_size", "minibatch_size", 32),
    (jaxrl.RewardModelConfig, "reward_model", "batch_size", "minibatch_size", 32),
]


@pytest.mark.parametrize("cls, algo, old, new, value", RENAMED)
def test_old_name_refused_by_the_api(cls, algo, old, new, value):
    with pytest.raises(TypeError, match=rf"{old} was renamed to '{new}'.*write {new}="):
        cls(**{old: value})
    with pytest.raises(TypeError, match=rf"{old} was renamed to '{new}'"):
        cls().replace(**{old: value})
    assert getattr(cls(**{new: value}), new) == value  # the new name works


@pytest.mark.parametrize("cls, algo, old, new, value", RENAMED)
def test_old_name_refused_by_the_cli_and_config_json(tmp_path, cls, algo, old, new, value):
    p = cli._parser()
    with pytest.raises(ValueError, match=rf"{old} was renamed to '{new}'"):
        cli._build(p.parse_args(["train", "--algo", algo, "--set", f"{old}={value}"]))
    with pytest.raises(ValueError, match=rf"{old} was renamed to '{new}'"):
        configs.from_dict(cls, {old: value})
    spec = {"algo": algo, "config": {old: value}, "key": {"seed": 0}, "seeds": 1, "sweep": {}, "runtime": {}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=rf"{old} was renamed to '{new}'"):
        cli._build(p.parse_args(["train", "--config", str(path)]))


def test_a_plain_typo_still_gets_the_unknown_field_message():
    with pytest.raises(ValueError, match=r"no field 'rollout_step'.*Did you mean: rollout_steps"):
        configs.apply_overrides(jaxrl.PPOConfig(), ["rollout_step=8"])
