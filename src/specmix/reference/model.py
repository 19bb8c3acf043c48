"""The tiny NumPy char LM of the note, composed from :mod:`.ops`, and Adam.

embedding -> n_layers x [LN -> spectral mixing -> +residual, LN -> MLP -> +residual]
-> LN -> linear head -> logits. ``mixing=False`` replaces the spectral mixer by identity
(the ablation). Parameters live in a flat ``dict[str, ndarray]``.
Legend: B batch, N context, D d_model, V vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops


@dataclass(frozen=True)
class RefModelConfig:
    vocab_size: int
    d_model: int = 64
    context: int = 64
    n_layers: int = 1
    mlp_ratio: int = 4
    mixing: bool = True
    dtype: str = "float64"


def init_params(cfg: RefModelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    d, v, h, m = cfg.d_model, cfg.vocab_size, cfg.mlp_ratio * cfg.d_model, cfg.context
    p = {"emb": rng.normal(0, 1.0, (v, d)),
         "lnf_g": np.ones(d), "lnf_b": np.zeros(d),
         "head_w": rng.normal(0, 0.02, (d, v)), "head_b": np.zeros(v)}
    for i in range(cfg.n_layers):
        taus = np.logspace(0, np.log10(m), d)                       # decay per channel
        taps = rng.standard_normal((d, m)) * np.exp(-np.arange(m) / taus[:, None])
        taps /= np.linalg.norm(taps, axis=1, keepdims=True)
        resp = np.fft.rfft(taps, n=m, axis=-1)                      # (D, F) complex
        p.update({f"l{i}.ln1_g": np.ones(d), f"l{i}.ln1_b": np.zeros(d),
                  f"l{i}.filter": np.stack([resp.real, resp.imag], -1),
                  f"l{i}.ln2_g": np.ones(d), f"l{i}.ln2_b": np.zeros(d),
                  f"l{i}.w1": rng.normal(0, 1 / np.sqrt(d), (d, h)), f"l{i}.b1": np.zeros(h),
                  f"l{i}.w2": rng.normal(0, 1 / np.sqrt(h), (h, d)), f"l{i}.b2": np.zeros(d)})
    return {k: a.astype(cfg.dtype) for k, a in p.items()}


def forward(p: dict, idx: np.ndarray, targets: np.ndarray, cfg: RefModelConfig):
    """-> ``(loss, caches)``; idx, targets ``(B, N)`` ints."""
    caches = {}
    x, caches["emb"] = ops.embedding_forward(idx, p["emb"])          # (B, N, D)
    for i in range(cfg.n_layers):
        h, caches[f"{i}.ln1"] = ops.layernorm_forward(x, p[f"l{i}.ln1_g"], p[f"l{i}.ln1_b"])
        if cfg.mixing:
            h, caches[f"{i}.mix"] = ops.spectral_forward(h, p[f"l{i}.filter"], cfg.context)
        else:
            h, caches[f"{i}.mix"] = ops.identity_forward(h)
        x, _ = ops.add_forward(x, h)
        h, caches[f"{i}.ln2"] = ops.layernorm_forward(x, p[f"l{i}.ln2_g"], p[f"l{i}.ln2_b"])
        h, caches[f"{i}.mlp"] = ops.mlp_forward(h, p[f"l{i}.w1"], p[f"l{i}.b1"],
                                                p[f"l{i}.w2"], p[f"l{i}.b2"])
        x, _ = ops.add_forward(x, h)
    h, caches["lnf"] = ops.layernorm_forward(x, p["lnf_g"], p["lnf_b"])
    logits, caches["head"] = ops.linear_forward(h, p["head_w"], p["head_b"])  # (B, N, V)
    loss, caches["loss"] = ops.cross_entropy_forward(logits, targets)
    return loss, caches


def backward(p: dict, caches: dict, cfg: RefModelConfig) -> dict[str, np.ndarray]:
    """Gradients of the mean loss w.r.t. every parameter, same keys as ``p``."""
    g = {}
    dlogits = ops.cross_entropy_backward(1.0, caches["loss"])
    dh, g["head_w"], g["head_b"] = ops.linear_backward(dlogits, caches["head"])
    dx, g["lnf_g"], g["lnf_b"] = ops.layernorm_backward(dh, caches["lnf"])
    for i in reversed(range(cfg.n_layers)):
        dx, dh = ops.add_backward(dx, None)
        dh, g[f"l{i}.w1"], g[f"l{i}.b1"], g[f"l{i}.w2"], g[f"l{i}.b2"] = \
            ops.mlp_backward(dh, caches[f"{i}.mlp"])
        dh, g[f"l{i}.ln2_g"], g[f"l{i}.ln2_b"] = ops.layernorm_backward(dh, caches[f"{i}.ln2"])
        dx = dx + dh
        dx, dh = ops.add_backward(dx, None)
        if cfg.mixing:
            dh, g[f"l{i}.filter"] = ops.spectral_backward(dh, caches[f"{i}.mix"])
        else:
            dh, g[f"l{i}.filter"] = ops.identity_backward(dh, None), np.zeros_like(p[f"l{i}.filter"])
        dh, g[f"l{i}.ln1_g"], g[f"l{i}.ln1_b"] = ops.layernorm_backward(dh, caches[f"{i}.ln1"])
        dx = dx + dh
    g["emb"] = ops.embedding_backward(dx, caches["emb"])
    return g


class Adam:
    """Adam (Kingma & Ba) with bias correction, updating the parameter dict in place."""

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict, lr: float | None = None) -> None:
        self.t += 1
        b1, b2 = self.betas
        lr = self.lr if lr is None else lr
        for k, grad in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * grad
            self.v[k] = b2 * self.v[k] + (1 - b2) * grad**2
            m_hat = self.m[k] / (1 - b1**self.t)
            v_hat = self.v[k] / (1 - b2**self.t)
            params[k] -= lr * m_hat / (np.sqrt(v_hat) + self.eps)
