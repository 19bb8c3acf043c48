"""Cached decoding: ConvCache's fold arithmetic, each mixer's prefill/step, and the model's loop.

Every path is checked against the full forward (with folds forced every few tokens)."""
import pytest
import torch

from specmix import Attention, Block, ConvCache, SpectralMixer, TaylorSpectralMixer
from specmix.functional import fft_conv_ref
from specmix.model import SpecMixLM

from helpers import assert_close, tiny_lm

PATTERNS = ["spectral", "spectral-gated", "attention", "local:8", "spectral,local:8,spectral-gated"]


@pytest.mark.parametrize("min_block", [1, 3, 64])
@pytest.mark.parametrize("prompt", [1, 7])
def test_conv_cache_equals_the_direct_convolution(min_block, prompt, monkeypatch):
    """Exact at every step, through near folds and far refolds (both levels exercised)."""
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", min_block)
    kernel = torch.randn(3, 40, dtype=torch.float64)
    u = torch.randn(2, 40, 3, dtype=torch.float64)                # (B, N, C)
    full = fft_conv_ref(u, kernel)                                # (B, N, C)
    y, cache = ConvCache.prefill(kernel, u[:, :prompt].transpose(1, 2), 40)
    assert_close(y, full[:, :prompt].transpose(1, 2), what="prefill")
    far_ends, near_folds = {cache.far_end}, {cache.folded}
    for t in range(prompt, 40):
        assert_close(cache.step(u[:, t]), full[:, t], what=f"step {t}")
        far_ends.add(cache.far_end)
        near_folds.add(cache.folded)
    if min_block < 64:
        assert len(far_ends) >= 2 and len(near_folds) > len(far_ends), (far_ends, near_folds)
    with pytest.raises(ValueError, match="exceeds the cache's max_len 40"):
        cache.step(u[:, 0])


MIXERS = {
    "spectral": lambda: SpectralMixer(16, 30),
    "spectral-gated": lambda: SpectralMixer(16, 30, gated=True),
    "spectral-gated-heads": lambda: SpectralMixer(16, 30, gated=True, head_dim=4),
    "spectral-implicit": lambda: SpectralMixer(16, 30, gated=True, filter="implicit"),
    "spectral-taylor": lambda: TaylorSpectralMixer(16, 30, head_dim=4),
    "attention": lambda: Attention(16, 4),
    "local": lambda: Attention(16, 2, window=5),
}


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("wrap", ["mixer", "block"])
def test_prefill_then_step_equals_forward(name, wrap, monkeypatch):
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", 2)
    layer = MIXERS[name]().double()
    if wrap == "block":
        layer = Block(16, layer).double()
    x = torch.randn(2, 30, 16, dtype=torch.float64)
    with torch.no_grad():
        full = layer(x)
        y, state = layer.prefill(x[:, :9], 30)
        assert_close(y, full[:, :9], what="prefill")
        for t in range(9, 30):
            assert_close(layer.step(x[:, t], state), full[:, t], what=f"step {t}")


def test_prefill_needs_a_causal_mixer_and_room():
    with pytest.raises(ValueError, match="needs a causal mixer"):
        SpectralMixer(16, 30, causal=False).prefill(torch.randn(1, 4, 16), 30)
    with pytest.raises(ValueError, match="needs a causal mixer"):
        Attention(16, 2, causal=False).prefill(torch.randn(1, 4, 16), 30)
    with pytest.raises(ValueError, match="exceeds max_len=3"):
        Attention(16, 2).prefill(torch.randn(1, 4, 16), 3)


@pytest.mark.parametrize("mixers,filt,head_dim,min_block", [(p, "frequency", 1, 64) for p in PATTERNS] + [
    ("spectral-gated", "implicit", 1, 64), ("spectral", "implicit", 1, 64),
    ("spectral-gated", "frequency", 4, 64),
    ("spectral-gated", "implicit", 1, 1), ("spectral,spectral-gated", "frequency", 8, 2)])
def test_cached_decoding_matches_full_forward(mixers, filt, head_dim, min_block, monkeypatch):
    """min_block 1-2: the spectral cache folds its past into the FFT part every few tokens."""
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", min_block)
    model = tiny_lm(mixers, filter=filt, head_dim=head_dim)
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
    model = tiny_lm("spectral,local:8")
    out = model.generate(torch.zeros(1, 90, dtype=torch.long), 20, top_k=3)
    assert out.shape == (1, 110)


def test_decoding_outputs_are_ordinary_tensors():
    """Decoding runs under inference_mode; what decode/generate return still trains."""
    model = tiny_lm("spectral-gated,attention")
    prompt = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(2))
    out, logits = model.decode(prompt, 5, pick=lambda logits: logits.argmax(-1))
    sampled = model.generate(prompt, 5, top_k=2, generator=torch.Generator().manual_seed(3))
    assert not (out.is_inference() or logits.is_inference() or sampled.is_inference())
    _, loss = model(sampled[:, :-1], sampled[:, 1:])
    loss.backward()                                   # the embedding saves the generated indices
    assert model.tok_emb.weight.grad is not None


def test_prefill_and_step_project_each_layer_once(monkeypatch):
    """One input projection per layer: prefill shares forward's streams (``project_in``), a
    spectral step has its own one-token form that applies the projection's weight directly."""
    model = tiny_lm("spectral,spectral-gated,attention,local:8")
    calls = []
    for i, block in enumerate(model.blocks):
        original = block.mixer.project_in

        def counted(x, original=original, i=i):
            calls.append(i)
            return original(x)
        block.mixer.project_in = counted
    logits, states = model.prefill(torch.randint(0, 11, (2, 12)))
    assert sorted(calls) == [0, 1, 2, 3]
    calls.clear()
    weights = {id(block.mixer.in_proj.weight): i for i, block in enumerate(model.blocks[:2])}
    linear = torch.nn.functional.linear

    def counted_linear(x, weight, *args):                         # the spectral layers' steps
        if id(weight) in weights:
            calls.append(weights[id(weight)])
        return linear(x, weight, *args)
    monkeypatch.setattr(torch.nn.functional, "linear", counted_linear)
    model.step(logits.argmax(-1), 12, states)
    assert sorted(calls) == [0, 1, 2, 3]


def test_model_decoding_has_no_mixer_specific_code():
    import inspect
    source = inspect.getsource(SpecMixLM.prefill) + inspect.getsource(SpecMixLM.step)
    for word in ("SpectralMixer", "Attention", "isinstance", "ConvCache", "conv", "keys"):
        assert word not in source, word
