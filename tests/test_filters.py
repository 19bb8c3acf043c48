import pytest
import torch

from helpers import assert_close, assert_same_grads
from specmix.filters import FrequencyFilter, ImplicitFilter, decaying_kernel


@pytest.mark.parametrize("max_len", [1, 2, 7, 16, 33])
def test_frequency_filter_causal_kernel_is_prefix_of_full_kernel(max_len):
    filt = FrequencyFilter(4, max_len).double()
    full = filt.kernel(max_len)
    assert full.shape == (4, max_len)
    for n in range(1, max_len + 1):
        assert torch.equal(filt.kernel(n), full[:, :n])


def test_frequency_filter_kernel_is_the_inverse_dft_of_its_response():
    # the response lives on the grid of length max_len; its inverse DFT read as lags 0..max_len-1
    filt = FrequencyFilter(3, 10).double()
    resp = torch.view_as_complex(filt.response.detach())
    m = torch.arange(10, dtype=torch.float64)
    # explicit Hermitian-symmetric inverse DFT
    full = torch.cat([resp, resp[:, 1:5].conj().flip(-1)], dim=1)           # (D, 10)
    f_full = torch.arange(10, dtype=torch.float64)
    basis = torch.exp(2j * torch.pi * f_full[:, None] * m[None, :] / 10)    # (10, 10)
    expected = (full @ basis).real / 10
    assert torch.allclose(filt.kernel(10), expected, atol=1e-12)


@pytest.mark.parametrize("max_len", [1, 5, 16])
def test_frequency_filter_bidirectional_kernel_is_centred(max_len):
    # built in float64: a float32 response (cast afterwards) is symmetric only to float32 rounding
    filt = FrequencyFilter(2, max_len, causal=False, dtype=torch.float64)
    full = filt.kernel(max_len)                                   # lags -(M-1)..(M-1)
    assert full.shape == (2, 2 * max_len - 1)
    for n in range(1, max_len + 1):
        k = filt.kernel(n)
        assert k.shape == (2, 2 * n - 1)
        centre = max_len - 1
        assert torch.equal(k, full[:, centre - (n - 1): centre + n])
    # starts symmetric: look-ahead taps mirror look-back taps
    assert torch.allclose(full, full.flip(-1), atol=1e-12)


def test_frequency_filter_beyond_max_len_is_a_clear_error():
    filt = FrequencyFilter(2, 8)
    with pytest.raises(ValueError, match="N=9 exceeds max_len=8"):
        filt.kernel(9)
    with pytest.raises(ValueError, match="seq_len"):
        filt.kernel(0)


@pytest.mark.parametrize("causal", [True, False])
def test_implicit_filter_is_length_free(causal):
    filt = ImplicitFilter(3, causal=causal, decay_len=16).double()
    long = filt.kernel(100)                      # far beyond decay_len
    assert long.shape == (3, 100 if causal else 199)
    assert torch.isfinite(long).all()
    short = filt.kernel(10)
    if causal:
        assert torch.allclose(short, long[:, :10], atol=1e-12)
    else:
        assert torch.allclose(short, long[:, 90:109], atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_implicit_filter_kernel_is_its_documented_formula(causal):
    """k[c, t] = MLP(phi(t))[c] * exp(-rate_c |t|) * sqrt(1 - exp(-2 rate_c)), written out plainly."""
    torch.manual_seed(0)
    filt = ImplicitFilter(5, causal=causal, decay_len=12).double()
    n = 30
    lags = torch.arange(0 if causal else -(n - 1), n, dtype=torch.float64)
    phase = lags[:, None] * filt.omega
    shape = filt.mlp(torch.cat([phase.sin(), phase.cos()], dim=-1)).t()       # (D, L)
    rate = filt.log_rate.exp()[:, None]
    expected = shape * torch.exp(-rate * lags.abs()) * torch.sqrt(1 - torch.exp(-2 * rate))
    assert torch.allclose(filt.kernel(n), expected, rtol=1e-12, atol=1e-14)
    if causal:
        assert torch.allclose(filt.kernel_at(7, 9), expected[:, 7:16], rtol=1e-12, atol=1e-14)


def test_implicit_filter_is_trainable():
    filt = ImplicitFilter(3, decay_len=8)
    filt.kernel(20).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in filt.parameters())


def test_decaying_kernel_has_unit_energy():
    k = decaying_kernel(8, 50, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(k.norm(dim=1), torch.ones(8), atol=1e-6)


@pytest.mark.parametrize("max_len,seq_len", [(16, 16), (16, 9), (30, 30)])
def test_frequency_filter_gradients_match_the_numpy_reference(max_len, seq_len):
    """Through the class: fft_conv(x, FrequencyFilter.kernel(N)) in float64, values and
    gradients of x and of the response, against the hand-written NumPy forward/backward."""
    import numpy as np

    from specmix.functional import fft_conv
    from specmix.reference import ops

    filt = FrequencyFilter(3, max_len).double()
    assert filt.n_grid == max_len                     # a fast length: the reference's grid too
    x = torch.randn(2, seq_len, 3, dtype=torch.float64, requires_grad=True)
    y = fft_conv(x, filt.kernel(seq_len))
    dy = torch.randn_like(y)
    dx, dresp = torch.autograd.grad(y, (x, filt.response), dy)
    ref_y, cache = ops.spectral_forward(x.detach().numpy(), filt.response.detach().numpy(), max_len)
    ref_dx, ref_dresp = ops.spectral_backward(dy.numpy(), cache)
    np.testing.assert_allclose(y.detach().numpy(), ref_y, atol=1e-12)
    np.testing.assert_allclose(dx.numpy(), ref_dx, atol=1e-12)
    np.testing.assert_allclose(dresp.numpy(), ref_dresp, atol=1e-12)


@pytest.mark.parametrize("causal,call_causal", [(True, None), (False, None), (False, True)])
@pytest.mark.parametrize("seq_len,max_len", [(16, 16), (21, 24), (33, 33), (9, 40)])
def test_fused_convolve_equals_kernel_then_conv(monkeypatch, causal, call_causal, seq_len, max_len):
    """FrequencyFilter.convolve (kernel rows per channel chunk, recomputed in backward) equals
    fft_conv_cf with the materialised kernel in values and in the gradients of x and the
    response, chunked (7 chunks of 1 row) and unchunked, wrap-corrected lengths (33) too."""
    import specmix.fft_plan as fn
    from specmix.functional import fft_conv_cf
    torch.manual_seed(seq_len)
    filt = FrequencyFilter(7, max_len, causal=causal).double()
    x = torch.randn(2, 7, seq_len, dtype=torch.float64, requires_grad=True)
    use_causal = causal if call_causal is None else call_causal
    for rows in (1, 64):
        monkeypatch.setattr(fn, "MIN_CHUNK_ROWS", rows)
        monkeypatch.setattr(fn, "CHUNK_ELEMS_TRAIN", 1)
        kernel = filt.kernel(seq_len)
        kernel = kernel[:, seq_len - 1:] if use_causal and not causal else kernel
        ref = fft_conv_cf(x, kernel, causal=use_causal)
        y = filt.convolve(x, call_causal)
        assert_close(y, ref, what=f"fused convolve, chunks of {rows}")
        assert_same_grads(y, ref, [x, filt.response], what="fused convolve")


def test_fused_convolve_gradcheck():
    filt = FrequencyFilter(3, 10).double()
    x = torch.randn(1, 3, 10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, r: _convolve_with(filt, a, r), (x, filt.response.detach().clone().requires_grad_()))


def _convolve_with(filt, x, response):
    from specmix.functional import fft_conv_rows_cf
    return fft_conv_rows_cf(x, lambda resp: filt._kernel_from(resp, x.shape[-1]), (response,), x.shape[-1])


def test_fused_convolve_bad_arguments():
    filt = FrequencyFilter(4, 8)
    with pytest.raises(ValueError, match="exceeds max_len=8"):
        filt.convolve(torch.randn(1, 4, 9))
    with pytest.raises(ValueError, match="cannot run bidirectionally"):
        filt.convolve(torch.randn(1, 4, 8), causal=False)
    from specmix.functional import fft_conv_rows_cf
    with pytest.raises(ValueError, match="dim 0 = D = 4"):
        fft_conv_rows_cf(torch.randn(1, 4, 8), lambda r: r, (torch.randn(3, 8),), 8)


@pytest.mark.parametrize("first, count", [(0, 300), (7, 50), (130, 256)])
def test_enveloped_taps_gradients_match_finite_differences(first, count):
    """The fused last layer + envelope (its hand-written backward) against finite differences,
    across whole blocks and a partial last block (ENVELOPE_BLOCK = 128)."""
    from specmix.envelope import enveloped_taps
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(count, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    rate = torch.tensor([[0.5], [0.05], [0.005]], dtype=torch.float64, requires_grad=True)
    log_gain = torch.randn(3, 1, generator=gen, dtype=torch.float64, requires_grad=True)
    taps = lambda *args: enveloped_taps(*args, first=first)                       # noqa: E731
    assert torch.autograd.gradcheck(taps, (hidden, weight, bias, rate, log_gain))
    lags = torch.arange(first, first + count, dtype=torch.float64)
    plain = (weight @ hidden.t() + bias[:, None]) * torch.exp(log_gain - rate * lags)
    assert torch.allclose(taps(hidden, weight, bias, rate, log_gain), plain, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="first must be >= 0"):
        enveloped_taps(hidden, weight, bias, rate, log_gain, first=-1)


def test_implicit_filter_gradients_equal_the_plain_formulas():
    """ImplicitFilter's parameters get the gradients of its formula written with autograd's ops."""
    torch.manual_seed(0)
    filt = ImplicitFilter(6, decay_len=64).double()
    n = 700
    upstream = torch.randn(6, n, dtype=torch.float64)
    (filt.kernel(n) * upstream).sum().backward()
    fused = {name: p.grad.clone() for name, p in filt.named_parameters()}
    filt.zero_grad()
    lags = torch.arange(n, dtype=torch.float64)
    phase = lags[:, None] * filt.omega
    shape = filt.mlp(torch.cat([phase.sin(), phase.cos()], dim=-1)).t()           # (D, L)
    rate = filt.log_rate.exp()[:, None]
    kernel = shape * torch.exp(-rate * lags) * torch.sqrt(1 - torch.exp(-2 * rate))
    (kernel * upstream).sum().backward()
    for name, p in filt.named_parameters():
        assert torch.allclose(fused[name], p.grad, rtol=1e-9, atol=1e-12), name


def test_implicit_filter_under_bf16_autocast_keeps_float32_taps():
    filt = ImplicitFilter(4, decay_len=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        k = filt.kernel(200)
    assert k.dtype == torch.float32
    k.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in filt.parameters())
    assert torch.allclose(k, filt.kernel(200), rtol=0.05, atol=1e-3)       # bf16 hidden features
