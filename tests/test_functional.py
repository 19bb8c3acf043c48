import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from specmix.functional import (add_channel_bias, attention_core, fft_conv, fft_conv_cf, fft_conv_len, fft_conv_ref,
                                gemm_dtype, local_attention, next_fast_len, sliding_window_mask)

from helpers import assert_causal, assert_close, assert_same_grads, circular_fft_conv

LENGTHS = [1, 2, 3, 5, 7, 13, 16, 17, 31, 32, 33, 64, 65, 97, 128, 129]
BATCH_SHAPES = [(), (1,), (3,), (2, 2)]


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


@given(n=st.sampled_from(LENGTHS), taps=st.integers(1, 300), causal=st.booleans(),
       batch=st.sampled_from(BATCH_SHAPES), d=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_fft_conv_matches_direct_float64(n, taps, causal, batch, d, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, d, generator=gen, dtype=torch.float64)
    k = torch.randn(d, taps, generator=gen, dtype=torch.float64)
    y = fft_conv(x, k, causal=causal)
    assert y.shape == x.shape and y.dtype == torch.float64
    assert rel_err(y, fft_conv_ref(x, k, causal=causal)) < 1e-10


@given(n=st.sampled_from(LENGTHS), taps=st.integers(1, 200), causal=st.booleans(),
       seed=st.integers(0, 10**6))
def test_fft_conv_matches_direct_float32(n, taps, causal, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, 4, generator=gen)
    k = torch.randn(4, taps, generator=gen)
    y = fft_conv(x, k, causal=causal)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), fft_conv_ref(x.double(), k.double(), causal=causal)) < 1e-5


@pytest.mark.parametrize("n, taps", [(9, 17), (9, 16), (9, 5), (8, 40), (1, 3), (12, 1)])
def test_centred_conv_at_its_shortest_fft_is_exact(monkeypatch, n, taps):
    """A centred kernel transforms at max(L, N + L - 1 - c) points, where the transform is
    circular: with no rounding up to a fast length, the wrapped terms must land only on the
    cropped outputs, in the forward and in both gradients."""
    import specmix.fft_plan as plan
    monkeypatch.setattr(plan, "next_fast_len", lambda m: m)             # the bound itself
    assert plan.fft_conv_len(n, taps, causal=False) == max(taps, n + taps - 1 - (taps - 1) // 2)
    gen = torch.Generator().manual_seed(n * 100 + taps)
    x = torch.randn(2, n, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, taps, generator=gen, dtype=torch.float64, requires_grad=True)
    y, ref = fft_conv(x, k, causal=False), fft_conv_ref(x, k, causal=False)
    assert_close(y, ref)
    assert_same_grads(y, ref, (x, k))


def test_direct_reference_is_the_stated_formula():
    # y[t] = sum_{s <= min(t, L-1)} k[s] x[t-s]  (causal);  tap s is lag s - (L-1)//2 (centred)
    x = torch.randn(1, 6, 1, dtype=torch.float64)
    k = torch.randn(1, 3, dtype=torch.float64)
    xs, ks = x[0, :, 0], k[0]
    causal = [sum(ks[s] * xs[t - s] for s in range(3) if t - s >= 0) for t in range(6)]
    centred = [sum(ks[s] * xs[t - s + 1] for s in range(3) if 0 <= t - s + 1 < 6) for t in range(6)]
    assert torch.allclose(fft_conv_ref(x, k)[0, :, 0], torch.stack(causal))
    assert torch.allclose(fft_conv_ref(x, k, causal=False)[0, :, 0], torch.stack(centred))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,taps", [(1, 1), (7, 3), (13, 13), (8, 20)])
def test_fft_conv_gradcheck(n, taps, causal):
    x = torch.randn(2, n, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, taps, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fft_conv(a, b, causal=causal), (x, k))


@pytest.mark.parametrize("causal", [True, False])
def test_fft_conv_gradients_match_direct(causal):
    x = torch.randn(3, 29, 5, requires_grad=True)
    k = torch.randn(5, 17, requires_grad=True)
    dy = torch.randn(3, 29, 5)
    gx, gk = torch.autograd.grad((fft_conv(x, k, causal=causal) * dy).sum(), (x, k))
    rx, rk = torch.autograd.grad((fft_conv_ref(x, k, causal=causal) * dy).sum(), (x, k))
    assert rel_err(gx, rx) < 1e-5 and rel_err(gk, rk) < 1e-5


def test_fft_conv_is_causal_and_circular_is_not():
    # float64, so that FFT rounding (~1e-6 relative in float32) cannot blur the verdict
    n, d = 32, 4
    k = torch.randn(d, n, dtype=torch.float64)
    x = torch.randn(2, n, d, dtype=torch.float64)
    assert_causal(lambda t: fft_conv(t, k), x)
    with pytest.raises(AssertionError, match="changed"):   # the guard: no padding leaks the future
        assert_causal(lambda t: circular_fft_conv(t, k), x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_run_the_fft_in_float32(dtype):
    x = torch.randn(2, 33, 4).to(dtype)
    k = torch.randn(4, 33)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fft_conv(x, k)
    assert y.dtype == dtype
    expected = fft_conv_ref(x.float(), k)
    assert rel_err(y.float(), expected) < 2e-2   # only the final cast rounds


def test_next_fast_len():
    for n in [1, 2, 7, 11, 97, 4099, 65537, 1_000_003]:
        m = next_fast_len(n)
        assert m >= n and m - n <= max(1, n // 8)
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        assert r == 1
    assert next_fast_len(4096) == 4096


@pytest.mark.parametrize("bad,err,words", [
    (dict(x=torch.randn(5)), ValueError, "(..., N, D)"),
    (dict(k=torch.randn(4)), ValueError, "(D, L)"),
    (dict(k=torch.randn(3, 2)), ValueError, "channels"),
    (dict(x=torch.ones(1, 5, 4, dtype=torch.long)), TypeError, "floating"),
    (dict(x=[[1.0]]), TypeError, "torch.Tensor"),
])
def test_fft_conv_bad_input(bad, err, words):
    args = dict(x=torch.randn(1, 5, 4), k=torch.randn(4, 2)) | bad
    with pytest.raises(err, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        fft_conv(args["x"], args["k"])


@pytest.mark.parametrize("causal", [True, False])
def test_attention_core_matches_sdpa(causal):
    q, k, v = (torch.randn(2, 19, 8, dtype=torch.float64) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(attention_core(q, k, v, causal=causal), ref, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,window", [(1, 4), (17, 4), (32, 8), (10, 64)])
def test_local_attention_matches_dense_mask(n, window, causal):
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64) for _ in range(3))
    key_mask = torch.rand(2, n) > 0.3
    key_mask[:, 0] = True
    dense = sliding_window_mask(n, window, causal=causal)[None, None] & key_mask[:, None, None]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense | ~dense.any(-1, keepdim=True))
    out = local_attention(q, k, v, window=window, causal=causal, key_mask=key_mask)
    rows = dense.any(-1)[:, :, :, None]                  # compare rows with at least one key
    assert torch.allclose(out * rows, ref * rows, atol=1e-10)
    plain = local_attention(q, k, v, window=window, causal=causal)
    mask = sliding_window_mask(n, window, causal=causal)
    assert torch.allclose(plain, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-10)
    assert math.isfinite(out.abs().sum().item())


@pytest.mark.parametrize("batch,d_model,seq_len", [(1, 256, 16384), (4, 256, 8192), (4, 64, 16384),
                                                    (1, 256, None)])
def test_lean_inference_chunks_hold_an_eighth_of_the_output(batch, d_model, seq_len):
    """Mid-size inference calls run in channel chunks whose FFT buffers (~ rows * n_fft per
    batch row) stay within 1/8 of the output's D * N, or hold MIN_LEAN_ROWS rows where an
    eighth is fewer; small ones run in one call. None: the longest lean length on this host
    (n_fft = LEAN_MAX_FFT: N = 64K with AVX-512, 16K without)."""
    import specmix.fft_plan as fn
    seq_len = seq_len or fn.LEAN_MAX_FFT // 2
    n_fft = fft_conv_len(seq_len, seq_len)
    assert n_fft <= fn.LEAN_MAX_FFT
    x_t = torch.empty(batch, d_model, seq_len).as_strided((batch, d_model, seq_len), (0, 0, 0))
    chunks = fn.channel_chunks(x_t, n_fft, training=False)
    rows = chunks[0].stop - chunks[0].start
    assert len(chunks) > 1
    assert rows * n_fft <= d_model * seq_len / 8 or rows == fn.MIN_LEAN_ROWS
    assert sum(c.stop - c.start for c in chunks) == d_model
    bidirectional = torch.empty(1, 128, 16384)                       # n_fft ~ 3N: an eighth is 4 rows
    n_fft = fft_conv_len(16384, 2 * 16384 - 1)
    assert [c.stop - c.start for c in fn.channel_chunks(bidirectional, n_fft, training=False)][0] == 32
    small = torch.empty(1, 256, 1024)
    assert len(fn.channel_chunks(small, fft_conv_len(1024, 1024), training=False)) == 1


@pytest.mark.parametrize("seq_len, rows", [(262144, 128), (1048576, 127)])
def test_huge_inference_chunks_hold_at_most_half_the_channels(seq_len, rows):
    """Beyond LEAN_MAX_FFT, chunks of about CHUNK_ELEMS_HUGE complex points, but never one call
    of every channel: at N = 256K that would hold all D rows' spectra at once."""
    import specmix.fft_plan as fn
    x_t = torch.empty(1, 256, seq_len, device="meta")                 # shapes only
    n_fft = fft_conv_len(seq_len, seq_len)
    assert n_fft > fn.LEAN_MAX_FFT
    sizes = [c.stop - c.start for c in fn.channel_chunks(x_t, n_fft, training=False)]
    assert sizes[0] == rows and sum(sizes) == 256 and len(sizes) >= 2


def test_no_grad_forward_builds_no_graph():
    x = torch.randn(2, 4, 33, requires_grad=True)
    k = torch.randn(4, 33, requires_grad=True)
    y_grad = fft_conv_cf(x, k)
    with torch.no_grad():
        y = fft_conv_cf(x, k)
    assert y.grad_fn is None and not y.requires_grad and y_grad.grad_fn is not None
    assert torch.equal(y, y_grad.detach())


def test_one_chunk_backward_reads_the_saved_spectra(monkeypatch):
    """A one-chunk training call keeps conj(rfft(x)) and conj(rfft(k)): backward transforms
    only dy (one rfft) and reads the spectra without overwriting them (a second backward
    through a retained graph gives the same gradients)."""
    x = torch.randn(2, 4, 33, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 20, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 4, 33, dtype=torch.float64)
    y = fft_conv_cf(x, k)
    calls = []
    rfft = torch.fft.rfft
    monkeypatch.setattr(torch.fft, "rfft", lambda *a, **kw: calls.append(1) or rfft(*a, **kw))
    first = torch.autograd.grad(y, (x, k), dy, retain_graph=True)
    assert len(calls) == 1
    second = torch.autograd.grad(y, (x, k), dy)
    ref = torch.autograd.grad(fft_conv_ref(x.transpose(1, 2), k).transpose(1, 2), (x, k), dy)
    for a, b, r in zip(first, second, ref):
        assert torch.equal(a, b) and rel_err(a, r) < 1e-10
    frozen = fft_conv_cf(x, k.detach())               # dx only: just conj(rfft(k)) is kept
    assert sum(t is not None and t.is_complex() for t in frozen.grad_fn.saved_tensors) == 1


@pytest.mark.parametrize("causal", [True, False])
def test_channel_chunking_is_exact(monkeypatch, causal):
    import specmix.fft_plan as fn
    monkeypatch.setattr(fn, "MIN_CHUNK_ROWS", 1)
    monkeypatch.setattr(fn, "MIN_LEAN_ROWS", 1)
    monkeypatch.setattr(fn, "CHUNK_ELEMS_TRAIN", 64)
    monkeypatch.setattr(fn, "CHUNK_ELEMS_INFER", 64)
    x = torch.randn(2, 3, 21, 7, dtype=torch.float64, requires_grad=True)   # 7 channels
    k = torch.randn(7, 15, dtype=torch.float64, requires_grad=True)
    assert len(fn.channel_chunks(x.transpose(-1, -2), fft_conv_len(21, 15), True)) == 7
    assert len(fn.channel_chunks(x.transpose(-1, -2), fft_conv_len(21, 15), False)) == 7
    dy = torch.randn(2, 3, 21, 7, dtype=torch.float64)
    gx, gk = torch.autograd.grad((fft_conv(x, k, causal=causal) * dy).sum(), (x, k))
    rx, rk = torch.autograd.grad((fft_conv_ref(x, k, causal=causal) * dy).sum(), (x, k))
    assert rel_err(gx, rx) < 1e-10 and rel_err(gk, rk) < 1e-10
    with torch.no_grad():
        assert rel_err(fft_conv(x, k, causal=causal), fft_conv_ref(x, k, causal=causal)) < 1e-10


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,window", [(17, 4), (32, 8)])
def test_local_attention_gradients_match_dense_mask(n, window, causal):
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    key_mask = torch.rand(2, n, generator=torch.Generator().manual_seed(5)) > 0.3
    key_mask[:, 0] = True
    dense = sliding_window_mask(n, window, causal=causal)[None, None] & key_mask[:, None, None]
    rows = dense.any(-1)[:, :, :, None].to(torch.float64)     # rows with at least one key
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense | ~dense.any(-1, keepdim=True)) * rows
    out = local_attention(q, k, v, window=window, causal=causal, key_mask=key_mask) * rows
    g = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("n, taps", [(9, 9), (35, 35), (40, 30), (65, 65), (33, 33), (18, 16)])
def test_wrap_corrected_power_of_two_plan_is_exact(n, taps):
    """Just past a power of two the causal conv runs circularly at P and removes the r
    wrapped outputs; outputs and both gradients equal the direct twin, also chunked."""
    from specmix.fft_plan import wrapped_fft_len
    p, wrap = wrapped_fft_len(n, taps)
    assert p == 1 << (max(n, taps) - 1).bit_length() and wrap == n + taps - 1 - p > 0
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(2, 3, n, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(3, taps, dtype=torch.float64, generator=gen, requires_grad=True)
    y = fft_conv_cf(x, k)
    ref = fft_conv_ref(x.transpose(1, 2), k).transpose(1, 2)
    assert_close(y, ref, what="wrapped output")
    assert_same_grads(y, ref, (x, k), what="wrapped")
    assert torch.autograd.gradcheck(lambda a, b: fft_conv_cf(a, b), (x[:1, :2].detach().requires_grad_(),
                                                                     k[:2].detach().requires_grad_()))


def test_wrap_plan_only_just_past_a_power_of_two():
    from specmix.fft_plan import WRAP_MAX, wrapped_fft_len
    assert wrapped_fft_len(4096, 4096) is None            # 8191 fits 8192: no wrap needed
    assert wrapped_fft_len(4099, 4099) == (8192, 6 - 1)
    assert wrapped_fft_len(65537, 65537) == (131072, 1)
    assert wrapped_fft_len(5000, 5000) is None            # r = 1807 > WRAP_MAX: mixed radix instead
    assert wrapped_fft_len(4096 + WRAP_MAX // 2, 4096 + WRAP_MAX // 2) is not None


def test_add_channel_bias_gradcheck_and_bfloat16_gradient():
    torch.manual_seed(0)
    u = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: add_channel_bias(a.clone(), b), (u, bias))
    assert_close(add_channel_bias(u.detach().clone(), bias.detach()), u.detach() + bias.detach()[:, None],
                 what="channel bias")
    # bfloat16 activations, float32 bias: the bias gradient is float32 and near the exact sum
    g = torch.randn(4, 6, 300).bfloat16()
    b32 = torch.zeros(6, requires_grad=True)
    add_channel_bias(torch.zeros(4, 6, 300, dtype=torch.bfloat16), b32).backward(g)
    assert b32.grad.dtype == torch.float32
    torch.testing.assert_close(b32.grad, g.float().sum((0, 2)), rtol=1e-2, atol=0.05)
    with pytest.raises(ValueError, match="expected u"):
        add_channel_bias(torch.zeros(2, 5, 7), torch.zeros(4))


def test_gemm_dtype_follows_autocast():
    x = torch.randn(2, 3)
    assert gemm_dtype(x) == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gemm_dtype(x) == torch.bfloat16
        assert gemm_dtype(x.double()) == torch.float64
