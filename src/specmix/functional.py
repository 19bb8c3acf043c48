"""Pure tensor functions: FFT convolution, its direct twin, and attention cores.

FFT convention (stated once for the whole package)
--------------------------------------------------
Real FFTs run along the sequence axis with torch's default ("backward") norm:
``x_f = rfft(x, n=n_fft)`` is unnormalised, ``irfft(x_f, n=n_fft)`` divides by ``n_fft``.
A kernel ``k`` of shape ``(D, L)`` holds ``L`` taps per channel.

* causal: tap ``s`` is lag ``s``:  ``y[t] = sum_{s=0}^{min(t, L-1)} k[s] * x[t - s]``
* bidirectional (centred): with ``c = (L - 1) // 2`` tap ``s`` is lag ``s - c``:
  ``y[t] = sum_s k[s] * x[t - s + c]`` (taps ``s < c`` look ahead, ``s > c`` look back).

Both are *linear* convolutions: ``x`` and ``k`` are zero-padded to a fast length before
the FFT and the result is cropped. Causal: ``n_fft >= N + L - 1``, so nothing wraps around
(no circular leak of the future into the past). Centred: ``n_fft >= max(L, N + L - 1 - c)``;
what wraps then lands only on cropped outputs (:func:`fft_plan.fft_conv_len`).

FFTs always run in float32 or float64: half-precision inputs (e.g. under autocast)
are promoted for the FFT and the result is cast back to the input dtype.

The attention cores live in :mod:`specmix.attention_ops`, the FFT lengths, channel chunks and
wrap plan in :mod:`specmix.fft_plan`; both are re-exported here.

Legend: B batch (any leading shape), N sequence, D channels, L taps, F = n_fft // 2 + 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .attention_ops import attention_core, local_attention, rotary, sliding_window_mask  # noqa: F401
from .fft_plan import channel_chunks, conv_plan, fft_conv_len, next_fast_len  # noqa: F401
from .traceable import traced_fft_conv_cf, tracing


__all__ = [
    "next_fast_len",
    "fft_conv",
    "fft_conv_cf",
    "fft_conv_rows_cf",
    "fft_conv_len",
    "fft_conv_ref",
    "gemm_dtype",
    "add_channel_bias",
    "attention_core",
    "sliding_window_mask",
    "local_attention",
    "rotary",
]

_FFT_DTYPES = (torch.float32, torch.float64)


def _check_conv_args(x: torch.Tensor, k: torch.Tensor, channels_first: bool = False) -> None:
    """Errors in :func:`fft_conv`'s terms, ``x (..., N, D)``; ``channels_first``: ``x`` is
    ``(..., D, N)`` (checked without a transposed view: this runs on every call)."""
    if not isinstance(x, torch.Tensor) or not isinstance(k, torch.Tensor):
        raise TypeError("fft_conv: x and k must be torch.Tensor, got "
                        f"{type(x).__name__} and {type(k).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"fft_conv: x must be a floating-point tensor, got dtype {x.dtype}")
    if not k.is_floating_point():
        raise TypeError(f"fft_conv: k must be a floating-point tensor, got dtype {k.dtype}")
    if x.dim() < 2:
        layout = "(..., D, N)" if channels_first else "(..., N, D)"
        raise ValueError(f"fft_conv: x must have shape {layout}, got {tuple(x.shape)}")
    seq_len, d_model = (x.shape[-1], x.shape[-2]) if channels_first else (x.shape[-2], x.shape[-1])
    if k.dim() != 2:
        raise ValueError(f"fft_conv: k must have shape (D, L), got {tuple(k.shape)}")
    if k.shape[0] != d_model:
        raise ValueError(f"fft_conv: k has {k.shape[0]} channels but x has D={d_model}; "
                         "expected k of shape (D, L)")
    if seq_len < 1 or k.shape[1] < 1:
        raise ValueError(f"fft_conv: need N >= 1 and L >= 1, got N={seq_len}, L={k.shape[1]}")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def gemm_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype autocast runs a matrix product of ``x`` in: the autocast dtype when autocast
    is on for ``x``'s device and ``x`` is float32/16, else ``x.dtype``. Casting a weight to it
    *before* expanding it over the batch keeps autocast from casting the expanded copy."""
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.get_autocast_dtype(device)
    return x.dtype


class _AddChannelBias(torch.autograd.Function):
    """``u (B, C, N) += bias (C,)`` in place (the bias cast to ``u``'s dtype). Autograd's own
    backward reduces the gradient over (B, N) in one ``sum``, which for bfloat16 first copies
    the whole (B, C, N) gradient to float32 (18x slower here than two single-axis sums; a
    ``sum(2, dtype=float32)`` copies it too). The sum along N stays in the gradient's dtype
    (accumulated in float32, rounded once, as a GEMM's output is), the sum over B in float32."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.bias_dtype = bias.dtype
        ctx.mark_dirty(u)
        return u.add_(bias.to(u.dtype)[:, None])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_bias = None
        if ctx.needs_input_grad[1]:
            acc = torch.promote_types(ctx.bias_dtype, torch.float32)
            grad_bias = grad.sum(2).to(acc).sum(0).to(ctx.bias_dtype)    # (B, C, N) -> (B, C) -> (C,)
        return grad if ctx.needs_input_grad[0] else None, grad_bias


def add_channel_bias(u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``u + bias[:, None]`` for channels-first ``u (B, C, N)``, overwriting ``u`` (a fresh
    activation, e.g. a GEMM's output, that nothing else saved)."""
    if u.dim() != 3 or bias.shape != (u.shape[1],):
        raise ValueError(f"add_channel_bias: expected u (B, C, N) and bias (C,), got u {tuple(u.shape)}, "
                         f"bias {tuple(bias.shape)}")
    if tracing():                   # compile / export trace no in-place Function
        return u + bias.to(u.dtype)[:, None]
    return _AddChannelBias.apply(u, bias)


def _wrapped_outputs(x_tail: torch.Tensor, k_tail: torch.Tensor) -> torch.Tensor:
    """The linear outputs ``y[t + P]``, ``t < r``, that a length-P circular convolution adds
    to ``y[t]``: from the last r inputs ``x_tail (..., D, r)`` and taps ``k_tail (D, r)``,
    ``w[t] = sum_{a + b = t + r - 1} x_tail[a] k_tail[b]``. Run once over all channels."""
    r = x_tail.shape[-1]
    wrapped = x_tail.new_zeros(x_tail.shape)                          # (..., D, r)
    for b in range(r):
        wrapped[..., : b + 1] += k_tail[:, b, None] * x_tail[..., r - 1 - b:]
    return wrapped


def _wrapped_adjoints(g: torch.Tensor, x_tail: torch.Tensor | None, k_tail: torch.Tensor | None):
    """``(dx_tail (..., D, r), dk_tail (D, r))`` of ``sum(g * _wrapped_outputs(x_tail, k_tail))``:
    ``dx_tail`` needs only the taps, ``dk_tail`` (summed over batch) only the inputs."""
    r = g.shape[-1]
    dx = g.new_zeros(g.shape) if k_tail is not None else None
    dk = g.new_zeros(g.shape[-2:]) if x_tail is not None else None
    for b in range(r):
        if dx is not None:
            dx[..., r - 1 - b:] += k_tail[:, b, None] * g[..., : b + 1]
        if dk is not None:
            prod = (g[..., : b + 1] * x_tail[..., r - 1 - b:]).sum(-1)     # (..., D)
            dk[:, b] = prod.reshape(-1, prod.shape[-1]).sum(0)
    return dx, dk


def _conv_forward(x_t, k, k_f, plan: tuple[int, int, int], rows, params, training: bool,
                  keep: tuple[bool, bool] = (False, False)):
    """``(y (..., D, N), n_taps, spectra)`` of :class:`_FFTConv`'s forward, a plain function:
    the autograd Function calls it, and so does inference directly (no graph, no saved tensors).
    ``y = irfft(rfft(x) * k_f)[start:start+N]`` per channel chunk, minus the wrapped outputs.
    ``keep = (x, k)`` (one chunk, spectrum not passed in): ``spectra`` holds ``conj(rfft(x))``
    if ``x`` (dk needs it) and ``conj(rfft(k))`` if ``k`` (dx needs it), None in place of the
    other; backward reads them instead of transforming x and k again (else spectra is None)."""
    n_fft, start, wrap = plan
    seq_len = x_t.shape[-1]
    kept = None

    def chunk(x_c, k_c, kf_c):                                         # (..., C, N) of one chunk
        nonlocal kept
        kf_c = torch.fft.rfft(k_c, n=n_fft) if kf_c is None else kf_c  # (C, F)
        x_f = torch.fft.rfft(x_c, n=n_fft)                             # (..., C, F) complex
        y_f = x_f * kf_c if keep[0] else x_f.mul_(kf_c)              # out of place if x_f is kept
        if any(keep):               # the kept spectra, conjugated once the product is taken
            kept = (x_f.conj_physical_() if keep[0] else None, kf_c.conj_physical_() if keep[1] else None)
        del kf_c                    # not held while irfft allocates its output (peak memory)
        return torch.fft.irfft(y_f, n=n_fft)[..., start:start + seq_len]

    chunks = channel_chunks(x_t, n_fft, training)
    keep = keep if len(chunks) == 1 and k_f is None else (False, False)
    tails = []                                                         # (C, r) last taps per chunk
    if len(chunks) == 1:            # one chunk: y is a view into the irfft buffer, no copy
        k_c = k if rows is None else rows(*params)                     # (D, L)
        y = chunk(x_t, k_c, k_f)
        tails += [k_c[:, k_c.shape[-1] - wrap:]] if wrap else []
    else:
        y = x_t.new_empty(x_t.shape)                                   # (..., D, N)
        for c in chunks:
            k_c = k[c] if rows is None else rows(*(p[c] for p in params))   # (C, L)
            y[..., c, :] = chunk(x_t[..., c, :], k_c, None if k_f is None else k_f[c])
            # a copy of the last taps: a view would keep the chunk's kernel rows alive
            tails += [k_c[:, k_c.shape[-1] - wrap:].clone()] if wrap else []
    if wrap:                        # circular at n_fft: remove the r wrapped-around outputs
        y[..., :wrap] -= _wrapped_outputs(x_t[..., seq_len - wrap:], torch.cat(tails))
    return y, k_c.shape[-1], kept


class _FFTConv(torch.autograd.Function):
    """Channels-first linear convolution whose backward is itself FFT convolutions.

    Forward: ``y = irfft(rfft(x) * k_f)[start:start+N]``. Backward, with ``dy`` placed at
    offset ``start`` in a zero buffer of length n_fft: ``dx = irfft(rfft(dy) * conj(k_f))[:N]``
    (a correlation with k) and ``dk = irfft(sum_batch rfft(dy) * conj(rfft(x)))[:L]``.
    Work runs in channel chunks (:func:`fft_plan.channel_chunks`); only x and k are saved,
    spectra are recomputed per chunk, so the extra memory is the output plus one chunk's
    buffers. A problem of one chunk (short sequences: at most ~2^18 FFT points) saves the
    spectra that backward needs instead (conj(rfft(x)) for dk, conj(rfft(k)) for dx): a
    transform fewer each, for at most a few MB.

    Fused filter (``rows`` given, ``k`` None): the kernel is never materialised. ``rows(*p)``
    maps the chunk's rows of each parameter in ``params`` (dim 0 = channel) to the chunk's
    kernel rows ``(C, L)``; backward recomputes them and backpropagates the chunk's kernel
    gradient into those rows, so neither the kernel nor its gradient exists at full size.
    """

    @staticmethod
    def forward(ctx, x_t, k, k_f, n_fft: int, start: int, wrap: int, rows, *params):
        training = any(ctx.needs_input_grad[:2]) or any(ctx.needs_input_grad[7:])
        keep = (ctx.needs_input_grad[1], ctx.needs_input_grad[0]) if rows is None else (False, False)
        y, n_taps, spectra = _conv_forward(x_t, k, k_f, (n_fft, start, wrap), rows, params, training, keep)
        ctx.save_for_backward(x_t, k, *params, *(spectra or ()))
        ctx.rows, ctx.n_params, ctx.kept = rows, len(params), spectra is not None
        ctx.shape = (x_t.shape[-1], n_taps, n_fft, start, wrap)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x_t, k, *saved = ctx.saved_tensors
        params, spectra = saved[:ctx.n_params], (saved[ctx.n_params:] if ctx.kept else None)
        rows = ctx.rows
        seq_len, n_taps, n_fft, start, wrap = ctx.shape
        need_dx, need_dk = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_dp = [rows is not None and need for need in ctx.needs_input_grad[7:]]
        dx = x_t.new_empty(x_t.shape) if need_dx else None             # (..., D, N)
        dk = k.new_empty(k.shape) if need_dk else None                 # (D, L)
        dparams = [p.new_zeros(p.shape) if need else None for p, need in zip(params, need_dp)]
        x_tail = x_t[..., seq_len - wrap:]                             # (..., D, r)
        dk_wrap = (_wrapped_adjoints(-dy[..., :wrap], x_tail, None)[1]
                   if wrap and (need_dk or any(need_dp)) else None)    # (D, r)
        tails = []
        for c in channel_chunks(x_t, n_fft, training=True):
            if rows is None:
                k_c = k[c]
            else:                   # recompute the chunk's kernel rows, with their graph
                with torch.enable_grad():
                    p_c = [p[c].detach().requires_grad_(need) for p, need in zip(params, need_dp)]
                    k_live = rows(*p_c)                                # (C, L)
                k_c = k_live.detach()
            if wrap:
                tails.append(k_c[:, n_taps - wrap:].clone())           # not a view: frees k_c
            dk_c, dx_c = _chunk_grads(x_t[..., c, :], k_c, dy[..., c, :], ctx.shape,
                                      need_dk or any(need_dp), need_dx, spectra)
            if dk_wrap is not None:
                dk_c[:, n_taps - wrap:] += dk_wrap[c]
            if need_dx:
                dx[..., c, :] = dx_c
            if need_dk:
                dk[c] = dk_c
            if any(need_dp):
                live = [p for p, need in zip(p_c, need_dp) if need]
                grads = iter(torch.autograd.grad(k_live, live, dk_c))
                for i, need in enumerate(need_dp):
                    if need:
                        dparams[i][c] = next(grads)
                del k_live, live, grads
            del dk_c, dx_c, k_c     # this chunk's buffers, freed before the next chunk's
        if wrap and need_dx:        # the wrap correction's adjoint in the inputs
            dx[..., seq_len - wrap:] += _wrapped_adjoints(-dy[..., :wrap], None, torch.cat(tails))[0]
        return (dx, dk, None, None, None, None, None, *dparams)


def _chunk_grads(x_c, k_c, dy_c, shape, need_dk: bool, need_dx: bool, spectra=None):
    """One channel chunk's ``(dk (C, L), dx (..., C, N))`` of :class:`_FFTConv` before the
    wrap correction's adjoint (None where not needed). ``spectra``: the forward's
    ``(conj(rfft(x)), conj(rfft(k)))`` (read, not overwritten); one that is None (or all,
    ``spectra`` None) is recomputed."""
    x_conj, k_conj = spectra or (None, None)
    seq_len, n_taps, n_fft, start, _ = shape
    dk_c = dx_c = None
    dy_f = torch.fft.rfft(F.pad(dy_c, (start, 0)) if start else dy_c, n=n_fft)
    if need_dk:
        prod = (torch.fft.rfft(x_c, n=n_fft).conj_physical_().mul_(dy_f) if x_conj is None
                else x_conj * dy_f)                                    # (..., C, F)
        prod = prod.reshape(-1, *prod.shape[-2:]).sum(0) if prod.dim() > 2 else prod
        dk_c = torch.fft.irfft(prod, n=n_fft)[:, :n_taps]              # (C, L)
        del prod                    # each spectrum is dropped once used: at most dy_f and
    if need_dx:                     # two irfft outputs are held at once (peak memory)
        kf_c = torch.fft.rfft(k_c, n=n_fft).conj_physical_() if k_conj is None else k_conj
        dy_f.mul_(kf_c)
        del kf_c
        dx_c = torch.fft.irfft(dy_f, n=n_fft)[..., :seq_len]
    return dk_c, dx_c


def fft_conv_cf(x_t: torch.Tensor, k: torch.Tensor, *, causal: bool = True,
                k_f: torch.Tensor | None = None) -> torch.Tensor:
    """Channels-first :func:`fft_conv`: ``x_t`` is ``(..., D, N)``, the result ``(..., D, N)``.

    The FFTs then run on contiguous rows, with no transpose. ``k_f`` may pass a cached
    ``rfft(k, n=fft_conv_len(N, L, causal))`` (only when ``k`` needs no gradient).
    """
    _check_conv_args(x_t, k, channels_first=True)
    dtype = _compute_dtype(x_t, k)
    in_dtype = x_t.dtype
    x_t, k = (t if t.dtype == dtype else t.to(dtype) for t in (x_t, k))
    if tracing():                   # compile / export: one graph for every length
        y = traced_fft_conv_cf(x_t, k, causal)                             # (..., D, N)
        return y if y.dtype == in_dtype else y.to(in_dtype)
    n_fft, start, wrap = conv_plan(x_t.shape[-1], k.shape[-1], causal, k_f is not None)
    if k_f is not None and tuple(k_f.shape) != (k.shape[0], n_fft // 2 + 1):
        raise ValueError(f"fft_conv: k_f must be rfft(k, n=fft_conv_len(N, L, causal)) of shape "
                         f"{(k.shape[0], n_fft // 2 + 1)}, got {tuple(k_f.shape)}")
    if torch.is_grad_enabled() and (x_t.requires_grad or k.requires_grad):
        y = _FFTConv.apply(x_t, k, k_f, n_fft, start, wrap, None)         # (..., D, N)
    else:                           # no graph: the forward alone (Function.apply's ~60 us saved)
        y = _conv_forward(x_t, k, k_f, (n_fft, start, wrap), None, (), False)[0]
    return y if y.dtype == in_dtype else y.to(in_dtype)


def fft_conv_rows_cf(x_t: torch.Tensor, rows, params: tuple[torch.Tensor, ...], n_taps: int, *,
                     causal: bool = True) -> torch.Tensor:
    """:func:`fft_conv_cf` with the kernel given as a function of parameters, computed per
    channel chunk and never stored: ``rows(*(p[c] for p in params)) -> (C, n_taps)`` must
    give kernel rows ``c`` from rows ``c`` of each parameter (dim 0 = channel, D of them).
    Equal to ``fft_conv_cf(x_t, rows(*params))`` in values and gradients, with the kernel's
    and its gradient's memory saved in training (a learned filter's fused path)."""
    if any(p.shape[0] != x_t.shape[-2] for p in params):
        raise ValueError(f"fft_conv_rows_cf: every parameter needs dim 0 = D = {x_t.shape[-2]}, got "
                         f"{[tuple(p.shape) for p in params]}")
    dtype = _compute_dtype(x_t, *params)
    if tracing():                   # compile / export: no chunks, autograd through the kernel
        return fft_conv_cf(x_t, rows(*params), causal=causal)
    n_fft, start, wrap = conv_plan(x_t.shape[-1], n_taps, causal, False)
    if len(channel_chunks(x_t, n_fft, training=True)) == 1:   # one chunk: fusing saves nothing
        return fft_conv_cf(x_t, rows(*params), causal=causal)
    y = _FFTConv.apply(x_t.to(dtype), None, None, n_fft, start, wrap, rows, *params)  # (..., D, N)
    return y.to(x_t.dtype)


def fft_conv(x: torch.Tensor, k: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """Linear convolution of ``x`` with a per-channel kernel ``k`` by zero-padded real FFTs.

    Args:
        x: ``(..., N, D)`` input, any leading batch shape, any ``N >= 1``.
        k: ``(D, L)`` kernel, any ``L >= 1`` (longer or shorter than ``N``).
        causal: lag convention of the module docstring (causal or centred).

    Returns:
        ``(..., N, D)`` tensor of ``x``'s dtype, equal to ``fft_conv_ref(x, k, causal=causal)``
        up to floating-point rounding, in values and gradients.
    """
    _check_conv_args(x, k)
    y_t = fft_conv_cf(x.transpose(-1, -2), k, causal=causal)  # (..., D, N)
    return y_t.transpose(-1, -2)                               # (..., N, D)


def fft_conv_ref(x: torch.Tensor, k: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """Direct O(N * L) twin of :func:`fft_conv` (same signature, same convention).

    A loop over taps of shifted, scaled copies of ``x``; plain on purpose, it is the
    oracle for tests and the baseline for benchmarks.
    """
    _check_conv_args(x, k)
    seq_len, n_taps = x.shape[-2], k.shape[-1]
    dtype = _compute_dtype(x, k)
    xc, kc = x.to(dtype), k.to(dtype)
    centre = 0 if causal else (n_taps - 1) // 2
    y = torch.zeros_like(xc)
    for s in range(n_taps):
        lag = s - centre
        if abs(lag) >= seq_len:
            continue
        if lag >= 0:   # y[t] += k[s] * x[t - lag] for t >= lag
            shifted = F.pad(xc[..., : seq_len - lag, :], (0, 0, lag, 0))
        else:          # y[t] += k[s] * x[t + |lag|] for t < N - |lag|
            shifted = F.pad(xc[..., -lag:, :], (0, 0, 0, -lag))
        y = y + kc[:, s] * shifted                     # (..., N, D)
    return y.to(x.dtype)
