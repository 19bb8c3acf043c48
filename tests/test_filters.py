import pytest
import torch

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
