import pytest
import torch

from specmix.model import LMConfig, SpecMixLM
from specmix.validation import UsageError

from helpers import tiny_lm

PATTERNS = ["spectral", "spectral-gated", "attention", "local:8", "spectral,local:8,spectral-gated"]


@pytest.mark.parametrize("mixers", PATTERNS)
def test_full_model_is_causal(mixers):
    model = tiny_lm(mixers).double()
    idx = torch.randint(0, 11, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(idx)[0]
        for t in (0, 13, 48):
            changed = idx.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 11
            diff = (model(changed)[0][:, : t + 1] - base[:, : t + 1]).abs().max().item()
            assert diff < 1e-6, f"{mixers}: logits at <= {t} changed by {diff}"


def test_forward_loss_and_params():
    model = tiny_lm("spectral-gated")
    idx = torch.randint(0, 11, (3, 40))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 40, 11) and loss.ndim == 0
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    assert model.head.weight is model.tok_emb.weight              # tied
    assert model.pos_emb is None and tiny_lm("attention").pos_emb is not None


@pytest.mark.parametrize("kwargs,words", [
    (dict(mixers="spectral,attention"), "2 kinds given for n_layers=3"),
    (dict(mixers="fourier"), "unknown kind 'fourier'"),
    (dict(mixers="local:0"), "unknown kind"),
    (dict(pos_emb="rotary"), "--pos-emb"),
])
def test_bad_config_is_refused_on_construction(kwargs, words):
    with pytest.raises(UsageError, match=words):
        LMConfig(vocab_size=5, d_model=16, n_layers=3, n_heads=2, context=8, **kwargs)


def test_bad_idx():
    model = tiny_lm()
    with pytest.raises(ValueError, match="exceeds context=96"):
        model(torch.zeros(1, 97, dtype=torch.long))
    with pytest.raises(ValueError, match="int64 tensor of shape"):
        model(torch.zeros(1, 5))


def test_config_is_frozen_and_replace_validates():
    import dataclasses
    cfg = LMConfig(vocab_size=11, mixers="spectral,local:8", n_layers=2)
    assert cfg.mixers == ("spectral", "local:8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.context = 512
    with pytest.raises(UsageError, match="--head-dim 3 must divide"):
        dataclasses.replace(cfg, head_dim=3)
    with pytest.raises(UsageError, match="vocab_size is None"):
        SpecMixLM(LMConfig())


def test_configs_of_older_releases_load():
    """Before typed configs: mixers as a comma string, a `gated` flag beside the kinds."""
    old = {"vocab_size": 11, "d_model": 32, "n_layers": 2, "n_heads": 4, "context": 96,
           "mixers": "spectral,attention", "filter": "frequency", "gated": True, "head_dim": 1,
           "mlp_ratio": 4.0, "dropout": 0.0, "tie_embeddings": True, "norm": "layer", "pos_emb": "auto"}
    cfg = LMConfig.from_dict(old)
    assert cfg.mixers == ("spectral-gated", "attention")
    assert LMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UsageError, match="unknown fields \\['colour'\\]"):
        LMConfig.from_dict(dict(old, colour="blue"))
