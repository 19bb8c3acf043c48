"""Filter parameterisations: learnable parameters -> a kernel ``(D, L)`` for a requested length.

Both filters follow the lag convention of :mod:`specmix.functional`: a causal kernel for
length N has ``L = N`` taps (lags 0..N-1); a bidirectional one has ``L = 2N - 1`` taps,
centred (lags -(N-1)..N-1). Taps beyond these can never reach an output of a length-N
sequence, so they are not produced.

Legend: D channels, N sequence length, F frequency bins.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .envelope import enveloped_taps, mirrored_envelope
from .functional import fft_conv_len, fft_conv_rows_cf, next_fast_len
from .traceable import tracing

__all__ = ["FrequencyFilter", "ImplicitFilter", "decaying_kernel"]


def _check_seq_len(seq_len: int, name: str = "seq_len") -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, torch.SymInt)) or seq_len < 1:
        raise ValueError(f"{name} must be an int >= 1, got {seq_len!r}")
    return seq_len


def decaying_kernel(d_model: int, n_taps: int, *, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random initial kernel ``(D, n_taps)``: Gaussian taps under an exponential decay.

    Channel c decays with a time constant log-spaced from 1 to ``n_taps`` so that some
    channels mix locally and others globally; each channel has unit energy, so the
    convolution roughly preserves the input's variance.
    """
    taus = torch.logspace(0, math.log10(max(n_taps, 2)), d_model, dtype=torch.float64)
    lags = torch.arange(n_taps, dtype=torch.float64)
    envelope = torch.exp(-lags[None, :] / taus[:, None])            # (D, L)
    taps = torch.randn(d_model, n_taps, generator=generator, dtype=torch.float64) * envelope
    taps = taps / taps.norm(dim=1, keepdim=True)
    return taps.to(dtype)


def kernel_as_called(k: torch.Tensor, seq_len: int, built_causal: bool, causal: bool, who: str) -> torch.Tensor:
    """The kernel a call of the given causality uses: a bidirectional filter's centred kernel
    ``(C, 2N - 1)`` called causally keeps its lags >= 0, ``(C, N)``; a causal filter cannot
    run bidirectionally (``who`` names the caller in the error)."""
    if causal == built_causal:
        return k
    if causal:
        return k[:, seq_len - 1:]                                        # lags 0..N-1
    raise ValueError(f"{who}: built with causal=True, it cannot run bidirectionally")


class _KernelFilter(nn.Module):
    """Base: ``kernel(N)`` from the subclass; ``kernel_for_conv(N)`` adds an inference cache."""

    causal: bool

    def kernel(self, seq_len: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, mode: bool = True) -> "_KernelFilter":
        self.__dict__.pop("_spectrum_cache", None)      # entering or leaving eval drops the cache
        return super().train(mode)

    def kernel_for_conv(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(k, k_f)``: the kernel and, in eval mode with no gradient recorded, its cached spectrum.

        ``k_f = rfft(k, n=fft_conv_len(N, L, causal))`` is computed once per length and reused until
        a parameter changes, so inference pays for two FFTs per call instead of three. Changes
        are tracked by the parameters' version counters and storage; updates that bypass the
        counters (fused optimizers, in-place ops on ``p.data``) happen in training, and every
        ``train()``/``eval()`` call empties the cache.
        """
        if torch.is_grad_enabled() or self.training or tracing():   # traced: no Python cache
            return self.kernel(seq_len), None
        params = tuple(self.parameters())
        key = (seq_len, tuple(p._version for p in params), tuple(p.data_ptr() for p in params))
        cache = self.__dict__.setdefault("_spectrum_cache", {})
        if key not in cache:
            cache.clear()
            k = self.kernel(seq_len)                                        # (D, L)
            if k.dtype not in (torch.float32, torch.float64):               # e.g. autocast MLP
                k = k.float()
            cache[key] = (k, torch.fft.rfft(k, n=fft_conv_len(seq_len, k.shape[-1], self.causal)))
        return cache[key]


class FrequencyFilter(_KernelFilter):
    """The note's learned frequency-domain filter, projected onto exact (causal) kernels.

    The parameter ``response`` is a complex frequency response per channel, stored as
    real pairs ``(D, F, 2)`` on the DFT grid of length ``n_grid``: the first fast FFT length
    ``>= max_len`` when causal, ``>= 2 * max_len - 1`` when bidirectional. Its inverse real FFT is a circular kernel;
    :meth:`kernel` reads position m of it as lag m (and, bidirectional, position
    ``n_grid - m`` as lag -m), which is the projection onto kernels of the right support:
    a causal filter has no anti-causal tail at all. The kernel is then applied as a
    *linear* convolution (zero-padded FFT), never circularly, so it is exact at every
    ``N <= max_len``.

    ``N > max_len`` is not supported and raises ``ValueError``: the filter has no taps for
    lags of ``max_len`` or more, and silently truncating a global filter would change
    what a trained model computes. Use :class:`ImplicitFilter` for length-free kernels.

    Args:
        d_model: channels D.
        max_len: longest supported sequence.
        causal: causal (lags >= 0) or bidirectional centred kernel.

    Shape:
        ``kernel(N)`` -> ``(D, N)`` causal, ``(D, 2N - 1)`` bidirectional.
    """

    def __init__(self, d_model: int, max_len: int, *, causal: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.d_model, self.max_len, self.causal = d_model, _check_seq_len(max_len, "max_len"), causal
        # a fast DFT length: a prime grid (max_len = 4099, 65537) would make every kernel
        # irfft a slow Bluestein transform; extra taps beyond max_len are never used
        self.n_grid = next_fast_len(max_len if causal else 2 * max_len - 1)
        n_freq = self.n_grid // 2 + 1
        self.response = nn.Parameter(torch.empty(d_model, n_freq, 2, device=device, dtype=dtype))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # float64 taps and spectrum: the response is then exact to its storage dtype (a float32
        # rfft left the symmetric bidirectional start asymmetric by ~1e-8 on some CPUs)
        taps = decaying_kernel(self.d_model, self.max_len, dtype=torch.float64)   # (D, max_len) lags >= 0
        if not self.causal:   # symmetric start: the same taps for look-back and look-ahead
            gap = self.n_grid - (2 * self.max_len - 1)                   # unused lags, zero
            taps = torch.cat([taps, taps.new_zeros(self.d_model, gap), taps[:, 1:].flip(-1)], dim=-1)
        resp = torch.fft.rfft(taps, n=self.n_grid)                       # (D, F) complex
        self.response.copy_(torch.view_as_real(resp))

    def kernel(self, seq_len: int, channels: slice = slice(None)) -> torch.Tensor:
        """The kernel for length N; ``channels`` selects a block of rows (only theirs are
        transformed: context parallelism keeps one block per rank)."""
        return self._kernel_from(self.response[channels], self._check_len(seq_len))

    def _check_len(self, seq_len: int) -> int:
        _check_seq_len(seq_len)
        if seq_len > self.max_len:
            raise ValueError(f"sequence length N={seq_len} exceeds max_len={self.max_len} of "
                             "FrequencyFilter; build the layer with a larger max_len or use "
                             "filter='implicit'")
        return seq_len

    def _kernel_from(self, response: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The kernel rows of ``response`` rows ``(C, F, 2)``: ``(C, N)`` causal, ``(C, 2N-1)``."""
        if response.dtype not in (torch.float32, torch.float64):   # FFTs never run in half precision
            response = response.float()
        resp = torch.view_as_complex(response.contiguous())             # (C, F) complex
        circ = torch.fft.irfft(resp, n=self.n_grid)                      # (C, n_grid) lag m at m
        # lag m sits at position m mod n_grid; gathered (not sliced), so that a traced length
        # N needs no guard N != n_grid (a slice's contiguity check would add one)
        first = 0 if self.causal else -(seq_len - 1)
        lags = torch.arange(first, seq_len, device=circ.device)          # (L,)
        return circ.index_select(1, lags.remainder(self.n_grid))         # (C, L): N causal, 2N-1

    def convolve(self, x_t: torch.Tensor, causal: bool | None = None) -> torch.Tensor:
        """``fft_conv_cf(x_t, kernel(N))`` for ``x_t (..., D, N)``, fused: each channel chunk
        computes its kernel rows and backward recomputes them, so in training neither the
        kernel nor its gradient is ever held at full size (the filter's own convolution).
        ``causal=True`` on a bidirectional filter keeps only its lags >= 0."""
        seq_len = self._check_len(x_t.shape[-1])
        causal = self.causal if causal is None else causal
        rows = lambda resp: kernel_as_called(self._kernel_from(resp, seq_len), seq_len,  # noqa: E731
                                             self.causal, causal, "FrequencyFilter.convolve")
        n_taps = seq_len if causal else 2 * seq_len - 1
        return fft_conv_rows_cf(x_t, rows, (self.response,), n_taps, causal=causal)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, causal={self.causal}"


class ImplicitFilter(_KernelFilter):
    """A length-free kernel: a small MLP over positional features, times a learned decay.

    ``k[c, t] = MLP(phi(t))[c] * exp(-rate_c * |t|) * sqrt(1 - exp(-2 rate_c))`` where ``phi(t)`` holds sines and
    cosines of the lag ``t`` at fixed, geometrically spaced periods (2 .. 2 * ``decay_len``).
    Nothing depends on the requested length, so a kernel for any N (also longer than in
    training) is the prefix of the kernel for a longer N.

    Args:
        d_model: channels D.
        causal: causal or bidirectional centred kernel.
        d_hidden: MLP width.
        n_features: number of sine/cosine periods.
        decay_len: sets the initial decay time constants (log-spaced 1 .. decay_len) and
            the longest feature period; not a length limit.

    Shape:
        ``kernel(N)`` -> ``(D, N)`` causal, ``(D, 2N - 1)`` bidirectional.
    """

    def __init__(self, d_model: int, *, causal: bool = True, d_hidden: int = 32,
                 n_features: int = 8, decay_len: int = 1024, device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.causal, self.decay_len = d_model, causal, decay_len
        periods = torch.logspace(math.log10(2.0), math.log10(2.0 * decay_len), n_features)
        self.register_buffer("omega", (2 * math.pi / periods).to(device=device, dtype=dtype))
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_features, d_hidden, **factory), nn.GELU(),
            nn.Linear(d_hidden, d_hidden, **factory), nn.GELU(),
            nn.Linear(d_hidden, d_model, **factory),
        )
        self.log_rate = nn.Parameter(torch.empty(d_model, **factory))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        taus = torch.logspace(0, math.log10(max(self.decay_len, 2)), self.d_model)
        self.log_rate.copy_(-torch.log(taus))

    def kernel(self, seq_len: int) -> torch.Tensor:
        _check_seq_len(seq_len)
        first = 0 if self.causal else -(seq_len - 1)
        return self._taps(first, seq_len - first)

    def kernel_at(self, first: int, count: int) -> torch.Tensor:
        """Taps for the lags ``first .. first + count - 1`` only, ``(D, count)``: the slice
        ``kernel(N)[:, first: first + count]`` of a causal kernel, for any N beyond it."""
        if not self.causal or first < 0:
            raise ValueError(f"kernel_at: needs a causal filter and first >= 0, got first={first}")
        return self._taps(first, _check_seq_len(count, "count"))

    def _taps(self, first: int, count: int) -> torch.Tensor:
        lags = torch.arange(first, first + count, device=self.omega.device,
                            dtype=self.omega.dtype)                     # (L,)
        phase = lags[:, None] * self.omega                               # (L, n_features)
        feats = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)  # (L, 2 n_features)
        hidden = self.mlp[:-1](feats)                                    # (L, d_hidden)
        last = self.mlp[-1]
        rate, log_gain = self._log_rate_gain()
        if first >= 0 and not tracing():     # the fused last layer and envelope (envelope.py)
            return enveloped_taps(hidden, last.weight, last.bias, rate, log_gain, first)
        # the last layer written channels-first, (D, H) @ (H, L) + bias: the (D, L) kernel
        # comes out contiguous, with no transposed copy of it
        shape = torch.addmm(last.bias[:, None], last.weight, hidden.t())  # (D, L)
        if tracing():                        # compile / export: the formula as it is written
            return shape * torch.exp(torch.addcmul(log_gain, rate, lags.abs()[None, :], value=-1))
        return shape * mirrored_envelope(rate, log_gain, first, count)   # bidirectional: E at |t|

    def _log_rate_gain(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rate, log_gain)``, each ``(D, 1)``: the unit-energy envelope is
        ``exp(log_gain - rate |t|)``, since sum_t exp(-2 r t) (1 - exp(-2 r)) = 1."""
        rate = torch.exp(self.log_rate)[:, None]                         # (D, 1)
        return rate, 0.5 * torch.log(-torch.expm1(-2 * rate))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, causal={self.causal}, decay_len={self.decay_len}"
