"""Hugging Face causal LMs that users would train instead (GPT-2, Mamba, RWKV), built from a
config and trained by the same loop as specmix's LM (``specmix train-peer``).

:class:`PeerConfig` says which family and how large; :class:`PeerLM` wraps the HF model so
the loop sees what it sees in :class:`~specmix.model.SpecMixLM`: ``forward(idx, targets) ->
(logits, loss)`` with the loss a float32 cross-entropy that ignores ``-1`` targets, and
``config.context`` / ``config.vocab_size``. Each family runs its own PyTorch code path (on a
CPU: Mamba's sequential scan, RWKV's per-token loop, GPT-2's SDPA); nothing is reimplemented.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from ..validation import UsageError, check_fields

__all__ = ["PeerConfig", "PeerLM", "is_peer_record"]


@dataclass(frozen=True)
class PeerConfig:
    """A Hugging Face causal LM of one family, sized by width and depth; validated on construction."""

    family: Literal["gpt2", "mamba", "rwkv"] = field(default="gpt2", metadata={
        "help": "gpt2 (attention, SDPA), mamba (selective SSM) or rwkv (RWKV-4), from transformers"})
    vocab_size: int | None = field(default=None, metadata={"help": "tokens (None: from the data)"})
    d_model: int = field(default=128, metadata={"help": "width (hidden_size / n_embd)"})
    n_layers: int = field(default=6, metadata={"help": "blocks"})
    n_heads: int = field(default=4, metadata={"help": "gpt2: attention heads"})
    context: int = field(default=256, metadata={"help": "training window (gpt2: its positions)"})
    dropout: float = field(default=0.0, metadata={
        "help": "gpt2: dropout on embeddings, residual branches and attention weights (mamba and rwkv have none)"})
    attn_dropout: float | None = field(default=None, metadata={
        "help": "gpt2: dropout on attention weights (none = --dropout)"})
    d_state: int = field(default=16, metadata={"help": "mamba: SSM state size per channel"})
    d_ff: int | None = field(default=None, metadata={
        "help": "gpt2 and rwkv: MLP width (none = 4 x d_model; mamba has no MLP)"})

    def __post_init__(self) -> None:
        check_fields(self, minimum={"vocab_size": 2, "d_model": 1, "n_layers": 1, "n_heads": 1, "context": 1,
                                    "dropout": 0.0, "d_state": 1, "d_ff": 1})
        if self.family == "mamba" and self.d_ff is not None:
            raise UsageError(f"--d-ff {self.d_ff}: transformers' mamba has no MLP; leave it unset")
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
            if self.family != "gpt2" and value:
                raise UsageError(f"--{name.replace('_', '-')} {value}: transformers' {self.family} models have "
                                 "no dropout; leave it at 0")
        if self.family == "gpt2" and self.d_model % self.n_heads:
            raise UsageError(f"--d-model {self.d_model} must be divisible by --n-heads {self.n_heads}")
        if self.family == "rwkv" and self.n_layers < 2:
            raise UsageError("--n-layers must be >= 2 for rwkv (its initialisation divides by n_layers - 1)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "PeerConfig":
        return cls(**record)

    def hf_config(self):
        """The transformers config of this model (needs ``vocab_size``)."""
        import transformers
        if self.vocab_size is None:
            raise UsageError("PeerConfig.vocab_size is unset (it comes from the data)")
        if self.family == "gpt2":
            p = self.dropout
            return transformers.GPT2Config(vocab_size=self.vocab_size, n_positions=self.context, n_embd=self.d_model,
                                           n_layer=self.n_layers, n_head=self.n_heads, n_inner=self.d_ff,
                                           resid_pdrop=p, embd_pdrop=p,
                                           attn_pdrop=p if self.attn_dropout is None else self.attn_dropout,
                                           attn_implementation="sdpa",
                                           bos_token_id=None, eos_token_id=None)
        if self.family == "mamba":
            return transformers.MambaConfig(vocab_size=self.vocab_size, hidden_size=self.d_model,
                                            num_hidden_layers=self.n_layers, state_size=self.d_state,
                                            use_mambapy=_has_mambapy())
        return transformers.RwkvConfig(vocab_size=self.vocab_size, context_length=self.context,
                                       hidden_size=self.d_model, num_hidden_layers=self.n_layers,
                                       attention_hidden_size=self.d_model,
                                       intermediate_size=self.d_ff or 4 * self.d_model)


def _has_mambapy() -> bool:
    """Whether mambapy's parallel scan is installed: transformers' Mamba then trains with it
    instead of its token-by-token loop (whose backward slices a (B, D, N, S) tensor per
    position; an 11-layer d 128 step at batch 32 x 256 took minutes on 2 CPU cores, with the
    scan about 25 s)."""
    import importlib.util
    return importlib.util.find_spec("mambapy") is not None


def is_peer_record(model_record: dict) -> bool:
    """Whether a checkpoint's ``config.json["model"]`` describes a :class:`PeerConfig`."""
    return "family" in model_record


class PeerLM(torch.nn.Module):
    """A transformers causal LM behind specmix's LM interface (see the module docstring)."""

    def __init__(self, config: PeerConfig):
        super().__init__()
        import transformers
        self.config = config
        classes = {"gpt2": transformers.GPT2LMHeadModel, "mamba": transformers.MambaForCausalLM,
                   "rwkv": transformers.RwkvForCausalLM}
        self.net = classes[config.family](config.hf_config())

    def extra_repr(self) -> str:
        return f"family={self.config.family}, d_model={self.config.d_model}, n_layers={self.config.n_layers}"

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *, scored_only: bool = False):
        """``idx`` (B, N) int64, N <= context -> logits (B, N, V) and the mean cross-entropy over
        targets != -1 (None without targets); ``scored_only``: logits (S, V) of the scored rows."""
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.dim() != 2:
            raise ValueError(f"idx must be an int64 tensor (B, N), got {getattr(idx, 'dtype', type(idx))} "
                             f"{tuple(getattr(idx, 'shape', ()))}")
        if idx.shape[1] > self.config.context:
            raise ValueError(f"idx has {idx.shape[1]} positions, more than context={self.config.context}")
        if scored_only and targets is None:
            raise ValueError("PeerLM.forward: scored_only=True needs targets")
        logits = self.net(input_ids=idx, use_cache=False).logits          # (B, N, V)
        if scored_only:
            scored = targets != -1                                         # (B, N)
            logits, targets = logits[scored], targets[scored]              # (S, V), (S,)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_matrices(self) -> list[str]:
        """Names of the 2D weights of the projections inside the blocks (Muon's share): every
        ``nn.Linear`` / GPT-2 ``Conv1D`` weight except the output head; embeddings, norms,
        biases, convolution taps and SSM parameters (``A_log``, ``D``, RWKV's time mixing) are not."""
        from transformers.pytorch_utils import Conv1D
        head = self.net.get_output_embeddings()
        return [f"{name}.weight" for name, module in self.named_modules()
                if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head]


def write_peer_hf_files(out: str, record: dict, checkpoint: str) -> None:
    """A ``specmix train-peer`` folder's top level as the peer's own Hugging Face folder:
    ``config.json`` (the run's record merged with the transformers config, so
    ``AutoModelForCausalLM.from_pretrained(out)`` builds the GPT-2 / Mamba / RWKV model),
    ``model.safetensors`` (the checkpoint's weights under transformers' names) and the
    character tokenizer; each file replaced atomically."""
    import json
    import os

    from safetensors.torch import load_file, save_file

    from ..hf.run_dir import write_tokenizer
    from ..io import atomic_path, atomic_write_text
    hf = PeerConfig.from_dict(record["model"]).hf_config()
    hf.architectures = [{"gpt2": "GPT2LMHeadModel", "mamba": "MambaForCausalLM",
                         "rwkv": "RwkvForCausalLM"}[record["model"]["family"]]]
    atomic_write_text(os.path.join(out, "config.json"), json.dumps(dict(record, **hf.to_dict()), indent=2) + "\n")
    weights = {k.removeprefix("net."): v for k, v in load_file(os.path.join(checkpoint, "model.safetensors")).items()}
    with atomic_path(os.path.join(out, "model.safetensors")) as tmp:
        save_file(weights, tmp, metadata={"format": "pt"})
    if record.get("tokenizer"):
        write_tokenizer(out, record["tokenizer"]["chars"])
