"""Sequence mixers with one drop-in interface; each owns its cached decoding.

Every mixer maps ``x`` of shape ``(B, N, D)`` to ``(B, N, D)`` via ``forward(x, mask=None)``,
where the optional key-padding ``mask`` is ``(B, N)`` bool with True = real token. Outputs
at padded positions are zero. The FFT convention is the one of :mod:`specmix.functional`.

Causal mixers also decode one token at a time, exactly: ``prefill(x, max_len) -> (y, state)``
runs a prompt (``y`` equals ``forward(x)``) and returns the mixer's inference state;
``step(x_t, state) -> y_t`` maps the next token ``(B, D)`` to ``(B, D)`` and updates the state
in place. The state is a small dataclass defined here, beside the mixer that fills it.

Legend: B batch, N sequence, D channels (d_model), C projected channels, H heads, E = D / H.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .decoding import ConvCache
from .filters import FrequencyFilter, ImplicitFilter, kernel_as_called
from .attention import Attention, AttentionState  # noqa: F401  (re-exported: the mixers' one home)
from .functional import add_channel_bias, fft_conv_cf, gemm_dtype
from .short_conv import ShortConvCache, short_conv
from .sharding import SequenceShard, channels_to_seq, previous_tail, seq_to_channels
from .tokens import check_tokens, zero_padding

__all__ = ["SpectralMixer", "SpectralState", "Attention", "AttentionState", "check_tokens"]

FILTERS = ("frequency", "implicit")


class SpectralMixer(nn.Module):
    """FFT-based spectral mixing: project, filter along the sequence by FFT, project back.

    Ungated (the note's operator): ``y = out(conv_k(in(x)))`` where ``conv_k`` is the
    linear convolution of each channel with the filter's kernel, computed by zero-padded
    ``rfft -> multiply -> irfft`` (exact at any N; see :mod:`specmix.functional`).

    FFT convention: real FFTs along the sequence axis N, ``rfft`` unnormalised and ``irfft``
    dividing by ``n_fft``, with ``n_fft >= N + L - 1`` (zero padding, then cropping to N), so
    the product of spectra is a linear, never circular, convolution. A causal kernel puts
    lag s at tap s: ``y[t] = sum_{s <= t} k[s] u[t - s]``; a bidirectional one is centred.
    FFTs run in float32/float64 even under autocast; the result is cast back.

    Gated (H3/Hyena style, ``gated=True``): ``in`` yields three streams q, k, v, each
    through a short depthwise convolution of 3 taps, then ``y = out(q * conv_k(k * v))``:
    a data-dependent multiplicative gate around the long convolution. The causal k stream's
    taps start as a one-step shift (H3's "shift SSM"), so ``k * v`` pairs each token with
    the one before it from the first step on. With ``head_dim=h >
    1`` (H3's multi-head form) the channels form ``D / h`` heads and ``k * v`` becomes the
    per-head outer product ``k_i v_j``: ``D h`` convolved channels (channel ``(i, j)`` of a
    head uses kernel ``i``), read out as ``y_j = sum_i q_i conv(k_i v_j)``, a causal
    linear-attention-like memory that binds keys to values (needed for associative recall).

    Args:
        d_model: channels D.
        max_len: longest sequence for ``filter="frequency"``; sets the decay scale of
            ``filter="implicit"``, which accepts any length.
        causal: output t depends only on inputs <= t.
        filter: ``"frequency"`` (:class:`FrequencyFilter`) or ``"implicit"`` (:class:`ImplicitFilter`).
        gated: add the data-dependent gating.
        head_dim: gated only: outer-product width h per head (1 = elementwise gate).
        bias: biases in the projections.

    Shape:
        x ``(B, N, D)``, mask ``(B, N)`` bool (True = real) -> ``(B, N, D)``.
        Causal mixers support right padding (any padding for bidirectional ones): outputs at
        real positions do not depend on what stands at padded ones.

    Example:
        >>> mixer = SpectralMixer(64, max_len=128)
        >>> mixer(torch.randn(2, 100, 64)).shape
        torch.Size([2, 100, 64])
    """

    def __init__(self, d_model: int, max_len: int, *, causal: bool = True,
                 filter: str = "frequency", gated: bool = False, head_dim: int = 1,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"SpectralMixer: filter must be one of {FILTERS}, got {filter!r}")
        if head_dim < 1 or d_model % head_dim or (head_dim > 1 and not gated):
            raise ValueError(f"SpectralMixer: head_dim must be >= 1, divide d_model={d_model} "
                             f"and be 1 unless gated=True; got {head_dim}")
        factory = {"device": device, "dtype": dtype}
        self.d_model, self.max_len, self.causal = d_model, max_len, causal
        self.filter_kind, self.gated, self.head_dim = filter, gated, head_dim
        n_streams = 3 if gated else 1
        self.in_proj = nn.Linear(d_model, n_streams * d_model, bias=bias, **factory)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **factory)
        if gated:   # depthwise taps (C, 1, 3), F.conv1d's layout (as in checkpoints)
            self.short_conv = nn.Parameter(torch.empty(n_streams * d_model, 1, 3, **factory))
        kernels = self.n_kernels()
        if filter == "frequency":
            self.filter = FrequencyFilter(kernels, max_len, causal=causal, **factory)
        else:
            self.filter = ImplicitFilter(kernels, causal=causal, decay_len=max_len, **factory)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.in_proj.reset_parameters()
        self.out_proj.reset_parameters()
        self.filter.reset_parameters()
        if self.gated:   # taps (C, 1, 3) plus a little noise: q, v start as identity (lag 0);
            # causal k starts as H3's shift (lag 1), so that k_t v_t binds token t-1 to token t
            self.short_conv.normal_(0.0, 0.1)
            d = self.d_model
            self.short_conv[:, 0, -1 if self.causal else 1] += 1.0
            if self.causal:
                self.short_conv[d: 2 * d, 0, 2] -= 1.0
                self.short_conv[d: 2 * d, 0, 1] += 1.0

    def n_kernels(self) -> int:
        """Rows of the filter's kernel: one per channel D (subclasses may share kernels)."""
        return self.d_model

    def _kernel(self, seq_len: int, causal: bool):
        """``(k, k_f)``: the filter's kernel ``(K, L)`` (K = ``n_kernels()``) and, at inference,
        its cached spectrum (else None)."""
        if causal == self.causal:
            return self.filter.kernel_for_conv(seq_len)                  # (K, L), cached spectrum
        return kernel_as_called(self.filter.kernel(seq_len), seq_len, self.causal, causal,
                                "SpectralMixer"), None                   # (K, N) lags >= 0

    def long_conv(self, conv_in: torch.Tensor, causal: bool) -> torch.Tensor:
        """The long convolution of ``conv_in (B, C, N)``, each kernel serving its channels (see
        :meth:`expand_heads`), by zero-padded FFTs: ``(B, C, N)``."""
        if torch.is_grad_enabled() and isinstance(self.filter, FrequencyFilter) and self.head_dim == 1:
            return self.filter.convolve(conv_in, causal)     # training: kernel never held at full size
        k, k_f = self._kernel(conv_in.shape[-1], causal)
        k_f = None if k_f is None else self.expand_heads(k_f)
        return fft_conv_cf(conv_in, self.expand_heads(k), causal=causal, k_f=k_f)

    def expand_heads(self, k: torch.Tensor) -> torch.Tensor:
        """A per-channel kernel ``(D, L)`` for the ``D h`` convolved channels ``(D h, L)``."""
        return k if self.head_dim == 1 else k.repeat_interleave(self.head_dim, dim=0)

    def bind(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The long convolution's input: ``k * v``, or per head the outer product ``k_i v_j``.
        ``(B, D, ...)`` twice -> ``(B, D h, ...)``: forward passes ``(B, D, N)``, step ``(B, D)``."""
        h = self.head_dim
        if h == 1:
            return k * v
        kv = k.unflatten(1, (-1, h, 1)) * v.unflatten(1, (-1, 1, h))    # (B, H, h_i, h_j, ...)
        return kv.flatten(1, 3)

    def read(self, q: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Gate the convolved memory: ``q * m``, or per head ``y_j = sum_i q_i m_ij``.
        q ``(B, D, ...)``, memory ``(B, D h, ...)`` -> ``(B, D, ...)``."""
        h = self.head_dim
        if h == 1:
            return q * memory
        mem = memory.unflatten(1, (-1, h, h))                            # (B, H, h_i, h_j, ...)
        return (q.unflatten(1, (-1, h, 1)) * mem).sum(2).flatten(1, 2)

    def project_in(self, x: torch.Tensor) -> torch.Tensor:
        """The input projection, channels-first: ``(B, N, D) -> (B, C, N)``, C = 3D gated, D not.
        One batched GEMM writes (B, C, N) directly, so FFTs and the short conv run along
        contiguous rows with no transpose copies. The weight is cast to the GEMM's dtype
        before it is expanded over the batch (cast after, autocast copied the (B, C, D)
        expansion and its backward cast that back to float32); the bias is added in place
        after the GEMM by :func:`add_channel_bias` (``baddbmm`` copied the broadcast bias into
        the whole output, autograd's bias gradient cast the whole (B, C, N) one to float32)."""
        bsz = x.shape[0]
        dtype = gemm_dtype(x)
        weight = self.in_proj.weight.to(dtype)
        u = torch.bmm(weight.expand(bsz, *weight.shape), x.to(dtype).transpose(1, 2))   # (B, C, N)
        if self.in_proj.bias is None:
            return u
        return add_channel_bias(u, self.in_proj.bias)

    def _short_conv(self, u: torch.Tensor, causal: bool, history: torch.Tensor | None) -> torch.Tensor:
        """Depthwise 3-tap convolution of ``u (B, C, N)`` (:func:`short_conv`): tap j multiplies
        ``u[t - 2 + j]`` causal, ``u[t - 1 + j]`` bidirectional (a causal call drops the
        look-ahead tap). ``history (B, C, 2)``, the two inputs before ``u`` (a context-parallel
        halo), replaces the causal zero padding; :meth:`step` has its own one-token form."""
        taps = self.short_conv[:, 0, :]                                 # (C, 3)
        if not self.causal:
            return short_conv(u, taps, 1) if not causal else short_conv(u, taps[:, :2], 1)
        if history is None:
            return short_conv(u, taps, 2)
        full = torch.cat([history.to(u.dtype), u], dim=-1)              # (B, C, 2 + N)
        return short_conv(full, taps, 2)[..., 2:]

    def _streams(self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool,
                 history: torch.Tensor | None = None, shard: SequenceShard | None = None):
        """``(q, conv_in, u)``: the gate ``q (B, D, N)`` (None ungated), the long convolution's
        input ``(B, D h, N)`` and the raw projection ``u (B, C, N)``. Serves forward, prefill
        and step alike: projection, mask, short conv and bind are computed here only. With a
        ``shard`` the short conv's history is the previous rank's last two positions."""
        keep = None if mask is None else mask[:, None, :]                # (B, 1, N)
        u = self.project_in(zero_padding(x, mask))                       # (B, C, N)
        if keep is not None:
            u = torch.where(keep, u, 0.0)
        if not self.gated:
            return None, u, u
        if shard is not None:
            history = previous_tail(u, 2, shard)                         # (B, C, 2) halo
        conv = self._short_conv(u, causal, history)
        if keep is not None:
            conv = torch.where(keep, conv, 0.0)
        q, k, v = conv.chunk(3, dim=1)                                   # 3 x (B, D, N)
        return q, self.bind(k, v), u

    def _project_out(self, q: torch.Tensor | None, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Gate the convolved memory ``y (B, D h, N)`` and project back: ``-> (B, N, D)``."""
        if q is not None:
            y = self.read(q, y)                                          # (B, D, N)
        return zero_padding(self.out_proj(y.transpose(1, 2)), mask)    # (B, N, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, *,
                causal: bool | None = None, shard: SequenceShard | None = None) -> torch.Tensor:
        """``causal=None`` follows the constructor; a bidirectional mixer also accepts
        ``causal=True`` (its kernel and short conv restricted to lags >= 0). With a ``shard``
        (context parallelism, :mod:`specmix.sharding`) ``x`` is this rank's slice of the
        sequence and the result is the slice of the full sequence's output."""
        check_tokens(x, self.d_model, mask, type(self).__name__, self.in_proj.weight)
        if x.numel() == 0:                                               # B = 0 or N = 0
            return x.clone()
        if shard is not None:
            return self._forward_sharded(x, mask, causal, shard)
        causal = self.causal if causal is None else causal
        q, conv_in, _ = self._streams(x, mask, causal)
        return self._project_out(q, self.long_conv(conv_in, causal), mask)   # conv (B, D h, N)

    def _sharded_kernel(self, seq_len: int, local_len: int, shard: SequenceShard) -> torch.Tensor:
        """This rank's channel block of the causal kernel, ``(D / P, N)``. A length-free
        (implicit) filter is position-wise: each rank computes its slice of lags and the
        slices are resharded like activations; a frequency filter's kernel is global along
        the lags, so each rank transforms its block of channels' responses."""
        if isinstance(self.filter, ImplicitFilter):
            lags = self.filter.kernel_at(shard.start(local_len), local_len)   # (D, n)
            return seq_to_channels(lags[None], shard)[0]                  # (D/P, N)
        block = self.d_model // shard.world
        return self.filter.kernel(seq_len, slice(shard.index * block, (shard.index + 1) * block))

    def _forward_sharded(self, x: torch.Tensor, mask: torch.Tensor | None, causal: bool | None,
                         shard: SequenceShard) -> torch.Tensor:
        if mask is not None or not self.causal or causal is False:
            raise ValueError("SpectralMixer: context parallelism needs a causal mixer and no mask")
        shard.check_channels(self.d_model, "SpectralMixer")
        seq_len = x.shape[1] * shard.world
        kernel = self.expand_heads(self._sharded_kernel(seq_len, x.shape[1], shard))  # (D h/P, N)
        q, conv_in, _ = self._streams(x, None, True, shard=shard)       # (B, D h, n)
        y = fft_conv_cf(seq_to_channels(conv_in, shard), kernel)         # (B, D h/P, N)
        return self._project_out(q, channels_to_seq(y, shard), None)     # (B, n, D)

    def prefill(self, x: torch.Tensor, max_len: int, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, "SpectralState"]:
        """Run the prompt ``x (B, N, D)``; returns ``forward(x, mask)`` and the state that
        :meth:`step` continues from, for up to ``max_len`` tokens in all. Padded positions
        (``mask`` False) enter the state as zeros, as they enter ``forward``."""
        check_tokens(x, self.d_model, mask, "SpectralMixer.prefill", self.in_proj.weight)
        if not self.causal:
            raise ValueError("SpectralMixer.prefill: cached decoding needs a causal mixer")
        q, conv_in, u = self._streams(x, mask, True)
        kernel = self.filter.kernel(max_len)                             # (D, max_len)
        kernel = self.expand_heads(kernel if kernel.dtype in (torch.float32, torch.float64) else kernel.float())
        y, conv = ConvCache.prefill(kernel, conv_in, max_len)            # (B, D h, N)
        short = ShortConvCache.prefill(u, self.short_conv[:, 0, :]) if self.gated else None
        return self._project_out(q, y, mask), SpectralState(conv=conv, short=short)

    def step(self, x_t: torch.Tensor, state: "SpectralState", mask: torch.Tensor | None = None) -> torch.Tensor:
        """The next token ``x_t (B, D) -> (B, D)``; updates ``state`` in place. ``mask (B,)``
        False marks a padded position (zero output, zero input to the state).

        The one-token form of :meth:`forward`'s streams, written for few small ops (decoding
        is bound by per-op cost): one addmm in (the weight read as :meth:`project_in` reads
        it), the short conv from its pending partial sums (:class:`ShortConvCache`), the
        cached long convolution, one addmm out."""
        keep = None if mask is None else mask[:, None]                   # (B, 1)
        if keep is not None:
            x_t = torch.where(keep, x_t, 0.0)
        u = F.linear(x_t, self.in_proj.weight, self.in_proj.bias)        # (B, C)
        if keep is not None:
            u = torch.where(keep, u, 0.0)
        if self.gated:
            conv = state.short.step(u)                                   # (B, C)
            if keep is not None:
                conv = torch.where(keep, conv, 0.0)
            q, k, v = conv.unflatten(1, (3, self.d_model)).unbind(1)    # 3 x (B, D)
            y = self.read(q, state.conv.step(self.bind(k, v)))           # (B, D)
        else:
            y = state.conv.step(u)                                       # (B, D)
        out = self.out_proj(y)                                           # (B, D)
        return out if keep is None else torch.where(keep, out, 0.0)

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, max_len={self.max_len}, causal={self.causal}, "
                f"filter={self.filter_kind!r}, gated={self.gated}"
                + (f", head_dim={self.head_dim}" if self.head_dim > 1 else ""))


@dataclass(kw_only=True)
class SpectralState:
    """Inference state of a causal :class:`SpectralMixer`."""

    conv: ConvCache                 # the long convolution's past inputs, folded (see decoding)
    short: ShortConvCache | None    # the gated short conv's pending partial sums (None ungated)

    def batch_tensors(self) -> list[torch.Tensor]:
        """The tensors with one row per sequence (what :meth:`reorder` selects from)."""
        return self.conv.batch_tensors() + (self.short.batch_tensors() if self.short is not None else [])

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the batch rows ``rows (B',)`` in that order, in place (beam search)."""
        self.conv.reorder(rows)
        if self.short is not None:
            self.short.reorder(rows)
