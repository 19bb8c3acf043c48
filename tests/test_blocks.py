import pytest
import torch

from specmix import Attention, Block, SpectralMixer

from helpers import assert_close

D, MAX_LEN = 16, 48


def test_block_swap_attention_for_spectral_needs_no_other_change():
    x = torch.randn(2, 20, D)
    mask = torch.ones(2, 20, dtype=torch.bool)
    for mixer in (Attention(D, 4, causal=True), SpectralMixer(D, MAX_LEN, causal=True)):
        block = Block(D, mixer, mlp_ratio=4.0, norm="layer")
        assert block(x, mask).shape == x.shape


def test_block_is_pre_norm_residual():
    block = Block(D, SpectralMixer(D, MAX_LEN), mlp_ratio=2.0, norm="rms").double()
    x = torch.randn(2, 11, D, dtype=torch.float64)
    h = x + block.mixer(block.norm1(x))
    assert_close(block(x), h + block.mlp(block.norm2(h)), what="block")


def test_block_without_mlp():
    block = Block(D, SpectralMixer(D, MAX_LEN), mlp_ratio=0).double()
    assert block.mlp is None and block.norm2 is None
    x = torch.randn(2, 11, D, dtype=torch.float64)
    assert_close(block(x), x + block.mixer(block.norm1(x)), what="mixer-only block")


def test_mlp_step_is_forward_and_restores_onednn(monkeypatch):
    from specmix.blocks import MLP
    mlp = MLP(D, 4 * D)
    x = torch.randn(3, D)                                   # float32, contiguous: oneDNN's case
    assert_close(mlp.step(x), mlp(x), what="MLP.step")
    assert torch.backends.mkldnn.enabled

    def failing_gelu(h):
        assert not torch.backends.mkldnn.enabled            # ATen's kernel inside the step
        raise RuntimeError("gelu failed")
    monkeypatch.setattr(torch.nn.functional, "gelu", failing_gelu)
    with pytest.raises(RuntimeError, match="gelu failed"):
        mlp.step(x)
    assert torch.backends.mkldnn.enabled                    # restored after an error too


def test_dropout_inside_blocks_is_off_in_eval():
    block = Block(D, SpectralMixer(D, MAX_LEN, gated=True), dropout=0.5)
    x = torch.randn(2, 11, D)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    a, b = block(x), block(x)
    assert not torch.equal(a, b)


def test_bad_block_arguments():
    with pytest.raises(ValueError, match="mixer.d_model must equal"):
        Block(D + 1, Attention(D, 2))
    with pytest.raises(ValueError, match="norm must be one of"):
        Block(D, Attention(D, 2), norm="batch")
    with pytest.raises(ValueError, match="mlp_ratio must be >= 0"):
        Block(D, Attention(D, 2), mlp_ratio=-1)
    with pytest.raises(ValueError, match="dropout must be in"):
        Block(D, Attention(D, 2), dropout=1.5)
