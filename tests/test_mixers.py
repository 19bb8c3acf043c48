import pytest
import torch

import specmix
from specmix import Attention, Block, SpectralMixer
from specmix.functional import fft_conv_ref

from helpers import assert_causal, assert_close, assert_same_grads

D, MAX_LEN = 16, 48


def spectral(causal=True, **kw):
    return SpectralMixer(D, MAX_LEN, causal=causal, **kw)


MIXERS = {
    "spectral": lambda causal: spectral(causal),
    "spectral-implicit": lambda causal: spectral(causal, filter="implicit"),
    "spectral-gated": lambda causal: spectral(causal, gated=True),
    "spectral-implicit-gated": lambda causal: spectral(causal, filter="implicit", gated=True),
    "spectral-gated-heads": lambda causal: spectral(causal, gated=True, head_dim=4),
    "attention": lambda causal: Attention(D, 4, causal=causal),
    "local": lambda causal: Attention(D, 2, causal=causal, window=5),
}


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("seed", [0, 1])
def test_causal_mixers_and_blocks_are_causal(name, seed):
    torch.manual_seed(seed)
    mixer = MIXERS[name](True).double()
    x = torch.randn(2, 40, D, dtype=torch.float64)
    assert_causal(mixer, x, times=(0, 3, 17, 38))
    block = Block(D, MIXERS[name](True)).double()
    assert_causal(block, x, times=(0, 3, 17, 38))


@pytest.mark.parametrize("name", MIXERS)
def test_bidirectional_mixers_see_the_future(name):
    mixer = MIXERS[name](False).double()
    x = torch.randn(1, 20, D, dtype=torch.float64)
    with pytest.raises(AssertionError):
        assert_causal(mixer, x, times=(3,))


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("causal", [True, False])
def test_padding_does_not_change_real_positions(name, causal):
    mixer = MIXERS[name](causal).double()
    n_real, n_pad = 23, 9
    x = torch.randn(2, n_real, D, dtype=torch.float64)
    alone = mixer(x)
    junk = torch.randn(2, n_pad, D, dtype=torch.float64) * 5
    sides = ["right"] if causal else ["right", "left"]
    for side in sides:
        padded = torch.cat([x, junk] if side == "right" else [junk, x], dim=1)
        mask = torch.zeros(2, n_real + n_pad, dtype=torch.bool)
        real = slice(0, n_real) if side == "right" else slice(n_pad, None)
        mask[:, real] = True
        out = mixer(padded, mask)
        assert torch.allclose(out[:, real], alone, atol=1e-10), side
        assert (out[:, ~mask[0]] == 0).all()
        other = padded.clone()
        other[:, ~mask[0]] = torch.randn_like(other[:, ~mask[0]])
        assert torch.allclose(mixer(other, mask)[:, real], out[:, real], atol=1e-10)


@pytest.mark.parametrize("name", MIXERS)
def test_bidirectional_pad_contents_never_matter(name):
    mixer = MIXERS[name](False).double()
    x = torch.randn(3, 30, D, dtype=torch.float64)
    mask = torch.rand(3, 30) > 0.4
    mask[:, 0] = True
    y = mixer(x, mask)
    x2 = torch.where(mask[..., None], x, torch.randn_like(x) * 7)
    assert torch.allclose(mixer(x2, mask), y, atol=1e-10)


@pytest.mark.parametrize("name", MIXERS)
def test_mixers_train_and_keep_shape(name):
    mixer = MIXERS[name](True)
    x = torch.randn(2, 31, D, requires_grad=True)
    y = mixer(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in mixer.parameters())


def test_autocast_bf16_runs_and_casts_back():
    mixer = spectral(gated=True)
    x = torch.randn(2, 20, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()
    assert torch.allclose(y.float(), mixer(x), atol=0.1)


def test_implicit_filter_runs_beyond_max_len_frequency_does_not():
    x = torch.randn(1, MAX_LEN + 10, D)
    assert spectral(filter="implicit")(x).shape == x.shape
    with pytest.raises(ValueError, match="exceeds max_len"):
        spectral()(x)


@pytest.mark.parametrize("mixer_name", ["spectral", "attention"])
@pytest.mark.parametrize("bad,err,words", [
    (lambda: torch.randn(20, D), ValueError, r"shape \(B, N, D\) with D=16"),
    (lambda: torch.randn(2, 20, D + 1), ValueError, r"shape \(B, N, D\) with D=16"),
    (lambda: torch.ones(2, 20, D, dtype=torch.long), TypeError, "floating-point"),
])
def test_bad_input_names_the_argument(mixer_name, bad, err, words):
    mixer = MIXERS[mixer_name](True)
    with pytest.raises(err, match=words):
        mixer(bad())


@pytest.mark.parametrize("mixer_name", ["spectral", "local", "attention"])
def test_bad_mask(mixer_name):
    mixer = MIXERS[mixer_name](True)
    x = torch.randn(2, 20, D)
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\)=\(2, 20\)"):
        mixer(x, torch.ones(2, 19, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        mixer(x, torch.ones(2, 20))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="filter must be one of"):
        SpectralMixer(D, 8, filter="fourier")
    with pytest.raises(ValueError, match="head_dim must be"):
        SpectralMixer(D, 8, gated=True, head_dim=3)
    with pytest.raises(ValueError, match="head_dim must be"):
        SpectralMixer(D, 8, head_dim=4)                        # outer products need the gate
    with pytest.raises(ValueError, match="n_heads must divide"):
        Attention(D, 3)
    with pytest.raises(ValueError, match="window must be"):
        Attention(D, 2, window=0)
    with pytest.raises(ValueError, match="dropout must be"):
        Attention(D, 2, dropout=1.0)


def test_help_documents_shapes_and_fft_convention():
    doc = specmix.SpectralMixer.__doc__ + specmix.functional.__doc__
    assert "(B, N, D)" in specmix.SpectralMixer.__doc__
    assert "zero-padded" in specmix.SpectralMixer.__doc__
    assert "rfft" in doc and "n_fft" in doc


def test_reset_parameters_and_repr():
    mixer = spectral(gated=True)
    before = [p.detach().clone() for p in mixer.parameters()]
    torch.manual_seed(99)
    mixer.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, mixer.parameters()))
    assert "gated=True" in repr(mixer) and "max_len=48" in repr(mixer)


@pytest.mark.parametrize("filter_kind", ["frequency", "implicit"])
@pytest.mark.parametrize("fused", [False, True])
def test_inference_spectrum_cache_is_exact_and_follows_parameter_updates(filter_kind, fused):
    """The fused AdamW updates parameters without bumping their version counters: the cache
    must still follow it, through the train()/eval() switch around every evaluation."""
    mixer = spectral(gated=True, filter=filter_kind).eval()
    x = torch.randn(2, 30, D)
    with torch.no_grad():
        first = mixer(x)
        assert mixer.filter._spectrum_cache                 # eval + no_grad: the spectrum is kept
        assert torch.equal(mixer(x), first)
    assert torch.allclose(first, mixer(x), atol=1e-6)    # same as the uncached, grad-enabled path
    opt = torch.optim.AdamW(mixer.parameters(), lr=0.1, fused=fused)
    mixer.train()
    mixer(x).square().mean().backward()
    opt.step()
    mixer.eval()
    with torch.no_grad():
        after = mixer(x)
    assert not torch.allclose(after, first)
    assert torch.allclose(after, mixer(x), atol=1e-6)


def test_implicit_filter_under_autocast_inference():
    mixer = spectral(filter="implicit")
    x = torch.randn(1, 20, D)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


def _multi_head_reference(mixer, x):
    """The H3-style multi-head gate written as loops: y_j = sum_i q_i conv_i(k_i v_j)."""
    import torch.nn.functional as F
    from specmix.functional import fft_conv_ref
    h, d, n = mixer.head_dim, mixer.d_model, x.shape[1]
    u = F.conv1d(F.pad(mixer.in_proj(x).transpose(1, 2), (2, 0)), mixer.short_conv, groups=3 * d)
    q, k, v = u.chunk(3, dim=1)                                     # (B, D, N) each
    kernel = mixer.filter.kernel(n)                                  # (D, N)
    out = torch.zeros_like(q)
    for head in range(d // h):
        for j in range(h):
            for i in range(h):
                c_i, c_j = head * h + i, head * h + j
                kv = (k[:, c_i] * v[:, c_j])[:, :, None]            # (B, N, 1)
                conv = fft_conv_ref(kv, kernel[c_i: c_i + 1])[:, :, 0]
                out[:, c_j] += q[:, c_i] * conv
    return mixer.out_proj(out.transpose(1, 2))


@pytest.mark.parametrize("filter_kind", ["frequency", "implicit"])
def test_multi_head_gate_matches_loops_in_values_and_gradients(filter_kind):
    torch.manual_seed(0)
    mixer = SpectralMixer(8, 12, gated=True, head_dim=4, filter=filter_kind).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64, requires_grad=True)
    y, ref = mixer(x), _multi_head_reference(mixer, x)
    assert (y - ref).abs().max().item() < 1e-12
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *mixer.parameters()], g)
    grads_ref = torch.autograd.grad(ref, [x, *mixer.parameters()], g)
    for a, b in zip(grads, grads_ref):
        assert (a - b).abs().max().item() < 1e-10


def _short_conv_ref(u, taps):
    """The causal 3-tap depthwise conv as a sum: out[t] = sum_j taps[c, j] u[t - 2 + j]."""
    n = u.shape[-1]
    out = torch.zeros_like(u)
    for j in range(3):
        lag = 2 - j
        out[..., lag:] += taps[:, 0, j, None] * u[..., : n - lag]
    return out


def test_ungated_mixer_is_the_stated_formula():
    """y = out_proj(conv_k(in_proj(x))), conv_k the direct causal convolution with the filter's kernel."""
    mixer = SpectralMixer(8, 20).double()
    x = torch.randn(2, 13, 8, dtype=torch.float64, requires_grad=True)
    ref = mixer.out_proj(fft_conv_ref(mixer.in_proj(x), mixer.filter.kernel(13)))
    y = mixer(x)
    assert_close(y, ref, what="ungated mixer")
    assert_same_grads(y, ref, [x, *mixer.parameters()], what="ungated mixer")


def test_gated_mixer_with_head_dim_1_is_the_stated_formula():
    """u = in_proj(x); q, k, v = short_conv(u); y = out_proj(q * conv_k(k * v))."""
    mixer = SpectralMixer(8, 20, gated=True).double()
    x = torch.randn(2, 13, 8, dtype=torch.float64, requires_grad=True)
    u = _short_conv_ref(mixer.in_proj(x).transpose(1, 2), mixer.short_conv)      # (B, 3D, N)
    q, k, v = u.chunk(3, dim=1)
    memory = fft_conv_ref((k * v).transpose(1, 2), mixer.filter.kernel(13))       # (B, N, D)
    ref = mixer.out_proj(q.transpose(1, 2) * memory)
    y = mixer(x)
    assert_close(y, ref, what="gated mixer")
    assert_same_grads(y, ref, [x, *mixer.parameters()], what="gated mixer")


@pytest.mark.parametrize("name", MIXERS)
def test_causal_under_bf16_autocast(name):
    """Under autocast the FFT runs in float32 and casts back: the past stays exactly unchanged."""
    mixer = MIXERS[name](True)
    x = torch.randn(2, 40, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_causal(mixer, x, times=(0, 17, 38), atol=1e-2)   # bf16 rounding; a leak would be O(1)


@pytest.mark.parametrize("name", ["attention", "local"])
def test_attention_dropout_only_while_training(name):
    mixer = Attention(D, 4, window=5 if name == "local" else None, dropout=0.5)
    x = torch.randn(2, 20, D)
    mixer.eval()
    assert torch.equal(mixer(x), mixer(x))
    mixer.train()
    assert not torch.equal(mixer(x), mixer(x))
