import pytest
import torch

from specmix.model import LMConfig, SpecMixLM
from specmix.validation import UsageError

PATTERNS = ["spectral", "spectral-gated", "attention", "local:8", "spectral,local:8,spectral-gated"]


def tiny(mixers="spectral", **kw) -> SpecMixLM:
    n_layers = len(mixers.split(",")) if "," in mixers else 2
    cfg = LMConfig(vocab_size=11, d_model=32, n_layers=n_layers, n_heads=4, context=96,
                   mixers=mixers, **kw)
    torch.manual_seed(0)
    return SpecMixLM(cfg).eval()


@pytest.mark.parametrize("mixers,filt,head_dim,min_block", [(p, "frequency", 1, 64) for p in PATTERNS] + [
    ("spectral-gated", "implicit", 1, 64), ("spectral", "implicit", 1, 64),
    ("spectral-gated", "frequency", 4, 64),
    ("spectral-gated", "implicit", 1, 1), ("spectral,spectral-gated", "frequency", 8, 2)])
def test_cached_decoding_matches_full_forward(mixers, filt, head_dim, min_block, monkeypatch):
    """min_block 1-2: the spectral cache folds its past into the FFT part every few tokens."""
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", min_block)
    model = tiny(mixers, filter=filt, head_dim=head_dim)
    prompt = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    out, cached = model.decode(prompt, 64, pick=lambda logits: logits.argmax(-1))
    assert out.shape == (2, 74) and cached.shape == (2, 64, 11)
    with torch.no_grad():
        full = model(out[:, :-1])[0][:, 9:]                     # logits that chose tokens 10..73
    assert (full - cached).abs().max().item() < 1e-4
    # generate with and without the cache agree (top-k 1 is greedy)
    a = model.generate(prompt, 20, top_k=1, use_cache=True)
    b = model.generate(prompt, 20, top_k=1, use_cache=False)
    assert torch.equal(a, b)


def test_generation_past_the_context_crops():
    model = tiny("spectral,local:8")
    out = model.generate(torch.zeros(1, 90, dtype=torch.long), 20, top_k=3)
    assert out.shape == (1, 110)


@pytest.mark.parametrize("mixers", PATTERNS)
def test_full_model_is_causal(mixers):
    model = tiny(mixers).double()
    idx = torch.randint(0, 11, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(idx)[0]
        for t in (0, 13, 48):
            changed = idx.clone()
            changed[:, t + 1:] = (changed[:, t + 1:] + 1) % 11
            diff = (model(changed)[0][:, : t + 1] - base[:, : t + 1]).abs().max().item()
            assert diff < 1e-6, f"{mixers}: logits at <= {t} changed by {diff}"


def test_forward_loss_and_params():
    model = tiny("spectral-gated")
    idx = torch.randint(0, 11, (3, 40))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 40, 11) and loss.ndim == 0
    assert model.num_params() == sum(p.numel() for p in model.parameters())
    assert model.head.weight is model.tok_emb.weight              # tied
    assert model.pos_emb is None and tiny("attention").pos_emb is not None


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
    model = tiny()
    with pytest.raises(ValueError, match="exceeds context=96"):
        model(torch.zeros(1, 97, dtype=torch.long))
    with pytest.raises(ValueError, match="int64 tensor of shape"):
        model(torch.zeros(1, 5))
