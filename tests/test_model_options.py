"""LMConfig's training-recipe options: relu2 MLPs, the logit soft-cap, zero-initialised output
projections; all off by default, where models build and run as before."""
import dataclasses
import json
import pathlib

import pytest
import torch

from specmix import MLP, LMConfig, SpecMixLM
from specmix.validation import UsageError

from helpers import assert_close

BASE = LMConfig(vocab_size=11, mixers=("spectral-gated", "attention"), n_layers=2, d_model=32, n_heads=4, context=24)
RESULTS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def build(**kw) -> SpecMixLM:
    torch.manual_seed(0)
    return SpecMixLM(dataclasses.replace(BASE, **kw)).eval()


def test_relu2_mlp_and_its_one_token_step():
    torch.manual_seed(0)
    mlp = MLP(8, 16, activation="relu2")
    x = torch.randn(3, 8)
    assert_close(mlp(x), mlp.proj(torch.relu(mlp.fc(x)) ** 2))
    assert_close(mlp.step(x), mlp(x))
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(8, 16, activation="swish")


def test_logit_softcap_bounds_the_logits_everywhere():
    model = build(logit_softcap=2.0)
    idx = torch.randint(0, 11, (2, 20))
    with torch.no_grad():
        raw = model.head(model.norm(model.embed(idx)))
        assert_close(model.logits(model.norm(model.embed(idx))), 2.0 * torch.tanh(raw / 2.0))
        big = build(logit_softcap=2.0)
        for p in big.parameters():
            p.mul_(30)                                     # raw logits far beyond the cap
        logits = big(idx)[0]
        assert logits.abs().max() <= 2.0 and logits.abs().max() > 1.9
    model = build(logit_softcap=0.05)                       # the cap shapes every logit here
    cached = model.generate(idx[:, :8], 6, temperature=1.0, top_k=1)
    plain = model.generate(idx[:, :8], 6, temperature=1.0, top_k=1, use_cache=False)
    assert torch.equal(cached, plain)
    with pytest.raises(UsageError, match="--logit-softcap must be > 0"):
        dataclasses.replace(BASE, logit_softcap=0.0)


def test_zero_init_out_makes_every_block_start_as_the_identity():
    model = build(zero_init_out=True)
    x = torch.randn(2, 16, 32)
    for block in model.blocks:
        assert torch.equal(block(x), x)


def test_options_off_by_default_and_old_configs_load_unchanged():
    assert (BASE.mlp, BASE.logit_softcap, BASE.zero_init_out) == ("gelu", None, False)
    explicit = build(mlp="gelu", logit_softcap=None, zero_init_out=False)
    idx = torch.randint(0, 11, (2, 20))
    assert torch.equal(build()(idx)[0], explicit(idx)[0])
    for path in RESULTS.glob("*/config.json"):                        # records written before these fields
        record = json.loads(path.read_text())["model"]
        assert "mlp" not in record and LMConfig.from_dict(record).mlp == "gelu"


def test_attn_dropout_sets_the_attention_weights_dropout_alone():
    torch.manual_seed(0)
    default = SpecMixLM(dataclasses.replace(BASE, dropout=0.2))
    own = SpecMixLM(dataclasses.replace(BASE, dropout=0.2, attn_dropout=0.0))
    def attention_dropouts(model):
        return [b.mixer.dropout for b in model.blocks if type(b.mixer).__name__ == "Attention"]
    assert attention_dropouts(default) == [0.2] and attention_dropouts(own) == [0.0]
    assert own.drop.p == 0.2 and all(b.drop.p == 0.2 for b in own.blocks)      # the residual branches keep it
    idx = torch.randint(0, 11, (2, 20))
    torch.manual_seed(1)
    a = SpecMixLM(dataclasses.replace(BASE, dropout=0.2)).train()(idx)[0]
    torch.manual_seed(1)
    b = SpecMixLM(dataclasses.replace(BASE, dropout=0.2, attn_dropout=None)).train()(idx)[0]
    assert torch.equal(a, b)                                               # None = --dropout, bit for bit
    with pytest.raises(UsageError, match="--attn-dropout"):
        dataclasses.replace(BASE, attn_dropout=1.0)
