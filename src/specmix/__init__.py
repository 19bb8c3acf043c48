"""specmix: FFT-based spectral mixing, an exact causal O(n log n) replacement for self-attention.

The library core lives at the package root (functional <- filters <- mixers <- blocks <- model
<- swap); ``specmix.data`` holds corpora and synthetic tasks, ``specmix.app`` the command line
and everything it runs, ``specmix.reference`` a NumPy-only twin. The torch-based API is
imported lazily, so that ``specmix.reference`` and the command line's NumPy paths never
load torch.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "fft_conv": "functional", "fft_conv_cf": "functional", "fft_conv_ref": "functional",
    "attention_core": "functional", "local_attention": "functional",
    "next_fast_len": "functional", "rotary": "functional",
    "FrequencyFilter": "filters", "ImplicitFilter": "filters",
    "SpectralMixer": "mixers", "SpectralState": "mixers", "TaylorSpectralMixer": "feature_map",
    "Attention": "attention",
    "AttentionState": "attention",
    "MLP": "blocks", "Block": "blocks",
    "ConvCache": "decoding",
    "LMConfig": "model", "SpecMixLM": "model",
    "SpectralSelfAttention": "swap", "swap_attention": "swap", "HFSpectralAttention": "hf_attention",
    "UsageError": "validation", "Diverged": "validation", "check_finite": "tokens",
    "load_model": "app.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'specmix' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
