"""GRPO on a Hugging Face checkpoint: ``GRPOConfig(model="hf:<dir>")`` trains from the checkpoint's
weights with its tokenizer, and the choice survives config.json (``--config`` re-runs, ``--resume``)."""

import json

import jax
import numpy as np
import pytest

import jaxrl
import jaxrl.lm
from jaxrl import cli
from jaxrl.algos import grpo, registry
from jaxrl.runtime import configs, driver, export

from .conftest import FIXTURES


def _generate(rng):
    a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
    return jaxrl.Problem(prompt=f"{a}+{b}=", answer=a + b, solution=str(a + b))


TASK = jaxrl.Task(
    name="small-addition",
    tokenizer=jaxrl.CharTokenizer("0123456789+="),  # replaced by the checkpoint's tokenizer
    generate=_generate,
    reward=lambda p, text: float(text.strip() == str(p.answer)),
    max_new_tokens=4,
    heldout=[jaxrl.Problem("1+2=", 3, "3"), jaxrl.Problem("4+4=", 8, "8")],
)


def _cfg(**kw):
    base = dict(
        task=TASK,
        model=f"hf:{FIXTURES / 'qwen2'}",
        warmup_steps=1,  # a random model never finishes, so only the warm-up (on demonstrations
        warmup_batch=4,  # tokenized by the checkpoint's tokenizer) moves the weights here
        warmup_demos=8,
        num_iterations=2,
        group_size=2,
        prompts_per_iteration=2,
        oversample=1,
        eval_every=1000,
        learning_rate=1e-3,
    )
    return jaxrl.GRPOConfig(**{**base, **kw})


def test_grpo_trains_a_checkpoint_and_exports_it(tmp_path):
    """A GRPO run of model=hf:<dir> (driver, run directory), then `jaxrl export RUN_DIR OUT_DIR`."""
    jaxrl.register_task("hf-test-addition", lambda: TASK)  # a name, so config.json can rebuild the task
    cfg = _cfg(task="hf-test-addition")
    grpo.validate(cfg)
    s = grpo.trainer.setup(cfg)
    model, params0, tok = jaxrl.lm.resolve(cfg.model)
    assert s.policy is model and s.task.tokenizer is tok  # the task's text, the model's tokens
    run = driver.run(cfg, 0, str(tmp_path / "run"), progress=False, plot=False)
    assert run.status == "finished"
    moved = jax.tree.map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), run.state.params, params0
    )
    assert max(jax.tree.leaves(moved)) > 0  # trained ...
    fresh = jaxrl.lm.from_pretrained(FIXTURES / "qwen2")[1]  # ... and the shared checkpoint left unchanged
    jax.tree.map(np.testing.assert_array_equal, params0, fresh)

    assert cli.main(["export", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0
    model2, params2, tok2 = jaxrl.lm.from_pretrained(tmp_path / "hf")
    jax.tree.map(np.testing.assert_array_equal, params2, run.state.params)
    assert model2.config.architecture == "Qwen2ForCausalLM" and tok2.encode("1+2=") == tok.encode("1+2=")
    torch = pytest.importorskip("torch")
    import transformers

    ids = np.asarray([tok.encode("12+30= the robot")], np.int32)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    with torch.no_grad():
        want = hf(torch.tensor(ids).long()).logits.numpy()
    np.testing.assert_allclose(jax.jit(model.apply)(run.state.params, ids), want, atol=1e-4)


def test_export_refuses_what_it_cannot_write(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "not a jaxrl run directory" in capsys.readouterr().err
    run = tmp_path / "builtin"
    run.mkdir()
    spec = driver.run_spec(registry.get("grpo"), jaxrl.GRPOConfig(), 0, 1, None)
    (run / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="trained the built-in model 'tiny'"):
        export.export_run(run, tmp_path / "out")


def test_hf_model_survives_config_json_and_cli_overrides():
    spec = f"hf:{FIXTURES / 'gpt2'}"
    cfg = configs.apply_overrides(jaxrl.GRPOConfig(), [f"model={spec}"])
    assert cfg.model == spec
    again = configs.from_dict(jaxrl.GRPOConfig, configs.to_dict(cfg))
    assert again.model == spec and configs.is_rerunnable(configs.to_dict(cfg))


def test_bad_hf_models_are_refused_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        grpo.validate(_cfg(model=f"hf:{tmp_path / 'missing'}"))
    with pytest.raises(ValueError, match="'hf:' needs a checkpoint directory"):
        grpo.validate(_cfg(model="hf:"))
    with pytest.raises(ValueError, match="or 'hf:<checkpoint dir>'"):
        grpo.validate(_cfg(model="huge"))


def test_relative_hf_path_is_stored_absolute_so_the_run_reloads_from_elsewhere(tmp_path, monkeypatch):
    """model="hf:<relative dir>" is resolved when the run is prepared: config.json holds the absolute
    directory, and the run directory's settings load (and validate) from another working directory."""
    jaxrl.register_task("hf-test-addition", lambda: TASK)
    monkeypatch.chdir(FIXTURES)
    driver.prepare(_cfg(task="hf-test-addition", model="hf:qwen2"), 0, str(tmp_path / "run"))
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]["model"]
    assert stored == f"hf:{(FIXTURES / 'qwen2').resolve()}"
    monkeypatch.chdir(tmp_path)  # where "qwen2" means nothing
    plan = driver.prepare_resume(str(tmp_path / "run"))
    assert plan.cfg.model == stored
    with pytest.raises(FileNotFoundError, match="is not a directory"):  # what a relative path would do
        grpo.validate(_cfg(model="hf:qwen2"))
