"""The operations the scaling benchmark times, one factory per op.

Each factory builds its inputs for one sequence length and returns a zero-argument
callable that performs one call of the op (forward, or forward + backward in train mode).
Input creation is never timed.

Legend: B batch, N sequence, D d_model, H heads, E = D / H.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...reference import spectral as np_spectral
from .peers import PEER_OPS, SPECMIX_PEER_OPS, make_peer_op

NUMPY_OPS = ("attention", "spectral", "spectral-circular")
TORCH_OPS = ("naive", "sdpa", "local", "spectral", "fft-floor", "sdpa-layer", "spectral-layer",
             *SPECMIX_PEER_OPS, *PEER_OPS)
# whole language models (backend "lm"): an op is a mixer kind, timed as one training step
# (or forward) of a stack whose layers are all of that kind
LM_OPS = ("attention", "local:256", "spectral", "spectral-gated")
# bench-pairs only: the spectral-gated stack with nothing mixed along N, its speed ceiling (ceiling.py)
GATED_CEILING = "gated-projections"


@dataclass(frozen=True)
class OpSpec:
    """Everything a child process needs to rebuild one op at one length."""

    backend: str
    op: str
    n: int
    d_model: int
    batch: int
    heads: int
    window: int
    dtype: str
    mode: str
    device: str
    n_layers: int = 4
    filter: str = "frequency"


def spectral_n_fft(n: int, backend: str = "torch") -> int:
    """FFT length of the causal spectral op at length n (kernel of n taps)."""
    if backend == "numpy":
        return np_spectral.smooth_len(2 * n - 1)
    from ...functional import fft_conv_len
    return fft_conv_len(n, n)


def memory_estimate_bytes(spec: OpSpec) -> int:
    """A coarse estimate of one call's peak, used only to skip configs that cannot fit in RAM
    (calibrated on measured peaks: spectral forward at n = 2^18 peaked at 2.4 B D n_fft floats)."""
    item = 4 if spec.dtype == "bfloat16" else np.dtype(spec.dtype).itemsize   # autocast: float32 weights
    train = 2 if spec.mode == "train" else 1
    b, n, d = spec.batch, spec.n, spec.d_model
    if spec.backend == "lm":                    # activations of every layer (MLP 4 D wide, gates)
        return train * 24 * spec.n_layers * b * n * d * item
    if spec.op in ("attention", "naive"):
        return (1 + train) * b * n * n * item
    if spec.op == "local":                      # scores over 2 windows per query, per head
        return train * (2 * b * spec.heads * n * 2 * spec.window + 8 * b * n * d) * item
    if spec.op in ("sdpa", "sdpa-layer"):
        return train * 8 * b * n * d * item
    if spec.mode == "train":                    # channel-chunked: full-size tensors are (B, D, N)
        return 10 * b * d * n * item
    return 5 * b * d * spectral_n_fft(n, spec.backend) * item


def make_numpy_op(spec: OpSpec) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    dtype, n, d = np.dtype(spec.dtype), spec.n, spec.d_model
    if spec.op == "attention":
        q, k, v = (rng.standard_normal((n, d)).astype(dtype) for _ in range(3))
        return lambda: np_spectral.attention_core(q, k, v)
    x_t = rng.standard_normal((d, n)).astype(dtype)                   # (D, N)
    taps = rng.standard_normal((d, n)) * np.exp(-np.arange(n) / 64.0)  # a learned causal filter
    if spec.op == "spectral":
        n_fft = spectral_n_fft(n, "numpy")
        k_f = np.fft.rfft(taps, n=n_fft).astype(np.result_type(dtype, np.complex64))
        return lambda: np_spectral.apply_spectrum(x_t, k_f, n_fft)
    if spec.op == "spectral-circular":
        response = np.fft.rfft(taps, n=n).astype(np.result_type(dtype, np.complex64))
        return lambda: np_spectral.circular_apply(x_t, response)
    raise ValueError(f"--ops: unknown numpy op {spec.op!r}; choose from {NUMPY_OPS}")


def make_torch_op(spec: OpSpec) -> Callable[[], object]:
    import torch

    from ...filters import FrequencyFilter
    from ...attention_ops import attention_core, local_attention
    from ...functional import fft_conv_cf
    from ...mixers import Attention, SpectralMixer

    torch.manual_seed(0)
    train = spec.mode == "train"
    dev, dtype = torch.device(spec.device), getattr(torch, spec.dtype)
    b, n, d, h = spec.batch, spec.n, spec.d_model, spec.heads

    def tensor(*shape):
        return torch.randn(*shape, device=dev, dtype=dtype).requires_grad_(train)

    module = None
    if spec.op == "naive":
        q, k, v = tensor(b, n, d), tensor(b, n, d), tensor(b, n, d)
        call, inputs = (lambda: attention_core(q, k, v, causal=True)), (q, k, v)
    elif spec.op in ("sdpa", "local"):
        q, k, v = (tensor(b, h, n, d // h) for _ in range(3))          # (B, H, N, E)
        if spec.op == "sdpa":
            call = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
        else:
            call = lambda: local_attention(q, k, v, window=spec.window, causal=True)  # noqa: E731
        inputs = (q, k, v)
    elif spec.op == "spectral":
        module = FrequencyFilter(d, n, device=dev, dtype=dtype)
        x_t = tensor(b, d, n)                                          # (B, D, N) channels-first

        def call():
            if train:               # the training path: kernel rows per channel chunk, fused
                return module.convolve(x_t)
            k, k_f = module.kernel_for_conv(n)                         # cached in inference
            return fft_conv_cf(x_t, k, k_f=k_f)
        inputs = (x_t,)
    elif spec.op == "fft-floor":
        x_t, n_fft = tensor(b, d, n), spectral_n_fft(n)
        call = lambda: torch.fft.irfft(torch.fft.rfft(x_t, n=n_fft), n=n_fft)  # noqa: E731
        inputs = (x_t,)
    elif spec.op in SPECMIX_PEER_OPS + PEER_OPS:                     # (B, N, D), as fla's modules take it
        module, call, inputs = make_peer_op(spec.op, batch=b, n=n, d=d, dev=dev, dtype=dtype)
        inputs = tuple(t.requires_grad_(train) for t in inputs)
    elif spec.op in ("sdpa-layer", "spectral-layer"):
        module = (Attention(d, h, device=dev, dtype=dtype) if spec.op == "sdpa-layer"
                  else SpectralMixer(d, n, device=dev, dtype=dtype))
        x = tensor(b, n, d)
        call, inputs = (lambda: module(x)), (x,)
    else:
        raise ValueError(f"--ops: unknown torch op {spec.op!r}; choose from {TORCH_OPS}")
    return _torch_step(call, inputs, module, train)


def _torch_step(call, inputs, module, train: bool) -> Callable[[], object]:
    import torch

    params = [] if module is None else list(module.parameters())
    if not train:
        if module is not None:
            module.eval().requires_grad_(False)

        def forward():
            with torch.no_grad():
                return call()
        return forward
    grad_out = None

    def step():
        nonlocal grad_out
        out = call()
        if grad_out is None:
            grad_out = torch.randn_like(out)
        out.backward(grad_out)
        for t in (*inputs, *params):
            t.grad = None
    return step


def untrained_lm(mixers: str, *, d_model: int, n_layers: int, n_heads: int, context: int,
                 device: str = "cpu", dtype: str = "float32", filter: str = "frequency"):
    """A freshly initialised SpecMixLM whose layers are all ``mixers`` (65 tokens, no position
    embedding, so stacks of different kinds differ only in their mixers; ``filter`` is the
    spectral layers'). Speed does not depend on the weights, so benchmarks time untrained models."""
    import torch

    from ...model import LMConfig, SpecMixLM
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=65, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                   context=context, mixers=mixers, pos_emb="none", filter=filter)
    return SpecMixLM(cfg).to(device=torch.device(device), dtype=getattr(torch, dtype))


def make_lm_op(spec: OpSpec) -> Callable[[], object]:
    """One training step (forward, backward, the training CLI's fused AdamW; no clipping) or one
    forward of an :func:`untrained_lm` (``GATED_CEILING``: the spectral-gated one cut to its projections).
    ``bfloat16``: float32 weights, the forward under autocast (the training CLI's path)."""
    import contextlib

    import torch

    if spec.op.startswith("enc-"):                     # a bidirectional masked-LM encoder
        from .encoders import make_encoder_op
        return make_encoder_op(spec.op, n=spec.n, d_model=spec.d_model, n_layers=spec.n_layers, batch=spec.batch,
                               mode=spec.mode, dtype=spec.dtype, device=spec.device)
    autocast = spec.dtype == "bfloat16"
    ceiling = spec.op == GATED_CEILING
    model = untrained_lm("spectral-gated" if ceiling or spec.op.startswith("hf-") else spec.op,
                         d_model=spec.d_model, n_layers=spec.n_layers, n_heads=spec.heads, context=spec.n,
                         device=spec.device, dtype="float32" if autocast else spec.dtype, filter=spec.filter)
    if spec.op.startswith("hf-"):                       # a transformers peer as large as that LM
        from .peer_decode import peer_like
        model = peer_like(spec.op, model, device=spec.device)
    if ceiling:
        from .ceiling import with_gated_projections
        model = with_gated_projections(model)
    idx = torch.randint(0, model.config.vocab_size, (spec.batch, spec.n + 1), device=spec.device)
    x, y = idx[:, :-1], idx[:, 1:]                                     # (B, N) each
    precision = (lambda: torch.autocast(torch.device(spec.device).type, dtype=torch.bfloat16)) if autocast \
        else contextlib.nullcontext
    if spec.mode != "train":
        model.eval().requires_grad_(False)

        def forward():
            with precision():
                return model(x)[0]
        forward.params = sum(p.numel() for p in model.parameters())
        return forward
    from ..train import TrainConfig, make_optimizer
    opt = make_optimizer(model, TrainConfig(lr=1e-4))       # the training CLI's AdamW (fused, groups)

    def step():
        with precision():
            _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    step.params = sum(p.numel() for p in model.parameters())
    return step
