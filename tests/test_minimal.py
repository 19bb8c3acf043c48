"""The one-page version of the note computes what the library computes, with the same weights."""
import torch

from specmix import Block, SpectralMixer
from specmix.minimal import MinimalBlock, MinimalSpectralMixer, causal_fft_conv
from specmix.functional import fft_conv_ref

from helpers import assert_causal, assert_close


def _library_twin(minimal: MinimalSpectralMixer) -> SpectralMixer:
    mixer = SpectralMixer(minimal.in_proj.in_features, minimal.max_len).double()
    assert mixer.filter.n_grid == minimal.max_len
    mixer.load_state_dict({"in_proj.weight": minimal.in_proj.weight, "in_proj.bias": minimal.in_proj.bias,
                           "out_proj.weight": minimal.out_proj.weight, "out_proj.bias": minimal.out_proj.bias,
                           "filter.response": minimal.response})
    return mixer


def test_causal_fft_conv_is_the_direct_convolution():
    u, h = torch.randn(2, 19, 3, dtype=torch.float64), torch.randn(3, 19, dtype=torch.float64)
    assert_close(causal_fft_conv(u, h), fft_conv_ref(u, h))


def test_minimal_mixer_and_block_equal_the_library():
    minimal = MinimalBlock(8, 32).double()
    x = torch.randn(2, 21, 8, dtype=torch.float64)
    mixer = _library_twin(minimal.mixer)
    assert_close(minimal.mixer(x), mixer(x), what="mixer")
    block = Block(8, mixer).double()
    block.norm1.load_state_dict(minimal.norm1.state_dict())
    block.norm2.load_state_dict(minimal.norm2.state_dict())
    block.mlp.fc.load_state_dict(minimal.fc.state_dict())
    block.mlp.proj.load_state_dict(minimal.proj.state_dict())
    assert_close(minimal(x), block(x), what="block")
    assert_causal(minimal, x, times=(0, 10, 19), atol=1e-10)
