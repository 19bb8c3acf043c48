"""The language model: token embedding -> blocks -> norm -> head, with any mixer per layer.

``mixers`` is a per-layer pattern: one kind for every layer, or a comma list with one kind
per layer. Kinds: ``spectral`` (gated if ``gated``), ``spectral-gated``, ``attention``,
``local:W`` (sliding window of W). Legend: B batch, N sequence, D d_model, V vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import cache
from .layers import Attention, Block, SpectralMixer


@dataclass
class LMConfig:
    vocab_size: int = field(default=65, metadata={"help": "tokens (set from the data)"})
    d_model: int = field(default=128, metadata={"help": "width D"})
    n_layers: int = field(default=4, metadata={"help": "blocks"})
    n_heads: int = field(default=4, metadata={"help": "heads of attention layers"})
    context: int = field(default=256, metadata={"help": "longest sequence (training window)"})
    mixers: str = field(default="spectral", metadata={"help": "one kind for all layers or one per layer: "
                                                      "spectral, spectral-gated, attention, local:W"})
    filter: str = field(default="frequency", metadata={"help": "spectral filter: frequency or implicit (length-free)"})
    gated: bool = field(default=False, metadata={"help": "gate every spectral layer (as spectral-gated)"})
    head_dim: int = field(default=1, metadata={"help": "gated spectral layers: outer-product width per head "
                                               "(1 = elementwise gate)"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width / d_model"})
    dropout: float = field(default=0.0, metadata={"help": "dropout after the embedding"})
    tie_embeddings: bool = field(default=True, metadata={"help": "share embedding and output weights"})
    norm: str = field(default="layer", metadata={"help": "layer or rms"})
    pos_emb: str = field(default="auto", metadata={"help": "auto (learned when any layer attends), learned or none"})

    def mixer_kinds(self) -> list[str]:
        kinds = [k.strip() for k in self.mixers.split(",") if k.strip()]
        if len(kinds) == 1:
            kinds = kinds * self.n_layers
        if len(kinds) != self.n_layers:
            raise ValueError(f"--mixers: {len(kinds)} kinds given for n_layers={self.n_layers}; "
                             "give one kind or one per layer")
        for kind in kinds:
            parse_mixer(kind)
        return kinds

    def uses_positions(self) -> bool:
        if self.pos_emb not in ("auto", "learned", "none"):
            raise ValueError(f"--pos-emb: expected auto, learned or none, got {self.pos_emb!r}")
        if self.pos_emb == "auto":
            return any(parse_mixer(k)[0] == "attention" for k in self.mixer_kinds())
        return self.pos_emb == "learned"

    def to_dict(self) -> dict:
        return asdict(self)


def parse_mixer(kind: str) -> tuple[str, int | None]:
    """``"local:64"`` -> ``("attention", 64)``; ``"spectral-gated"`` -> ``("spectral-gated", None)``."""
    if kind in ("spectral", "spectral-gated"):
        return kind, None
    if kind == "attention":
        return "attention", None
    if kind.startswith("local:") and kind[6:].isdigit() and int(kind[6:]) >= 1:
        return "attention", int(kind[6:])
    raise ValueError(f"--mixers: unknown kind {kind!r}; expected spectral, spectral-gated, "
                     "attention or local:W")


def build_mixer(kind: str, cfg: LMConfig) -> nn.Module:
    name, window = parse_mixer(kind)
    if name == "attention":
        return Attention(cfg.d_model, cfg.n_heads, causal=True, window=window)
    gated = cfg.gated or name == "spectral-gated"
    return SpectralMixer(cfg.d_model, cfg.context, causal=True, filter=cfg.filter, gated=gated,
                         head_dim=cfg.head_dim if gated else 1)


class SpecMixLM(nn.Module):
    """A causal char/token LM; ``forward(idx, targets=None) -> (logits, loss)``.

    Shape: idx ``(B, N)`` int64 with ``N <= context`` -> logits ``(B, N, V)``.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, d)
        self.pos_emb = nn.Embedding(config.context, d) if config.uses_positions() else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(d, build_mixer(k, config), config.mlp_ratio, config.norm)
                                    for k in config.mixer_kinds())
        self.norm = nn.LayerNorm(d) if config.norm == "layer" else nn.RMSNorm(d)
        self.head = nn.Linear(d, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.tok_emb.weight
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """nanoGPT's init for embeddings and projections; filters keep their own init."""
        for name, mod in self.named_modules():
            if ".filter" in name:
                continue
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, 0.02)
                if getattr(mod, "bias", None) is not None:
                    nn.init.zeros_(mod.bias)
        for name, p in self.named_parameters():
            if name.endswith("out_proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layers))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.dim() != 2:
            got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be an int64 tensor of shape (B, N), got {got}")
        if idx.shape[1] > self.config.context:
            raise ValueError(f"sequence length N={idx.shape[1]} exceeds context={self.config.context}")

    def embed(self, idx: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = self.tok_emb(idx)                                          # (B, N, D)
        if self.pos_emb is not None:
            pos = torch.arange(offset, offset + idx.shape[1], device=idx.device)
            x = x + self.pos_emb(pos)
        return self.drop(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        self._check_idx(idx)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))                               # (B, N, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                   ignore_index=-1)      # -1 = unscored (synthetic tasks)
        return logits, loss

    # ------------------------------------------------------------------ decoding
    def _block_prefill(self, block: Block, x: torch.Tensor):
        y, state = cache.prefill(block.mixer, block.norm1(x), self.config.context)
        x = x + y
        return x + block.mlp(block.norm2(x)), state

    def _block_step(self, block: Block, x_t: torch.Tensor, state) -> torch.Tensor:
        x_t = x_t + cache.step(block.mixer, block.norm1(x_t), state)
        return x_t + block.mlp(block.norm2(x_t))

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Run the prompt ``idx (B, N)``; returns the next-token logits ``(B, V)`` and the
        per-layer caches that :meth:`step` continues from (exact up to ``context`` tokens)."""
        self._check_idx(idx)
        x = self.embed(idx)
        states = []
        for block in self.blocks:
            x, st = self._block_prefill(block, x)
            states.append(st)
        return self.head(self.norm(x[:, -1])), states

    @torch.no_grad()
    def step(self, token: torch.Tensor, position: int, states: list) -> torch.Tensor:
        """Feed ``token (B,)`` at ``position`` (its index in the sequence, < ``context``);
        updates ``states`` in place and returns the next-token logits ``(B, V)``."""
        x_t = self.embed(token[:, None], offset=position)[:, 0]          # (B, D)
        for block, st in zip(self.blocks, states):
            x_t = self._block_step(block, x_t, st)
        return self.head(self.norm(x_t))

    @torch.no_grad()
    def decode(self, idx: torch.Tensor, new_tokens: int, pick) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached decoding: ``pick(logits (B, V)) -> (B,)`` chooses each next token.

        Returns the extended ``idx`` and the logits used for each new token ``(B, new, V)``.
        Exact within ``context``; past it, the window is cropped and recomputed (no cache).
        """
        logits, states = self.prefill(idx)
        out, all_logits = idx, []
        for _ in range(new_tokens):
            all_logits.append(logits)
            nxt = pick(logits)                                         # (B,)
            out = torch.cat([out, nxt[:, None]], dim=1)
            if out.shape[1] > self.config.context:                     # beyond the cache
                logits = self(out[:, -self.config.context:])[0][:, -1]
                continue
            logits = self.step(nxt, out.shape[1] - 1, states)
        return out, torch.stack(all_logits, dim=1)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens after ``idx (B, N)``; returns ``(B, N + new)``."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")

        def pick(logits):
            logits = logits.float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]

        if use_cache:
            return self.decode(idx, max_new_tokens, pick)[0]
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.context:])[0][:, -1]
            idx = torch.cat([idx, pick(logits)[:, None]], dim=1)
        return idx
