"""The short depthwise convolution's hand-written backward against its autograd twin."""
import pytest
import torch

from helpers import assert_close, assert_same_grads
from specmix.short_conv import ShortConvCache, short_conv, short_conv_ref


@pytest.mark.parametrize("n", [1, 2, 3, 11])
@pytest.mark.parametrize("k,lookback", [(3, 2), (3, 1), (2, 1), (3, 0), (1, 0)])
def test_short_conv_matches_twin_in_values_and_grads(n, k, lookback):
    torch.manual_seed(n * 10 + k + lookback)
    u = torch.randn(2, 5, n, dtype=torch.float64, requires_grad=True)
    taps = torch.randn(5, k, dtype=torch.float64, requires_grad=True)
    y, ref = short_conv(u, taps, lookback), short_conv_ref(u, taps, lookback)
    assert_close(y, ref, what=f"short_conv n={n} k={k} lookback={lookback}")
    assert_same_grads(y, ref, [u, taps], what="short_conv")


def test_short_conv_is_the_stated_sum():
    """Causal 3 taps: out[t] = taps[:, 2] u[t] + taps[:, 1] u[t - 1] + taps[:, 0] u[t - 2]."""
    u = torch.arange(1.0, 6.0, dtype=torch.float64).view(1, 1, 5)
    taps = torch.tensor([[100.0, 10.0, 1.0]], dtype=torch.float64)
    out = short_conv(u, taps, 2)[0, 0].tolist()
    assert out == [1.0, 12.0, 123.0, 234.0, 345.0]
    out = short_conv(u, taps, 1)[0, 0].tolist()     # centred: taps[:, 0] looks back one, [:, 2] ahead
    assert out == [12.0, 123.0, 234.0, 345.0, 450.0]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_short_conv_cache_is_the_causal_conv_one_token_at_a_time(k):
    """Prefill on the first p inputs, then step through the rest: equal to the full causal conv
    (also when the prompt is shorter than the taps' reach)."""
    torch.manual_seed(k)
    u = torch.randn(2, 5, 9, dtype=torch.float64)
    taps = torch.randn(5, k, dtype=torch.float64)
    full = short_conv(u, taps, k - 1)                                   # (B, C, N)
    for p in (1, 2, 6):
        cache = ShortConvCache.prefill(u[..., :p], taps)
        steps = torch.stack([cache.step(u[..., t]) for t in range(p, 9)], dim=-1)
        assert_close(steps, full[..., p:], what=f"ShortConvCache k={k} prompt {p}")
    with pytest.raises(ValueError, match="u_t"):
        cache.step(u[:, :3, 0])


def test_short_conv_gradcheck():
    u = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    taps = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: short_conv(a, b, 2), (u, taps))


def test_short_conv_bf16_input_keeps_float32_tap_grads():
    torch.manual_seed(0)
    u32 = torch.randn(2, 4, 64)
    taps = torch.randn(4, 3, requires_grad=True)
    u = u32.bfloat16().requires_grad_()
    y = short_conv(u, taps, 2)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert taps.grad.dtype == torch.float32 and u.grad.dtype == torch.bfloat16
    taps_ref = taps.detach().clone().requires_grad_()
    short_conv_ref(u.detach().float(), taps_ref, 2).square().sum().backward()
    assert_close(taps.grad, taps_ref.grad, tol=3e-2, what="bf16 taps grad")


@pytest.mark.parametrize("u_shape,taps_shape,lookback,match", [
    ((2, 4), (4, 3), 2, "u \\(B, C, N\\)"),
    ((1, 4, 5), (5, 3), 2, "same C"),
    ((1, 4, 5), (4, 3), 3, "lookback must be in"),
])
def test_short_conv_bad_arguments(u_shape, taps_shape, lookback, match):
    with pytest.raises(ValueError, match=match):
        short_conv(torch.randn(*u_shape), torch.randn(*taps_shape), lookback)
