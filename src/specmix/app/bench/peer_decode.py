"""transformers' causal LMs behind ``bench-decode``'s interface, so their cached decoding is
timed beside specmix's: kinds ``hf-gpt2`` (SDPA, a DynamicCache of keys and values),
``hf-mamba`` (convolution and SSM states) and ``hf-rwkv`` (its five per-layer state tensors).

:class:`PeerDecoder` builds the untrained model from a :class:`~specmix.app.peer_lm.PeerConfig`
and runs it as a user would: one forward over the prompt with ``use_cache=True``, then one
forward per new token with the returned cache. :func:`matched_config` shapes a peer so that
its parameters match a specmix LM's (depth, then MLP width): the families' blocks differ in size.
"""
from __future__ import annotations

import torch

from ..peer_lm import PeerConfig, PeerLM

__all__ = ["PEER_KINDS", "PeerDecoder", "matched_config", "matched_depth", "matched_shape", "peer_like",
           "peer_versions"]

PEER_KINDS = ("hf-gpt2", "hf-mamba", "hf-rwkv")


def peer_versions(kinds) -> dict[str, str]:
    """The installed versions behind the transformers models among ``kinds`` (``hf-*`` decoders,
    ``enc-*`` encoders): transformers, and mambapy when ``hf-mamba`` runs its scan."""
    from importlib.metadata import PackageNotFoundError, version
    names = ["transformers"] if any(k.startswith(("hf-", "enc-")) for k in kinds) else []
    names += ["mambapy"] if "hf-mamba" in kinds else []
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _params(family: str, n_layers: int, d_model: int, n_heads: int, context: int, d_ff: int | None = None) -> int:
    """Parameters, GPT-2's position table left out (it grows with the context, not the model)."""
    cfg = PeerConfig(family=family, vocab_size=65, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                     context=context, d_ff=d_ff)
    positions = context * d_model if family == "gpt2" else 0
    return sum(p.numel() for p in PeerLM(cfg).parameters()) - positions


def matched_depth(family: str, target_params: int, *, d_model: int, n_heads: int, context: int) -> int:
    """The depth (>= 2) whose parameter count (GPT-2's position table left out) is nearest
    ``target_params`` at width ``d_model`` (the count grows linearly with depth: two sizes give it)."""
    two, three = (_params(family, n, d_model, n_heads, context) for n in (2, 3))
    per_layer = three - two
    return max(2, round((target_params - (two - 2 * per_layer)) / per_layer))


# a peer whose nearest depth is further than this from the target also gets its MLP width fitted
MATCH_TOLERANCE = 0.02


def matched_shape(family: str, target_params: int, *, d_model: int, n_heads: int,
                  context: int) -> tuple[int, int | None]:
    """``(n_layers, d_ff)``: the nearest depth (:func:`matched_depth`) and, when that depth's count
    is more than MATCH_TOLERANCE from ``target_params`` and the family has an MLP (gpt2, rwkv), the
    MLP width that brings it nearest (the count is linear in the width); else ``d_ff`` None, the
    family's default width 4 x d_model. RWKV at d_model 128 needs it: 6 layers are +5.1% of a
    1.24M-parameter spectral-gated LM, 5 layers -13%."""
    depth = matched_depth(family, target_params, d_model=d_model, n_heads=n_heads, context=context)
    default = _params(family, depth, d_model, n_heads, context)
    if family == "mamba" or abs(default - target_params) <= MATCH_TOLERANCE * target_params:
        return depth, None
    wider = _params(family, depth, d_model, n_heads, context, d_ff=4 * d_model + 8)
    per_unit = (wider - default) / 8
    return depth, max(1, round(4 * d_model + (target_params - default) / per_unit))


def matched_config(kind: str, target_params: int, *, vocab_size: int, d_model: int, n_heads: int,
                   context: int) -> PeerConfig:
    """The config of a transformers peer of ``kind`` (``hf-gpt2`` ...) at width ``d_model``, shaped
    to match ``target_params`` (:func:`matched_shape`): what bench-pairs and bench-decode build."""
    family = kind.removeprefix("hf-")
    depth, d_ff = matched_shape(family, target_params, d_model=d_model, n_heads=n_heads, context=context)
    return PeerConfig(family=family, vocab_size=vocab_size, d_model=d_model, n_layers=depth, n_heads=n_heads,
                      context=context, d_ff=d_ff)


def peer_like(kind: str, lm, device="cpu") -> PeerLM:
    """An untrained transformers LM of ``kind`` with ``lm``'s vocabulary, width, heads and context,
    matched to ``lm``'s parameter count (:func:`matched_config`; for timing its training step)."""
    c = lm.config
    config = matched_config(kind, sum(p.numel() for p in lm.parameters()), vocab_size=c.vocab_size,
                            d_model=c.d_model, n_heads=c.n_heads, context=c.context)
    torch.manual_seed(0)
    return PeerLM(config).to(device)


class _PeerState:
    """One sequence batch's cache; ``batch_tensors()`` lists its tensors (for the memory figure)."""

    def __init__(self, cache):
        self.cache = cache

    def batch_tensors(self) -> list[torch.Tensor]:
        found, seen = [], set()

        def walk(obj, depth):
            if isinstance(obj, torch.Tensor):
                found.append(obj)
            elif depth < 8 and isinstance(obj, (list, tuple)):
                for item in obj:
                    walk(item, depth + 1)
            elif depth < 8 and isinstance(obj, dict):
                for item in obj.values():
                    walk(item, depth + 1)
            elif depth < 8 and hasattr(obj, "__dict__") and id(obj) not in seen:
                seen.add(id(obj))
                walk(vars(obj), depth + 1)
        walk(self.cache, 0)
        return found


def _cache_of(out, family: str):
    """The returned cache: RWKV's ``state`` (five tensors), else the ``cache`` object."""
    value = out.state if family == "rwkv" else out.cache
    if value is None:
        raise RuntimeError(f"{type(out).__name__} returned no cache")
    return value


class PeerDecoder:
    """``prefill(idx (B, P)) -> (logits (B, V), states)``, ``step(token (B,), pos, states) ->
    logits (B, V)`` of an untrained transformers LM (see the module docstring)."""

    def __init__(self, config: PeerConfig, device):
        torch.manual_seed(0)
        self.family = config.family
        self.lm = PeerLM(config).to(device).eval()
        self.config = config

    def num_params(self) -> int:
        return sum(p.numel() for p in self.lm.parameters())

    def _cache_kwargs(self, states: list) -> dict:
        return {"state" if self.family == "rwkv" else "cache": states[0].cache}

    @torch.no_grad()
    def prefill(self, idx: torch.Tensor) -> tuple[torch.Tensor, list]:
        out = self.lm.net(input_ids=idx, use_cache=True)
        return out.logits[:, -1], [_PeerState(_cache_of(out, self.family))]

    @torch.no_grad()
    def step(self, token: torch.Tensor, pos: int, states: list) -> torch.Tensor:
        out = self.lm.net(input_ids=token[:, None], use_cache=True, **self._cache_kwargs(states))   # (B, 1, V)
        states[0].cache = _cache_of(out, self.family)
        return out.logits[:, -1]
