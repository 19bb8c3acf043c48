"""specmix: FFT-based spectral mixing, an exact causal O(n log n) replacement for self-attention."""
from .filters import FrequencyFilter, ImplicitFilter
from .functional import attention_core, fft_conv, fft_conv_ref, local_attention, next_fast_len
from .layers import MLP, Attention, Block, SpectralMixer

__version__ = "0.1.0"

__all__ = [
    "fft_conv", "fft_conv_ref", "attention_core", "local_attention", "next_fast_len",
    "FrequencyFilter", "ImplicitFilter",
    "SpectralMixer", "Attention", "MLP", "Block",
]
