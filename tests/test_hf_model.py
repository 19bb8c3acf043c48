"""SpecMixForCausalLM as a transformers model: Auto classes, save / load (also in a process that
loads it by trust_remote_code), generate strategies cached against uncached, Trainer."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

transformers = pytest.importorskip("transformers")

from specmix.hf import SpecMixConfig, SpecMixForCausalLM, SpecMixModel  # noqa: E402

V = 13


def native(mixers="spectral-gated", n_layers=2, **kw) -> SpecMixForCausalLM:
    """A small model with weights spread wide enough that generation does not repeat one token."""
    torch.manual_seed(0)
    model = SpecMixForCausalLM(SpecMixConfig(vocab_size=V, d_model=32, n_layers=n_layers, n_heads=4,
                                             context=48, mixers=mixers, **kw))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.4)
    return model.eval()


def test_auto_classes_round_trip_save_and_load(tmp_path):
    model = native(filter="implicit")
    model.save_pretrained(tmp_path)
    ids = torch.randint(0, V, (2, 9))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SpecMixForCausalLM and loaded.config.to_lm_config() == model.config.to_lm_config()
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    base = transformers.AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is SpecMixModel
    assert torch.equal(model.model.head(base(ids).last_hidden_state), model(ids).logits)


FRESH = textwrap.dedent("""
    import sys, torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    assert "specmix" not in sys.modules or type(model).__name__ == "SpecMixForCausalLM"
    torch.save(model(torch.load(sys.argv[2])).logits.detach(), sys.argv[3])
""")


def test_a_saved_model_opens_by_trust_remote_code_in_a_fresh_process(tmp_path):
    model = native()
    model.save_pretrained(tmp_path / "m")
    ids = torch.randint(0, V, (2, 9))
    torch.save(ids, tmp_path / "ids.pt")
    done = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "m"), str(tmp_path / "ids.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), model(ids).logits)


STRATEGIES = {
    "greedy": dict(do_sample=False),
    "sampling": dict(do_sample=True, top_k=5),
    "beams": dict(do_sample=False, num_beams=3),
    "return-2": dict(do_sample=True, num_return_sequences=2),
}


def generate(model, ids, use_cache, mask=None, **kw):
    torch.manual_seed(7)
    return model.generate(ids, attention_mask=mask, max_new_tokens=8, use_cache=use_cache, pad_token_id=0,
                          output_scores=True, return_dict_in_generate=True, **kw)


def assert_same_generation(model, ids, mask=None, **kw):
    cached, plain = generate(model, ids, True, mask, **kw), generate(model, ids, False, mask, **kw)
    assert torch.equal(cached.sequences, plain.sequences)
    for a, b in zip(cached.scores, plain.scores):
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a))
        torch.testing.assert_close(a[finite], b[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mixers", ["spectral-gated", "spectral,local:8"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_generate_strategy_cached_equals_uncached(mixers, strategy):
    model = native(mixers)
    ids = torch.randint(1, V, (2, 7))
    assert_same_generation(model, ids, **STRATEGIES[strategy])


@pytest.mark.parametrize("strategy", ["greedy", "beams"])
def test_a_left_padded_batch_generates_as_its_rows_alone(strategy):
    model = native("spectral-gated")
    ids = torch.randint(1, V, (2, 7))
    mask = torch.ones_like(ids)
    ids[1, :3], mask[1, :3] = 0, 0                               # row 1: 3 pads on the left
    assert_same_generation(model, ids, mask, **STRATEGIES[strategy])
    alone = generate(model, ids[1:, 3:], True, **STRATEGIES[strategy]).sequences
    assert torch.equal(generate(model, ids, True, mask, **STRATEGIES[strategy]).sequences[1, 3:], alone[0])


@pytest.mark.parametrize("implementation", ["static", "sliding_window"])
def test_caches_it_cannot_follow_are_refused_by_name(implementation):
    model = native()
    with pytest.raises(ValueError, match=f"cache_implementation='{implementation}' is not supported"):
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, cache_implementation=implementation)


def test_assisted_decoding_is_refused_by_name():
    model = native()
    with pytest.raises(ValueError, match="prompt_lookup_num_tokens .assisted decoding. is not supported"):
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=2, prompt_lookup_num_tokens=2)


def test_generation_past_the_context_is_refused_up_front_with_a_frequency_filter():
    model = native()
    with pytest.raises(ValueError, match="63 tokens .prompt and new. exceed the context 48"):
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=60, do_sample=False)


def test_a_length_free_model_generates_past_its_context_exactly():
    """Implicit filter, no positions: the cache is sized for the whole output; the tokens equal
    an uncached run of the same weights in a model built for the longer context."""
    import dataclasses

    from specmix.model import SpecMixLM
    model = native("spectral-gated", filter="implicit")
    ids = torch.randint(1, V, (1, 10), generator=torch.Generator().manual_seed(2))
    out = model.generate(ids, max_new_tokens=60, do_sample=False)
    assert out.shape == (1, 70)
    longer = SpecMixLM(dataclasses.replace(model.config.to_lm_config(), context=70)).eval()
    longer.load_state_dict(model.model.state_dict())
    expected = longer.generate(ids, 60, temperature=1.0, top_k=1, use_cache=False)
    assert torch.equal(out, expected)


def test_padding_with_learned_positions_is_refused():
    model = native("spectral,attention", pos_emb="learned")
    with pytest.raises(ValueError, match="padded batches need a model without learned positions"):
        model(torch.tensor([[0, 1, 2]]), attention_mask=torch.tensor([[0, 1, 1]]))


def train_with(model, tmp_path, batch: int, accumulation: int, steps: int):
    from transformers import Trainer, TrainingArguments
    torch.manual_seed(0)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, V, (16, 12))]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accumulation, learning_rate=1e-3, report_to=[],
                             use_cpu=True, save_strategy="no", seed=0, data_seed=0, lr_scheduler_type="constant")
    return Trainer(model=model, args=args, train_dataset=data).train()


def test_trainer_with_gradient_accumulation_equals_one_larger_batch(tmp_path):
    big, acc = native().train(), native().train()
    train_with(big, tmp_path / "big", batch=4, accumulation=1, steps=1)
    train_with(acc, tmp_path / "acc", batch=2, accumulation=2, steps=1)
    for (name, a), b in zip(big.named_parameters(), acc.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_trainer_trains_the_native_model_four_steps_with_accumulation(tmp_path):
    model = native().train()
    before = [p.detach().clone() for p in model.parameters()]
    result = train_with(model, tmp_path, batch=2, accumulation=2, steps=4)
    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


TASK_MODELS = {
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=V, n_positions=32, bos_token_id=1, eos_token_id=None)),
    "llama": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=V, max_position_embeddings=32, bos_token_id=1, eos_token_id=None, pad_token_id=0)),
    "bert": lambda: transformers.BertForMaskedLM(transformers.BertConfig(
        num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4, vocab_size=V,
        max_position_embeddings=32)),
}


@pytest.mark.parametrize("family", TASK_MODELS)
def test_trainer_trains_a_swapped_model(tmp_path, family):
    from specmix import swap_attention
    torch.manual_seed(0)
    model = TASK_MODELS[family]()
    swap_attention(model, max_len=32, gated=True)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_with(model, tmp_path, batch=2, accumulation=2, steps=4)
    assert result.global_step == 4 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
