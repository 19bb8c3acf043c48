"""``SpecMixConfig``: :class:`specmix.model.LMConfig` as a Hugging Face config (``model_type
"specmix"``). The fields are LMConfig's, under the same names; they are validated by building
the LMConfig, so a bad value gets the same one-line error as on the command line."""
from __future__ import annotations

import dataclasses

from transformers import PretrainedConfig

from ..model import LMConfig

__all__ = ["SpecMixConfig"]

_FIELDS = tuple(f.name for f in dataclasses.fields(LMConfig))
_DEFAULTS = LMConfig()


class SpecMixConfig(PretrainedConfig):
    """The shape of a :class:`~specmix.hf.SpecMixForCausalLM`: LMConfig's fields (``vocab_size,
    d_model, n_layers, n_heads, context, mixers, filter, head_dim, mlp_ratio, dropout,
    tie_embeddings, norm, pos_emb, mlp, logit_softcap, zero_init_out, attn_dropout``) plus what ``PretrainedConfig`` takes (``**hf_kwargs``:
    token ids, ``architectures``, ``auto_map``, ...).

    Example:
        >>> cfg = SpecMixConfig(vocab_size=65, d_model=64, n_layers=2, mixers="spectral-gated")
        >>> cfg.to_lm_config().mixers
        ('spectral-gated',)
    """

    model_type = "specmix"
    attribute_map = {"hidden_size": "d_model", "num_hidden_layers": "n_layers",
                     "num_attention_heads": "n_heads", "max_position_embeddings": "context"}

    def __init__(self, vocab_size: int = 256, d_model: int = _DEFAULTS.d_model, n_layers: int = _DEFAULTS.n_layers,
                 n_heads: int = _DEFAULTS.n_heads, context: int = _DEFAULTS.context,
                 mixers: str | list[str] | tuple[str, ...] = _DEFAULTS.mixers, filter: str = _DEFAULTS.filter,
                 head_dim: int = _DEFAULTS.head_dim, mlp_ratio: float = _DEFAULTS.mlp_ratio,
                 dropout: float = _DEFAULTS.dropout, tie_embeddings: bool = _DEFAULTS.tie_embeddings,
                 norm: str = _DEFAULTS.norm, pos_emb: str = _DEFAULTS.pos_emb, mlp: str = _DEFAULTS.mlp,
                 logit_softcap: float | None = _DEFAULTS.logit_softcap,
                 zero_init_out: bool = _DEFAULTS.zero_init_out,
                 attn_dropout: float | None = _DEFAULTS.attn_dropout, **hf_kwargs) -> None:
        lm = LMConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                      context=context, mixers=mixers, filter=filter, head_dim=head_dim, mlp_ratio=mlp_ratio,
                      dropout=dropout, tie_embeddings=tie_embeddings, norm=norm, pos_emb=pos_emb, mlp=mlp,
                      logit_softcap=logit_softcap, zero_init_out=zero_init_out, attn_dropout=attn_dropout)
        for name in _FIELDS:
            value = getattr(lm, name)
            setattr(self, name, list(value) if name == "mixers" else value)    # JSON keeps a list
        hf_kwargs.setdefault("tie_word_embeddings", tie_embeddings)
        super().__init__(**hf_kwargs)

    def to_lm_config(self) -> LMConfig:
        """The equivalent :class:`LMConfig` (what the model is built from)."""
        return LMConfig(**{name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def from_lm_config(cls, lm: LMConfig, **hf_kwargs) -> "SpecMixConfig":
        """The config of a ``SpecMixLM`` (e.g. one trained by ``specmix train``)."""
        if lm.vocab_size is None:
            raise ValueError("SpecMixConfig.from_lm_config: LMConfig.vocab_size is None; set it first")
        return cls(**{name: getattr(lm, name) for name in _FIELDS}, **hf_kwargs)
