"""Garbage where it must not matter, and edge-case inputs: NaN / inf at padded positions never
reach real outputs; empty batches and sequences give empty outputs; wrong dtypes and token ids
are clear errors."""
import pytest
import torch

from specmix import Attention, Block, SpectralMixer, TaylorSpectralMixer, check_finite
from specmix.hf import HFSpectralAttention

from helpers import tiny_lm

D = 16
MIXERS = {
    "spectral": lambda: SpectralMixer(D, 32),
    "spectral-gated": lambda: SpectralMixer(D, 32, gated=True),
    "gated-heads": lambda: SpectralMixer(D, 32, gated=True, head_dim=2),
    "implicit": lambda: SpectralMixer(D, 32, gated=True, filter="implicit"),
    "bidirectional": lambda: SpectralMixer(D, 32, causal=False, gated=True),
    "taylor": lambda: TaylorSpectralMixer(D, 32, head_dim=4),
    "attention": lambda: Attention(D, 2),
    "local": lambda: Attention(D, 2, window=4),
    "block": lambda: Block(D, SpectralMixer(D, 32, gated=True)),
}


def padded_pair():
    x = torch.randn(3, 12, D)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[0, 8:] = False
    mask[2, 5:] = False
    clean = torch.where(mask[..., None], x, 0.0)
    dirty = clean.clone()
    dirty[0, 8:] = float("nan")
    dirty[2, 5] = float("inf")
    dirty[2, 6:] = -float("inf")
    return clean, dirty, mask


@pytest.mark.parametrize("kind", MIXERS)
def test_nan_and_inf_at_padded_positions_leave_real_outputs_unchanged(kind):
    torch.manual_seed(0)
    layer = MIXERS[kind]().eval()
    clean, dirty, mask = padded_pair()
    expected, got = layer(clean, mask), layer(dirty, mask)
    assert torch.isfinite(got[mask]).all()
    assert torch.equal(got[mask], expected[mask]), kind


@pytest.mark.parametrize("kind", ["spectral-gated", "attention", "taylor"])
def test_padded_garbage_has_no_effect_on_gradients(kind):
    torch.manual_seed(0)
    layer = MIXERS[kind]()
    clean, dirty, mask = padded_pair()
    grads = []
    for x in (clean, dirty):
        layer.zero_grad()
        layer(x, mask)[mask].sum().backward()
        grads.append([p.grad.clone() for p in layer.parameters()])
    for a, b in zip(*grads):
        assert torch.isfinite(b).all() and torch.equal(a, b)


def test_decoding_steps_ignore_garbage_at_padded_steps():
    torch.manual_seed(0)
    mixer = SpectralMixer(D, 32, gated=True).eval()
    x = torch.randn(2, 6, D)
    with torch.no_grad():
        outs = []
        for fill in (0.0, float("nan")):
            _, state = mixer.prefill(x[:, :4], 32)
            pad = torch.full((2, D), fill)
            off = torch.tensor([False, True])                   # row 0 pads this step
            mixer.step(torch.where(off[:, None], x[:, 4], pad), state, off)
            outs.append(mixer.step(x[:, 5], state))
    assert torch.equal(outs[0], outs[1])


def test_hf_wrapper_ignores_garbage_at_padded_positions():
    torch.manual_seed(0)
    layer = HFSpectralAttention(D, max_len=32, causal=True, layer_idx=0, replaces="test", gated=True).eval()
    clean, dirty, mask = padded_pair()
    hf_mask = mask.long()                                      # HF's 2D mask: 1 = real
    expected, got = layer(clean, attention_mask=hf_mask)[0], layer(dirty, attention_mask=hf_mask)[0]
    assert torch.equal(got[mask], expected[mask])


def test_check_finite_names_the_first_bad_real_position():
    x = torch.zeros(2, 5, 3)
    x[1, 3, 0] = float("nan")
    check_finite(x, torch.tensor([[True] * 5, [True, True, True, False, False]]))   # padded: fine
    with pytest.raises(ValueError, match=r"batch 1, position 3"):
        check_finite(x)


@pytest.mark.parametrize("kind", MIXERS)
@pytest.mark.parametrize("shape", [(0, 10, D), (2, 0, D)])
def test_empty_batches_and_sequences_give_empty_outputs(kind, shape):
    layer = MIXERS[kind]()
    x = torch.randn(shape, requires_grad=True)
    y = layer(x)
    assert y.shape == shape
    y.sum().backward()                                      # and the backward runs
    assert x.grad.shape == shape


def test_empty_lm_inputs():
    model = tiny_lm("spectral-gated")
    assert model(torch.zeros(0, 5, dtype=torch.long))[0].shape == (0, 5, 11)
    assert model(torch.zeros(2, 0, dtype=torch.long))[0].shape == (2, 0, 11)


@pytest.mark.parametrize("kind", ["spectral", "attention", "taylor"])
def test_a_dtype_mismatch_is_a_clear_error_and_autocast_still_works(kind):
    layer = MIXERS[kind]()
    with pytest.raises(TypeError, match=r"dtype torch.float16 but the parameters are torch.float32"):
        layer(torch.randn(2, 8, D, dtype=torch.float16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 8, D, dtype=torch.bfloat16)).shape == (2, 8, D)


def test_token_ids_outside_the_vocabulary_are_a_clear_error():
    model = tiny_lm("spectral")
    with pytest.raises(ValueError, match=r"token ids in \[0, 11\]; the vocabulary is 0 .. 10"):
        model(torch.tensor([[0, 11]]))
    with pytest.raises(ValueError, match=r"the vocabulary is 0 .. 10"):
        model(torch.tensor([[-1, 3]]))


def test_generating_zero_tokens_returns_the_prompt():
    model = tiny_lm("spectral-gated")
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(model.generate(idx, 0), idx)
    assert torch.equal(model.generate(idx, 0, use_cache=False), idx)
    with pytest.raises(ValueError, match="new_tokens must be >= 0"):
        model.generate(idx, -1)
