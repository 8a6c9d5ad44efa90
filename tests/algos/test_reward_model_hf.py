"""Reward model on a Hugging Face checkpoint: ``RewardModelConfig(model="hf:<dir>")``.

The committed tiny checkpoints of tests/lm/fixtures (random weights, real tokenizers) are the trunk: its
hidden states equal ``transformers``', the scalar head reads the last real token, it learns a preference
rule from JSONL text pairs to well above chance, and GRPO scores completions with it; bad combinations
fail early with what to do.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("transformers")

import jaxrl  # noqa: E402
import jaxrl.lm  # noqa: E402
from jaxrl.algos import grpo  # noqa: E402
from jaxrl.algos import reward_model as rm  # noqa: E402
from jaxrl.algos.grpo import rewards as grpo_rewards  # noqa: E402
from jaxrl.data import preferences as prefs  # noqa: E402
from jaxrl.runtime import driver  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "lm" / "fixtures"  # the committed tiny checkpoints

LLAMA = f"hf:{FIXTURES / 'llama'}"
GOOD = ("great", "lovely", "superb", "fine")
BAD = ("awful", "broken", "dull", "poor")
FILLER = ("the", "food", "room", "staff", "was", "very", "and", "view", "bed", "price", "quite", "our")


def _pairs(n: int, seed: int) -> list[dict]:
    """Chosen: filler words with one word of GOOD somewhere; rejected: the same filler with a word of
    BAD at the same place. A rule on content, not length or position."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 7))))
        at = int(rng.integers(0, len(words) + 1))
        good, bad = str(rng.choice(GOOD)), str(rng.choice(BAD))
        chosen = " " + " ".join(words[:at] + [good] + words[at:])
        rejected = " " + " ".join(words[:at] + [bad] + words[at:])
        out.append({"prompt": f"Review {int(rng.integers(100))}:", "chosen": chosen, "rejected": rejected})
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prefs")
    train, held = d / "train.jsonl", d / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _pairs(256, 0)))
    held.write_text("".join(json.dumps(r) + "\n" for r in _pairs(128, 1)))
    return str(train), str(held)


def _cfg(data, **kw):
    base = dict(model=LLAMA, data=data[0], eval_data=data[1], minibatch_size=32, num_epochs=4, learning_rate=3e-3)
    return jaxrl.RewardModelConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A reward-model run on the llama checkpoint (driver: a run directory GRPO can load)."""
    out = tmp_path_factory.mktemp("rm") / "run"
    cfg = _cfg(data)
    r = driver.run(cfg, 0, str(out), progress=False, plot=False)
    assert r.status == "finished"
    return cfg, str(out)


def test_defaults_for_a_checkpoint(data):
    cfg = _cfg(data)
    assert rm.config.resolved_readout(cfg) == "head"  # "auto": the scalar head for a checkpoint
    assert rm.config.resolved_readout(cfg.replace(model="tiny")) == "loglik"  # unchanged for built-ins
    assert rm.config.context_length(cfg) == 128  # the checkpoint's max_position_embeddings
    tok = jaxrl.lm.resolve(LLAMA)[2]
    assert rm.make_task(cfg).tokenizer is tok  # the checkpoint's tokenizer replaces the task's


def test_trunk_hidden_states_equal_transformers(data):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    cfg = _cfg(data)
    net = rm.make_network(cfg)
    params = net.init(jax.random.key(0))
    tok = jaxrl.lm.resolve(LLAMA)[2]
    ids = [tok.encode("Review 7: the food was great", bos=True), tok.encode("Review 9: dull", bos=True)]
    tokens, lengths = jaxrl.lm.tokenizer.pad_batch(ids, tok.pad_id)
    ours = np.asarray(net.features(params, jnp.asarray(tokens)))
    hf = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = hf.model(torch.as_tensor(tokens, dtype=torch.long)).last_hidden_state.numpy()
    for i, n in enumerate(lengths):  # real positions (causal: padding after them changes nothing)
        np.testing.assert_allclose(ours[i, :n], theirs[i, :n], rtol=1e-4, atol=1e-5)


def test_head_reads_the_last_real_token(data):
    """r = h[last real token] . w + b, by hand; padding after a row's end does not change it."""
    cfg = _cfg(data)
    net = rm.make_network(cfg)
    params = net.init(jax.random.key(1))
    params["params"]["head"]["bias"] = jnp.array([0.5])
    tok = jaxrl.lm.resolve(LLAMA)[2]
    pair = prefs.PreferencePair("Review 3:", " the view was lovely", " the view was dull")
    t = prefs.tokenize_pairs([pair], tok)
    r = net.apply(params, jnp.asarray(t.chosen), jnp.asarray(t.chosen_len), jnp.asarray(t.prompt_len))
    h = np.asarray(net.features(params, jnp.asarray(t.chosen)))
    w = np.asarray(params["params"]["head"]["kernel"])[:, 0]
    np.testing.assert_allclose(r, [h[0, t.chosen_len[0] - 1] @ w + 0.5], rtol=1e-5)
    padded = np.pad(t.chosen, ((0, 0), (0, 5)), constant_values=tok.pad_id)
    r2 = net.apply(params, jnp.asarray(padded), jnp.asarray(t.chosen_len), jnp.asarray(t.prompt_len))
    np.testing.assert_allclose(r2, r, rtol=1e-5)
    with pytest.raises(ValueError, match="does not build"):
        net.apply(
            params,
            jnp.asarray(t.chosen),
            jnp.asarray(t.chosen_len),
            jnp.asarray(t.prompt_len),
            with_logits=True,
        )


def test_learns_preferences_above_chance(run):
    """4 epochs of 256 pairs: held-out pair accuracy well above 0.5 (the rule is one word's sentiment)."""
    cfg, out = run
    _, state = rm.load(out)
    net, held = rm.make_network(cfg), jax.tree_util.tree_map(jnp.asarray, rm.dataset(cfg).eval)
    _, acc, gap = jax.jit(lambda p: rm.evaluate_pairs(p, net, held))(state.params)
    assert float(acc) >= 0.85, float(acc)
    assert float(gap) > 0
    score = jaxrl.make_policy(cfg, state)
    assert score("Review 5:", " our room was superb") > score("Review 5:", " our room was broken")


def test_grpo_scores_completions_with_it(run):
    """reward="rm:<run dir>" on a policy with the same checkpoint tokenizer: the GRPO reward of a
    completion equals the model's score of its text."""
    cfg, out = run
    policy_task = grpo.config.make_task(jaxrl.GRPOConfig(model=LLAMA, task="addition"))
    fn = grpo_rewards.make_reward(f"rm:{out}", policy_task)
    tok = policy_task.tokenizer
    texts = [" the bed was fine", " the bed was poor"]
    prompt = tok.encode("Review 1:", bos=True)
    rows = [prompt + tok.encode(t, eos=True) for t in texts]
    tokens, lengths = jaxrl.lm.tokenizer.pad_batch(rows, tok.pad_id, width=24)
    mask = np.zeros(tokens.shape, np.float32)
    for i, n in enumerate(lengths):
        mask[i, len(prompt) : n] = 1.0
    problem = jaxrl.Problem("Review 1:", 0, "")
    batch = grpo_rewards.RewardBatch(
        [problem] * 2, texts, np.ones(2, bool), tokens, np.full(2, len(prompt), np.int32), mask
    )
    _, state = rm.load(out)
    score = jaxrl.make_policy(cfg, state)
    np.testing.assert_allclose(fn(batch), score(["Review 1:"] * 2, texts), rtol=1e-5, atol=1e-5)


def test_errors_say_what_to_do(data, run, tmp_path):
    _, out = run
    # the committed gpt2 checkpoint has the llama one's tokenizer (same file): accepted
    same = grpo.config.make_task(jaxrl.GRPOConfig(model=f"hf:{FIXTURES / 'gpt2'}", task="addition"))
    assert rm.scoring.tokenizer_mismatch(jaxrl.lm.resolve(LLAMA)[2], same.tokenizer) == ""
    tok = jaxrl.lm.train_bpe(["a b c d e f g 0 1 2 3 4 5 6 7 8 9 + ="] * 4, 280)
    shape = dict(architecture="LlamaForCausalLM", vocab_size=300, hidden_size=16, num_layers=1, num_heads=2,
                 num_kv_heads=1, head_dim=8, intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    jaxrl.lm.random_checkpoint(tmp_path / "other", shape, tokenizer=tok)
    other = grpo.config.make_task(jaxrl.GRPOConfig(model=f"hf:{tmp_path / 'other'}", task="addition"))
    with pytest.raises(ValueError, match="checkpoint with the policy's tokenizer"):
        grpo_rewards.make_reward(f"rm:{out}", other)
    builtin = grpo.config.make_task(jaxrl.GRPOConfig(task="addition"))
    with pytest.raises(ValueError, match="one is a checkpoint's tokenizer"):
        grpo_rewards.make_reward(f"rm:{out}", builtin)
    with pytest.raises(ValueError, match="drop init_from"):
        rm.validate(_cfg(data, init_from=str(tmp_path)))
    with pytest.raises(ValueError, match="readout must be one of"):
        rm.validate(_cfg(data, readout="mean"))
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        rm.validate(_cfg(data, model=f"hf:{tmp_path / 'nowhere'}"))


def _review(rng):
    return jaxrl.Problem(prompt=f"Review {int(rng.integers(100))}:", answer=0, solution=" the room was fine")


REVIEWS = jaxrl.Task(
    name="hf-rm-reviews",
    tokenizer=jaxrl.CharTokenizer("Review0123456789: "),  # replaced by the checkpoint's tokenizer
    generate=_review,
    reward=lambda p, text: float("fine" in text),
    max_new_tokens=6,
    heldout=[jaxrl.Problem("Review 1:", 0, " fine")],
)


@pytest.mark.slow
def test_grpo_trains_on_the_checkpoint_reward_model(run, tmp_path):
    """End to end: a GRPO run of the llama checkpoint with reward="rm:<run dir>" logs the model's score
    as its reward and the task's verifier as true_reward."""
    _, out = run
    jaxrl.register_task("hf-rm-reviews", lambda: REVIEWS)
    cfg = jaxrl.GRPOConfig(
        task="hf-rm-reviews", model=LLAMA, reward=f"rm:{out}", warmup_steps=0, num_iterations=2,
        group_size=2, prompts_per_iteration=2, oversample=1, eval_every=1000, learning_rate=1e-3,
    )  # fmt: skip
    r = driver.run(cfg, 0, str(tmp_path / "grpo"), progress=False, plot=False)
    assert r.status == "finished"
    m = jaxrl.runtime.logs.read_csv(str(tmp_path / "grpo" / "metrics.csv"))
    assert np.all(np.isfinite(m["reward"])) and np.all((m["true_reward"] >= 0) & (m["true_reward"] <= 1))
    assert not np.allclose(m["reward"], m["true_reward"])  # scores of a model, not the verifier's 0/1
