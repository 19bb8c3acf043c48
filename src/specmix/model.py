"""The language model: token embedding -> blocks -> norm -> head, with any mixer per layer.

``LMConfig.mixers`` is a per-layer pattern: one kind for every layer, or one kind per layer.
Kinds: ``spectral``, ``spectral-gated``, ``spectral-taylor`` (gated, Taylor-mapped queries and keys:
the recall mixer), ``attention``, ``local:W`` (sliding window of W).
Legend: B batch, N sequence, D d_model, V vocabulary.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block
from .dropout import Dropout
from .attention import Attention
from .feature_map import TaylorSpectralMixer
from .mixers import SpectralMixer
from .sharding import SequenceShard
from .validation import UsageError, check_fields

MIXER_KINDS = "spectral, spectral-gated, spectral-taylor, attention or local:W"
SPECTRAL_KINDS = ("spectral", "spectral-gated", "spectral-taylor")


@dataclass(frozen=True)
class MixerKind:
    """One parsed kind of ``LMConfig.mixers``: ``"local:64"`` -> ``MixerKind("attention", 64)``."""

    name: Literal["spectral", "spectral-gated", "spectral-taylor", "attention"]
    window: int | None = None

    @classmethod
    def parse(cls, kind: str) -> "MixerKind":
        if kind in SPECTRAL_KINDS + ("attention",):
            return cls(kind)
        if isinstance(kind, str) and kind.startswith("local:") and kind[6:].isdigit() and int(kind[6:]) >= 1:
            return cls("attention", int(kind[6:]))
        raise UsageError(f"--mixers: unknown kind {kind!r}; expected {MIXER_KINDS}")


@dataclass(frozen=True)
class LMConfig:
    """The model's shape; validated on construction and never mutated (use ``dataclasses.replace``)."""

    vocab_size: int | None = field(default=None, metadata={"help": "tokens (None: from the data)"})
    d_model: int = field(default=128, metadata={"help": "width D"})
    n_layers: int = field(default=4, metadata={"help": "blocks"})
    n_heads: int = field(default=4, metadata={"help": "heads of attention layers"})
    context: int = field(default=256, metadata={"help": "longest sequence (training window)",
                                                "aliases": ("--seq-len",)})
    mixers: tuple[str, ...] = field(default=("spectral",), metadata={
        "help": f"one kind for all layers or one per layer: {MIXER_KINDS}"})
    filter: Literal["frequency", "implicit"] = field(default="frequency", metadata={
        "help": "spectral filter: frequency (learned response, N <= context) or implicit (length-free)"})
    head_dim: int = field(default=1, metadata={"help": "gated spectral layers: outer-product width "
                                               "per head (1 = elementwise gate); spectral-taylor: "
                                               "query/key width per head (>= 2)"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width / d_model (0 = no MLP)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout after the embedding, on each "
                                                  "residual branch and on attention weights"})
    tie_embeddings: bool = field(default=True, metadata={"help": "share embedding and output weights"})
    norm: Literal["layer", "rms"] = field(default="layer", metadata={"help": "layer or rms"})
    pos_emb: Literal["auto", "learned", "rope", "none"] = field(default="auto", metadata={
        "help": "auto (learned when any layer attends), learned, rope (rotary, inside "
                "attention layers) or none"})
    mlp: Literal["gelu", "relu2"] = field(default="gelu", metadata={"help": "MLP activation: gelu or relu2"})
    logit_softcap: float | None = field(default=None, metadata={
        "help": "logits = cap * tanh(logits / cap) (none = no cap)"})
    zero_init_out: bool = field(default=False, metadata={
        "help": "start the mixers' and MLPs' output projections at zero (each block starts as the identity)"})
    attn_dropout: float | None = field(default=None, metadata={
        "help": "dropout on attention weights (none = --dropout; 0 keeps PyTorch's fused CPU attention kernel, "
                "which dropout on the weights turns off)"})

    def __post_init__(self) -> None:
        if isinstance(self.mixers, str):          # "spectral,local:64" from Python or old JSON
            object.__setattr__(self, "mixers", tuple(k.strip() for k in self.mixers.split(",") if k.strip()))
        if isinstance(self.mixers, list):
            object.__setattr__(self, "mixers", tuple(self.mixers))
        check_fields(self, minimum={"vocab_size": 1, "d_model": 1, "n_layers": 1, "n_heads": 1,
                                    "context": 1, "head_dim": 1, "mlp_ratio": 0.0, "dropout": 0.0})
        if self.logit_softcap is not None and self.logit_softcap <= 0:
            raise UsageError(f"--logit-softcap must be > 0, got {self.logit_softcap}")
        if self.dropout >= 1:
            raise UsageError(f"--dropout must be < 1, got {self.dropout}")
        if self.attn_dropout is not None and not 0 <= self.attn_dropout < 1:
            raise UsageError(f"--attn-dropout must be in [0, 1), got {self.attn_dropout}")
        if len(self.mixers) not in (1, self.n_layers):
            raise UsageError(f"--mixers: {len(self.mixers)} kinds given for n_layers={self.n_layers}; "
                             "give one kind or one per layer")
        for kind in self.mixers:
            MixerKind.parse(kind)
        if self.d_model % self.n_heads:
            raise UsageError(f"--n-heads {self.n_heads} must divide --d-model {self.d_model}")
        if self.d_model % self.head_dim:
            raise UsageError(f"--head-dim {self.head_dim} must divide --d-model {self.d_model}")
        if "spectral-taylor" in self.mixers and self.head_dim < 2:
            raise UsageError(f"--mixers spectral-taylor needs --head-dim >= 2, got {self.head_dim}")
        if self.pos_emb == "rope" and (self.d_model // self.n_heads) % 2:
            raise UsageError(f"--pos-emb rope needs an even head width; --d-model {self.d_model} / "
                             f"--n-heads {self.n_heads} = {self.d_model // self.n_heads}")

    def mixer_kinds(self) -> list[MixerKind]:
        """One parsed kind per layer."""
        kinds = self.mixers * self.n_layers if len(self.mixers) == 1 else self.mixers
        return [MixerKind.parse(k) for k in kinds]

    def attention_kinds(self) -> tuple[str, ...]:
        """The kinds in ``mixers`` that attend (``attention``, ``local:W``), as written."""
        return tuple(k for k in self.mixers if MixerKind.parse(k).name == "attention")

    def unshardable_kinds(self) -> tuple[str, ...]:
        """The kinds that context parallelism cannot split: attention (it would need ring
        attention) and spectral-taylor (per-head kernels), as written."""
        return tuple(k for k in self.mixers if MixerKind.parse(k).name in ("attention", "spectral-taylor"))

    def uses_positions(self) -> bool:
        """Whether the model adds learned position embeddings (rope rotates inside attention)."""
        if self.pos_emb == "auto":
            return bool(self.attention_kinds())
        return self.pos_emb == "learned"

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), mixers=list(self.mixers))

    @classmethod
    def from_dict(cls, record: dict) -> "LMConfig":
        """A config from ``config.json``, also from releases before typed configs: their
        ``gated: true`` turned every ``spectral`` layer into ``spectral-gated``."""
        record = dict(record)
        if record.pop("gated", False):
            kinds = record.get("mixers", "spectral")
            kinds = kinds.split(",") if isinstance(kinds, str) else kinds
            record["mixers"] = ["spectral-gated" if k.strip() == "spectral" else k for k in kinds]
        unknown = sorted(set(record) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"model config has unknown fields {unknown}; was it written by a newer specmix?")
        return cls(**record)


def build_mixer(kind: MixerKind, cfg: LMConfig) -> nn.Module:
    if kind.name == "attention":
        return Attention(cfg.d_model, cfg.n_heads, causal=True, window=kind.window,
                         dropout=cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout,
                         rope=cfg.pos_emb == "rope")
    if kind.name == "spectral-taylor":
        return TaylorSpectralMixer(cfg.d_model, cfg.context, head_dim=cfg.head_dim, filter=cfg.filter)
    gated = kind.name == "spectral-gated"
    return SpectralMixer(cfg.d_model, cfg.context, causal=True, filter=cfg.filter, gated=gated,
                         head_dim=cfg.head_dim if gated else 1)


class SpecMixLM(nn.Module):
    """A causal char/token LM; ``forward(idx, targets=None) -> (logits, loss)``.

    Shape: idx ``(B, N)`` int64 with ``N <= context`` -> logits ``(B, N, V)``.
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if not isinstance(config, LMConfig):
            raise TypeError(f"SpecMixLM: config must be an LMConfig, got {type(config).__name__}")
        if config.vocab_size is None:
            raise UsageError("SpecMixLM: LMConfig.vocab_size is None; set it (the data's vocabulary "
                             "size) with dataclasses.replace(config, vocab_size=V)")
        self.config = config
        d = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, d)
        self.pos_emb = nn.Embedding(config.context, d) if config.uses_positions() else None
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(d, build_mixer(k, config), config.mlp_ratio, config.norm,
                                          dropout=config.dropout, activation=config.mlp)
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
                if self.config.zero_init_out:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.config.n_layers))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """The head on normalised hidden states ``(..., D) -> (..., V)``, soft-capped when
        ``logit_softcap`` is set: ``cap * tanh(logits / cap)``, inside (-cap, cap)."""
        out = self.head(h)
        cap = self.config.logit_softcap
        return out if cap is None else cap * torch.tanh(out / cap)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.dim() != 2:
            got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be an int64 tensor of shape (B, N), got {got}")
        if idx.shape[1] > self.config.context:
            raise ValueError(f"sequence length N={idx.shape[1]} exceeds context={self.config.context}")
        if idx.numel() and not torch.compiler.is_compiling() and not (0 <= int(idx.min()) and int(idx.max()) < self.config.vocab_size):
            raise ValueError(f"idx holds token ids in [{int(idx.min())}, {int(idx.max())}]; the vocabulary "
                             f"is 0 .. {self.config.vocab_size - 1}")

    def _check_shard(self, idx: torch.Tensor, shard: SequenceShard) -> None:
        refused = self.config.unshardable_kinds()
        if refused:
            raise UsageError(f"context parallelism supports spectral and spectral-gated layers only, "
                             f"not {refused[0]!r}")
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.dim() != 2:
            raise ValueError("idx must be this rank's int64 slice (B, N / P) of each sequence")
        if idx.shape[1] * shard.world > self.config.context:
            raise ValueError(f"sequence length N={idx.shape[1] * shard.world} ({shard.world} slices of "
                             f"{idx.shape[1]}) exceeds context={self.config.context}")

    def embed(self, idx: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = self.tok_emb(idx)                                          # (B, N, D)
        if self.pos_emb is not None:
            pos = torch.arange(offset, offset + idx.shape[1], device=idx.device)
            x = x + self.pos_emb(pos)
        return self.drop(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                shard: SequenceShard | None = None, scored_only: bool = False):
        """With a ``shard`` (context parallelism) ``idx`` and ``targets`` are this rank's slice
        ``(B, N / P)`` of each sequence: the logits are the slice's and the loss is the mean
        over the slice's scored targets (the caller weights slices into the global mean).

        ``scored_only`` (needs ``targets``): the head runs only where ``targets != -1`` and the
        logits are those rows, ``(S, V)`` in row-major order of the scored positions; the loss
        is the same. A sparse task (MQAR scores about 1/16 of its positions) then pays for the
        head, often the largest GEMM at a large vocabulary, only where it is scored."""
        if scored_only and targets is None:
            raise ValueError("SpecMixLM.forward: scored_only=True needs targets")
        if shard is None:
            self._check_idx(idx)
        else:
            self._check_shard(idx, shard)
        x = self.embed(idx, offset=0 if shard is None else shard.start(idx.shape[1]))
        for block in self.blocks:
            x = block(x) if shard is None else block(x, shard=shard)
        if scored_only:
            scored = targets != -1                                     # (B, N)
            x, targets = x[scored], targets[scored]                    # (S, D), (S,)
        logits = self.logits(self.norm(x))                             # (B, N, V) or (S, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                   ignore_index=-1)      # -1 = unscored (synthetic tasks)
        return logits, loss

    # ------------------------------------------------------------------ decoding
    # Decoding runs under torch.inference_mode rather than no_grad: a step is a few dozen tiny
    # ops, and skipping autograd's dispatch layer for each made it 25-30% faster (alternating
    # probes: 32K prompt, d 128, 2 cores). prefill/step hence return inference tensors (clone one to use it in
    # autograd); decode and generate return ordinary tensors.
    @torch.inference_mode()
    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Run the prompt ``idx (B, N)``; returns the next-token logits ``(B, V)`` and the
        per-layer states that :meth:`step` continues from (exact up to ``context`` tokens)."""
        self._check_idx(idx)
        x = self.embed(idx)
        states = []
        for block in self.blocks:
            x, state = block.prefill(x, self.config.context)
            states.append(state)
        return self.logits(self.norm(x[:, -1])), states

    @torch.inference_mode()
    def step(self, token: torch.Tensor, position: int, states: list) -> torch.Tensor:
        """Feed ``token (B,)`` at ``position`` (its index in the sequence, < ``context``);
        updates ``states`` in place and returns the next-token logits ``(B, V)``."""
        x_t = self.embed(token[:, None], offset=position)[:, 0]          # (B, D)
        for block, state in zip(self.blocks, states):
            x_t = block.step(x_t, state)
        return self.logits(self.norm(x_t))

    def decode(self, idx: torch.Tensor, new_tokens: int, pick) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached decoding: ``pick(logits (B, V)) -> (B,)`` chooses each next token.

        Returns the extended ``idx`` and the logits used for each new token ``(B, new, V)``.
        Exact within ``context``; past it, the window is cropped and recomputed (no cache).
        """
        with torch.inference_mode():
            out, logits = self._decode(idx, new_tokens, pick)
        return out.clone(), logits.clone()          # ordinary tensors, usable in autograd

    def _decode(self, idx: torch.Tensor, new_tokens: int, pick) -> tuple[torch.Tensor, torch.Tensor]:
        if new_tokens < 0:
            raise ValueError(f"new_tokens must be >= 0, got {new_tokens}")
        if new_tokens == 0:
            self._check_idx(idx)
            return idx, idx.new_zeros(idx.shape[0], 0, self.config.vocab_size, dtype=torch.float32)
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
