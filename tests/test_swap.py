import pytest
import torch
from torch import nn

from specmix import SpectralSelfAttention, swap_attention

D, N = 16, 12


def encoder(batch_first: bool) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(D, nhead=2, dim_feedforward=32, dropout=0.0,
                                       batch_first=batch_first)
    return nn.TransformerEncoder(layer, num_layers=2)


def as_input(x, batch_first):
    return x if batch_first else x.transpose(0, 1)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_swapped_encoder_runs_is_causal_and_respects_padding(batch_first, train):
    torch.manual_seed(0)
    model = encoder(batch_first).double().train(train)
    names = swap_attention(model, max_len=32, gated=True)
    assert names == ["layers.0.self_attn", "layers.1.self_attn"]
    assert all(isinstance(model.get_submodule(n), SpectralSelfAttention) for n in names)
    x = torch.randn(3, N, D, dtype=torch.float64)
    causal = nn.Transformer.generate_square_subsequent_mask(N, dtype=torch.float64)
    y = model(as_input(x, batch_first), mask=causal, is_causal=True)
    assert y.shape == as_input(x, batch_first).shape
    y = as_input(y, batch_first)
    x2 = x.clone()
    x2[:, 7:] += 3.0
    y2 = as_input(model(as_input(x2, batch_first), mask=causal, is_causal=True), batch_first)
    assert (y2[:, :7] - y[:, :7]).abs().max() < 1e-10          # past unchanged
    assert (y2[:, 7:] - y[:, 7:]).abs().max() > 1e-3
    pad = torch.zeros(3, N + 4, dtype=torch.bool)
    pad[:, N:] = True                                             # True = padding (PyTorch)
    xp = torch.cat([x, torch.randn(3, 4, D, dtype=torch.float64)], dim=1)
    yp = as_input(model(as_input(xp, batch_first), mask=nn.Transformer.generate_square_subsequent_mask(
        N + 4, dtype=torch.float64), src_key_padding_mask=pad, is_causal=True), batch_first)
    assert (yp[:, :N] - y).abs().max() < 1e-10
    if train:
        yp[:, :N].square().mean().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_bidirectional_call_without_mask_and_parameters_follow_device_dtype():
    model = encoder(True).double()
    swap_attention(model, max_len=32)
    x = torch.randn(2, N, D, dtype=torch.float64)
    y = model(x)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert (model(x2)[:, 0] - y[:, 0]).abs().max() > 1e-6       # sees the future: bidirectional
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_transformer_keeps_cross_attention():
    model = nn.Transformer(d_model=D, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                           dim_feedforward=32, dropout=0.0, batch_first=True)
    names = swap_attention(model, max_len=32, causal=None)
    assert names == ["encoder.layers.0.self_attn", "decoder.layers.0.self_attn",
                     "decoder.layers.1.self_attn"]
    for layer in model.decoder.layers:
        assert isinstance(layer.multihead_attn, nn.MultiheadAttention)
    src, tgt = torch.randn(2, 10, D), torch.randn(2, 7, D)
    out = model(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(7), tgt_is_causal=True)
    assert out.shape == (2, 7, D)


def test_errors_say_what_is_supported():
    attn = SpectralSelfAttention(D, 2, max_len=32, batch_first=True)
    x = torch.randn(2, N, D)
    with pytest.raises(ValueError, match="self-attention only"):
        attn(x, torch.randn(2, N, D), torch.randn(2, N, D))
    odd = torch.zeros(N, N, dtype=torch.bool)
    odd[0, 5] = True
    with pytest.raises(ValueError, match="supported are attn_mask=None"):
        attn(x, x, x, attn_mask=odd)
    with pytest.raises(ValueError, match="supported are"):
        attn(x, x, x, attn_mask=torch.full((N, N), 0.5))
    built_bidirectional = SpectralSelfAttention(D, max_len=32, batch_first=True, causal=False)
    with pytest.raises(ValueError, match="causal=False"):
        built_bidirectional(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match=r"cannot replace \[.layers.0.linear1 \(Linear\).\]; supported: nn.MultiheadAttention"):
        swap_attention(encoder(True), max_len=8, names=["layers.0.linear1"])
    out, weights = attn(x, x, x, attn_mask=torch.zeros(N, N, dtype=torch.bool))
    assert weights is None and out.shape == x.shape
