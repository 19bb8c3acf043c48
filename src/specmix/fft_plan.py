"""How a convolution's FFTs are laid out: fast lengths, channel chunks, the wrap plan.

Planning only (integers and slices, no transforms), used by :mod:`specmix.functional`:
``next_fast_len`` / ``fft_conv_len`` pick a transform length MKL runs fast,
``channel_chunks`` splits the channels so that temporaries stay small (with the
measurements behind each constant), ``conv_plan`` chooses between zero padding and the
wrap-corrected power of two.
"""
from __future__ import annotations

import functools
import math

import torch

__all__ = ["next_fast_len", "fft_conv_len", "channel_chunks", "wrapped_fft_len", "conv_plan"]


def _is_7_smooth(m: int) -> bool:
    for p in (2, 3, 5, 7):
        while m % p == 0:
            m //= p
    return m == 1


@functools.lru_cache(maxsize=4096)
def next_fast_len(n: int) -> int:
    """A fast FFT length ``m >= n``: ``16 * j`` with ``j`` 7-smooth (any 7-smooth m for n <= 1024).

    The smallest 7-smooth length is not always the fastest: torch's CPU FFT (MKL in the
    2.13 wheel) on 2 cores ran an rfft+irfft pair for n = 131073 in 106 ms at
    m = 131220 = 2^2 3^8 5 but in 77 ms at m = 131712 = 2^7 3 7^3, the first multiple of 16
    (a development measurement, D = 256).
    """
    if n < 1:
        raise ValueError(f"next_fast_len: n must be >= 1, got {n}")
    if n <= 1024:
        return next(m for m in range(n, 2 * n + 2) if _is_7_smooth(m))
    j = -(-n // 16)
    while not _is_7_smooth(j):
        j += 1
    return 16 * j


def fft_conv_len(seq_len: int, n_taps: int, causal: bool = True) -> int:
    """The FFT length of a convolution of N inputs with L taps: ``>= N + L - 1`` when causal
    (linear, nothing wraps); for a centred kernel (centre ``c = (L - 1) // 2``, outputs read
    from ``c``) ``>= max(L, N + L - 1 - c)``: the transform is circular, but what wraps lands
    only on outputs that are cropped away, in the forward and in both gradients. A
    bidirectional kernel of 2N - 1 taps then needs 2N - 1 points instead of 3N - 2."""
    if causal:
        return next_fast_len(seq_len + n_taps - 1)
    return next_fast_len(max(n_taps, seq_len + n_taps - 1 - (n_taps - 1) // 2))


# Channels are processed in chunks of rows so that temporaries stay small. Training keeps
# chunks small (peak memory: the output plus one chunk's buffers), a power of two of rows
# with about CHUNK_ELEMS_TRAIN real FFT points per chunk (at least MIN_CHUNK_ROWS): at B = 1,
# D = 256 that is one chunk at 4K, 64 rows at 16K and 16 from 64K. Chunks of 2^18 points
# (32 rows at 4K, 16 at 16K) kept the 16K peak at 88 MB, but a training call took 40 and 186
# ms at 4K and 16K against 29 and 149 ms with 2^21 (Intel Xeon AVX-512, 2 cores, medians of
# 11), where flash-linear-attention's LongConvolution, one call for all channels, peaked at
# 544 MB at 16K; 64K keeps 16 rows (32 raised its peak from 377 to 474 MB for 3% less time).
# Inference runs in one call up to CHUNK_ELEMS_INFER FFT points (the output is then a view
# into the inverse FFT's buffer). Beyond, up to n_fft = LEAN_MAX_FFT, in lean chunks whose
# rows' buffers hold about 1/INFER_CHUNK_SHARE of the output's B * D * N: at N = 16K, D = 256
# one call peaked at 96 MB against SDPA's 17 MB, 16-row chunks at 26-32 MB, in the same time
# (0.99x vs 1.13x the bare FFT pair, side by side). Beyond LEAN_MAX_FFT chunks are large
# (CHUNK_ELEMS_HUGE complex points), because MKL's transforms of few long rows ran slower
# there, by host: with AVX2 only, 16-row chunks cost 1.33x the pair at 32K and 1.35x at 64K
# against 1.13x in one call, so the lean cut is n_fft = 2^15; with AVX-512 they cost 1.06x
# at 32K and 1.04x at 64K against 1.07x and 1.08x in one call, but 1.29x at 128K against
# 1.12x, so the cut is n_fft = 2^17 (2 cores, D = 256, alternating in one process).
# Lean chunks hold at least MIN_LEAN_ROWS rows: an eighth of the output gave 4-row chunks to
# bidirectional kernels (transformed at n_fft ~ 3N then, 2N now), which ran 4.5x slower than
# 32 rows (N = 16K, D = 128, cached spectrum: 57 vs 16 ms; one call 13 ms); causal N = 16K and
# 32K at D = 256 ran 16-row chunks in 35 and 79 ms, 32-row ones in 26 and 61 ms (AVX-512,
# 2 cores, medians of 9).
# Huge chunks: at N = 1M, D = 256, n_fft = 2^21, chunks of 2^25, 2^26, 2^27, 2^28 complex
# points took 10.3, 9.5, 9.1, 8.8 s (same host, medians of 3); 2^27 is two chunks of 128 rows.
# Huge chunks hold at most half the channels: at N = 256K (n_fft 2^19) 2^27 points would be
# one call of all 256 rows, whose peak was 3.2 GB against 2.2 GB in two chunks of 128 rows
# and fla's 3.1 GB, for no gain in time (1.30x and 1.21x fla's time, two runs the same day).
CHUNK_ELEMS_TRAIN = 1 << 21
CHUNK_ELEMS_INFER = 1 << 22
LEAN_MAX_FFT = 1 << (17 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 15)
INFER_CHUNK_SHARE = 8
MIN_LEAN_ROWS = 32
CHUNK_ELEMS_HUGE = 1 << 27
MIN_CHUNK_ROWS = 16


def _pow2_floor(m: int) -> int:
    return 1 << (m.bit_length() - 1) if m > 0 else 0


def channel_chunks(x_t: torch.Tensor, n_fft: int, training: bool) -> list[slice]:
    n_rows = math.prod(x_t.shape[:-2])                        # product of batch dims
    d_model, seq_len = x_t.shape[-2:]
    if training:
        size = max(_pow2_floor(CHUNK_ELEMS_TRAIN // max(1, n_rows * n_fft)), MIN_CHUNK_ROWS)
    elif n_rows * d_model * n_fft <= CHUNK_ELEMS_INFER:
        size = d_model
    elif n_fft <= LEAN_MAX_FFT:
        size = max(_pow2_floor(d_model * seq_len // (INFER_CHUNK_SHARE * n_fft)), MIN_LEAN_ROWS)
    else:
        size = max(min(CHUNK_ELEMS_HUGE // (n_rows * (n_fft // 2 + 1)), -(-d_model // 2)), MIN_CHUNK_ROWS)
    return [slice(c, min(c + size, d_model)) for c in range(0, d_model, size)]


# A causal convolution whose N + L - 1 just passes a power of two P >= max(N, L) (N = L =
# 4099, 65537) runs its FFTs at P and corrects the wrap-around exactly: only the first
# r = N + L - 1 - P outputs wrap, each by one linear output beyond P, an O(r^2) sum. Mixed-
# radix lengths (8400 for 4099) cost MKL up to 1.3x more per transform in the chunked
# training path (measured on 2 cores), so this is used when no cached spectrum is passed.
WRAP_MAX = 64


def wrapped_fft_len(seq_len: int, n_taps: int) -> tuple[int, int] | None:
    """``(P, r)`` for the wrap-corrected causal plan (see ``WRAP_MAX``), or None."""
    p = 1 << (max(seq_len, n_taps) - 1).bit_length()                # power of two >= N, L
    wrap = seq_len + n_taps - 1 - p
    return (p, wrap) if 0 < wrap <= WRAP_MAX else None


def conv_plan(seq_len: int, n_taps: int, causal: bool, cached: bool) -> tuple[int, int, int]:
    """``(n_fft, start, wrap)`` of a convolution: the wrap-corrected power of two where it
    applies (causal, no cached spectrum), else :func:`fft_conv_len`."""
    plan = wrapped_fft_len(seq_len, n_taps) if causal and not cached else None
    if plan is not None:
        return plan[0], 0, plan[1]
    return fft_conv_len(seq_len, n_taps, causal), 0 if causal else (n_taps - 1) // 2, 0
