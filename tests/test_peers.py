"""specmix's causal FFT convolution and flash-linear-attention's LongConvolution compute the
same operator on the same kernel (skipped without fla-core); the peers' side-by-side ops
build and run."""
import importlib.util

import pytest
import torch

from helpers import assert_close
from specmix.functional import fft_conv

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fla") is None, reason="fla-core is not installed")


def fla():
    from specmix.app.bench.peers import load_fla_long_conv
    return load_fla_long_conv()


@pytest.mark.parametrize("n", [1, 37, 256])
def test_fla_long_convolution_is_fft_conv_plus_the_skip(n):
    """LongConvolution(d, max_len=N): y = causal conv(x, filter) + x, in values and gradients."""
    module = fla().LongConvolution(16, max_len=n)
    x = torch.randn(3, n, 16, requires_grad=True)
    y_fla = module(x)
    g_x_fla, g_k_fla = torch.autograd.grad(y_fla.square().sum(), (x, module.filter))
    k = module.filter.detach().clone().requires_grad_(True)
    y = fft_conv(x, k) + x
    g_x, g_k = torch.autograd.grad(y.square().sum(), (x, k))
    assert_close(y, y_fla, what="output")
    assert_close(g_x, g_x_fla, what="input gradient")
    assert_close(g_k, g_k_fla, what="kernel gradient")


def test_fla_implicit_long_convolution_is_fft_conv_of_its_kernel():
    module = fla().ImplicitLongConvolution(16, max_len=100)
    x = torch.randn(2, 100, 16)
    with torch.no_grad():
        assert_close(fft_conv(x, module.filter(100)[0]) + x, module(x), what="output")


def test_fla_long_convolution_longer_than_the_sequence_sees_the_future():
    """With max_len >= N + 2 the taps beyond N wrap around fla's 2N-point FFT onto later
    inputs; the side-by-side benchmark therefore builds it with max_len = N (exact, causal)."""
    module = fla().LongConvolution(8, max_len=64)
    x = torch.randn(1, 16, 8)
    later = x.clone()
    later[:, 10:] += 1.0                                   # change only positions >= 10
    with torch.no_grad():
        assert (module(later)[:, :10] - module(x)[:, :10]).abs().max() > 1e-3
        exact = fla().LongConvolution(8, max_len=16)
        assert (exact(later)[:, :10] - exact(x)[:, :10]).abs().max() < 1e-5   # rounding only


@pytest.mark.parametrize("op", ["long-conv", "implicit-long-conv", "fla-long-conv", "fla-implicit-long-conv"])
@pytest.mark.parametrize("mode", ["forward", "train"])
def test_the_peer_ops_run_in_the_pair_harness(op, mode):
    from specmix.app.bench.ops import OpSpec, make_torch_op
    spec = OpSpec(backend="torch", op=op, n=64, d_model=8, batch=2, heads=2, window=16, dtype="float32",
                  mode=mode, device="cpu")
    out = make_torch_op(spec)()
    assert out is None or out.shape == (2, 64, 8)
