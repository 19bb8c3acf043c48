"""swap_attention in Hugging Face transformers models built from small configs (no downloads)."""
import pytest
import torch

transformers = pytest.importorskip("transformers")

from specmix import swap_attention  # noqa: E402
from specmix.hf import HFSpectralAttention, token_mask  # noqa: E402

V = 50


def gpt2():
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=V, n_positions=96,
                                  bos_token_id=1, eos_token_id=None, pad_token_id=0, initializer_range=0.3)
    return transformers.GPT2LMHeadModel(cfg)


def llama():
    cfg = transformers.LlamaConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=V, max_position_embeddings=96, bos_token_id=1,
                                   eos_token_id=None, pad_token_id=0, initializer_range=0.3)
    return transformers.LlamaForCausalLM(cfg)


def bert():
    cfg = transformers.BertConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                  vocab_size=V, max_position_embeddings=96, hidden_dropout_prob=0.0)
    return transformers.BertModel(cfg)


DECODERS = {"gpt2": (gpt2, ["transformer.h.0.attn", "transformer.h.1.attn"]),
            "llama": (llama, ["model.layers.0.self_attn", "model.layers.1.self_attn"])}


def swapped(make, **kw):
    torch.manual_seed(0)
    model = make()
    names = swap_attention(model, max_len=96, **kw)
    return model.eval(), names


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_swap_forward_loss_backward(name):
    make, expected = DECODERS[name]
    model, names = swapped(make, gated=True)
    assert names == expected
    assert all(isinstance(model.get_submodule(n), HFSpectralAttention) for n in names)
    ids = torch.randint(1, V, (2, 17))
    out = model.train()(ids, labels=ids)
    assert out.logits.shape == (2, 17, V) and torch.isfinite(out.loss)
    out.loss.backward()
    mixer = model.get_submodule(names[0]).mixer
    assert all(p.grad is not None for p in mixer.parameters())


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_is_causal_float64(name):
    model, _ = swapped(DECODERS[name][0])
    model = model.double()
    ids = torch.randint(1, V, (2, 30), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = model(ids).logits
        for t in (0, 11, 28):
            changed = ids.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 7) % V
            diff = (model(changed).logits[:, : t + 1] - base[:, : t + 1]).abs().max().item()
            assert diff < 1e-10, f"{name}: logits at <= {t} moved by {diff}"


def _generate(model, ids, mask, use_cache):
    return model.generate(ids, attention_mask=mask, max_new_tokens=24, do_sample=False, use_cache=use_cache,
                          output_scores=True, return_dict_in_generate=True)


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("gated", [False, True])
def test_cached_generate_equals_uncached(name, gated, monkeypatch):
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", 4)       # fold every few tokens
    model, _ = swapped(DECODERS[name][0], gated=gated)
    gen = torch.Generator().manual_seed(4)
    one = torch.randint(1, V, (1, 9), generator=gen)
    three = torch.randint(1, V, (3, 11), generator=gen)
    left = torch.ones(3, 11, dtype=torch.long)
    left[1, :3] = 0
    left[2, :6] = 0                                                   # a left-padded batch
    three[left == 0] = 0
    for ids, mask in ((one, torch.ones_like(one)), (three, left)):
        cached, full = _generate(model, ids, mask, True), _generate(model, ids, mask, False)
        assert torch.equal(cached.sequences, full.sequences)
        assert len(set(cached.sequences[0, ids.shape[1]:].tolist())) > 3     # not one repeated token
        worst = max((a - b).abs().max().item() for a, b in zip(cached.scores, full.scores))
        assert worst < 1e-4, worst


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_padding_never_changes_real_positions(name):
    model, _ = swapped(DECODERS[name][0], gated=True)
    ids = torch.randint(1, V, (2, 12))
    mask = torch.ones(2, 16, dtype=torch.long)
    with torch.no_grad():
        for side in ("right", "left"):
            junk = torch.randint(1, V, (2, 4))
            padded = torch.cat([ids, junk] if side == "right" else [junk, ids], dim=1)
            m = mask.clone()
            real = slice(0, 12) if side == "right" else slice(4, 16)
            m[:, 12:] = 0 if side == "right" else 1
            m[:, :4] = 1 if side == "right" else 0
            position_ids = (m.cumsum(-1) - 1).clamp_min(0)
            out = model(padded, attention_mask=m, position_ids=position_ids).logits[:, real]
            other = padded.clone()
            other[m == 0] = (other[m == 0] + 5) % V
            again = model(other, attention_mask=m, position_ids=position_ids).logits[:, real]
            assert (out - again).abs().max().item() < 1e-5, side
            alone = model(ids).logits
            assert (out - alone).abs().max().item() < 1e-4, side


def test_bert_swap_and_padding_invariance():
    model, names = swapped(bert)
    assert names == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert not model.get_submodule(names[0]).is_causal
    ids = torch.randint(1, V, (3, 14))
    mask = (torch.rand(3, 14, generator=torch.Generator().manual_seed(2)) > 0.3).long()
    mask[:, 0] = 1
    with torch.no_grad():
        out = model(ids, attention_mask=mask).last_hidden_state
        other = ids.clone()
        other[mask == 0] = (other[mask == 0] + 9) % V                 # any padding: contents never matter
        again = model(other, attention_mask=mask).last_hidden_state
        assert (out - again)[mask.bool()].abs().max().item() < 1e-5
        right = torch.cat([ids[:, :10], torch.randint(1, V, (3, 4))], dim=1)
        right_mask = torch.ones(3, 14, dtype=torch.long)
        right_mask[:, 10:] = 0
        alone = model(ids[:, :10]).last_hidden_state
        assert (model(right, attention_mask=right_mask).last_hidden_state[:, :10] - alone).abs().max() < 1e-5
    model.train()(ids, attention_mask=mask).last_hidden_state.square().mean().backward()


def test_nothing_to_swap_and_unsupported_names_are_clear_errors():
    with pytest.raises(ValueError, match="found no self-attention to replace in Sequential.*GPT2Attention"):
        swap_attention(torch.nn.Sequential(torch.nn.Linear(4, 4)), max_len=8)
    assert swap_attention(torch.nn.Sequential(torch.nn.Linear(4, 4)), max_len=8, missing_ok=True) == []
    model = gpt2()
    with pytest.raises(ValueError, match=r"cannot replace \['transformer.h.0.mlp \(GPT2MLP\)'\]; supported"):
        swap_attention(model, max_len=96, names=["transformer.h.0.mlp"])
    with pytest.raises(ValueError, match="no modules named"):
        swap_attention(model, max_len=96, names=["transformer.h.9.attn"])


@pytest.mark.parametrize("name", DECODERS)
@pytest.mark.parametrize("strategy", [dict(num_beams=3, do_sample=False),
                                      dict(do_sample=True, num_return_sequences=2, top_k=8),
                                      dict(num_beams=2, num_return_sequences=2, do_sample=False)])
def test_beam_search_and_several_returns_equal_uncached(name, strategy, monkeypatch):
    """Each swapped layer's cache entry reorders its spectral state with HF's placeholders."""
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", 4)
    model, _ = swapped(DECODERS[name][0], gated=True)
    ids = torch.randint(1, V, (2, 9), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0                                                    # left padding too
    runs = []
    for use_cache in (True, False):
        torch.manual_seed(3)
        runs.append(model.generate(ids, attention_mask=mask, max_new_tokens=12, use_cache=use_cache,
                                   pad_token_id=0, output_scores=True, return_dict_in_generate=True, **strategy))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    for a, b in zip(runs[0].scores, runs[1].scores):
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a)) and (a[finite] - b[finite]).abs().max() < 1e-4


def test_assisted_decoding_is_refused_by_name():
    model, _ = swapped(gpt2)
    with pytest.raises(ValueError, match="requires a cache that can be cropped"):
        model.generate(torch.randint(1, V, (1, 8)), max_new_tokens=6, do_sample=False, prompt_lookup_num_tokens=2)


def test_token_mask_reads_2d_bool_and_additive_masks():
    real = torch.tensor([[False, True, True], [True, True, True]])
    allowed = real[:, None, None, :] & torch.ones(3, 3, dtype=torch.bool).tril()   # (B, 1, Q, K)
    additive = torch.zeros(2, 1, 3, 3).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (real.long(), allowed, additive):
        assert torch.equal(token_mask(mask, 3), real)
    assert token_mask(allowed, 1) is None                 # the last position is real in both rows
    assert token_mask(torch.ones(2, 3, dtype=torch.long), 3) is None


@pytest.mark.parametrize("family", DECODERS)
def test_the_documented_reload_recipe_restores_a_swapped_model(tmp_path, family):
    """docs/huggingface.md: save_pretrained, rebuild from the config, swap the same way, load."""
    from safetensors.torch import load_model
    make = DECODERS[family][0]
    model, _ = swapped(make, gated=True)
    model.save_pretrained(tmp_path)
    torch.manual_seed(1)                                    # a different init, overwritten by the load
    restored = type(model)(type(model.config).from_pretrained(tmp_path))
    swap_attention(restored, max_len=96, gated=True)
    load_model(restored, str(tmp_path / "model.safetensors"))
    ids = torch.randint(1, V, (2, 12))
    assert torch.equal(model(ids).logits, restored.eval()(ids).logits)
