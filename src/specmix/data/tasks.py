"""Synthetic long-context tasks, generated on the fly from a seed (NumPy only; no dataset).

Every task yields ``(x, y)`` int64 arrays of shape ``(B, N)``: the model reads ``x`` and is
scored at the positions where ``y != IGNORE`` (elsewhere ``y == IGNORE``), so a causal LM
trains on them with ``cross_entropy(..., ignore_index=IGNORE)``. Legend: B batch, N seq_len.

``recall`` (associative recall, as in H3 / Hyena): the vocabulary is split into keys (first
half) and values (second half). Each sequence draws its own random map key -> value and is a
stream of ``key value`` pairs with keys drawn uniformly; ``x`` ends with a query key that has
occurred earlier, and ``y[-1]`` is its value (the *answer*). Every earlier value whose key has
already occurred in the sequence is scored too (dense supervision: one recall per pair).

``mqar`` (multi-query associative recall, as Zoology specifies it, Arora et al. 2023): keys
from the lower half of the vocabulary (token 0 excluded: it is the filler), values from the
upper half, ``kv_pairs`` distinct keys bound to distinct values as ``k v k v ...``; then each
key is queried exactly once, at an even offset of the rest of the sequence chosen with
power-law weights ``a i^(a-1)`` (``power_a``, gaps 1, 2, ...), so most queries come soon after
the context; the target at a query is its value, nothing else is scored. The filler is 0, or
(``random_filler``) a uniformly random token.

``copy`` (selective copying, as in the Mamba paper): ``n_copy`` data tokens stand at random
positions among noise tokens; after a separator run the model must emit them in order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..validation import UsageError, check_fields

IGNORE = -1
TASKS = ("recall", "copy", "mqar")


@dataclass(frozen=True)
class TaskSpec:
    """What to generate. ``vocab_size`` counts every token the model sees."""

    name: Literal["recall", "copy", "mqar"] = "recall"
    vocab_size: int = 30
    seq_len: int = 1024
    n_copy: int = 16          # copy only: tokens to remember
    kv_pairs: int = 4         # mqar only: key-value pairs, each queried once
    power_a: float = 0.01     # mqar only: the power law of the query gaps
    random_filler: bool = False   # mqar only: random tokens instead of 0 between queries

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise UsageError(f"--task: expected lm or one of {TASKS}, got {self.name!r}")
        check_fields(self, minimum={"n_copy": 1, "kv_pairs": 1})
        if not 0 < self.power_a < 1:
            raise UsageError(f"power_a must be in (0, 1), got {self.power_a}")
        if self.name == "mqar":
            _check_mqar(self)
        elif self.name == "recall":
            if self.vocab_size < 4 or self.vocab_size % 2:
                raise UsageError(f"--task-vocab: recall needs an even vocabulary >= 4, got {self.vocab_size}")
            if self.seq_len < 4:
                raise UsageError(f"--context: recall needs at least 4 tokens, got {self.seq_len}")
        else:
            if self.vocab_size < 4:
                raise UsageError(f"--task-vocab: copy needs >= 4 tokens (noise, separator, 2 data), got {self.vocab_size}")
            if self.seq_len < 2 * self.n_copy + 1:
                raise UsageError(f"--context {self.seq_len} is too short to copy {self.n_copy} tokens "
                                 f"(need >= {2 * self.n_copy + 1})")

    def batch(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` each ``(batch_size, seq_len)`` int64; ``y == IGNORE`` where unscored."""
        make = {"recall": recall_batch, "copy": copy_batch, "mqar": mqar_batch}[self.name]
        return make(self, batch_size, rng)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_mqar(spec: TaskSpec) -> None:
    half = spec.vocab_size // 2
    if half - 1 < spec.kv_pairs or spec.vocab_size - half < spec.kv_pairs:
        raise UsageError(f"--task-vocab {spec.vocab_size} is too small for {spec.kv_pairs} distinct keys "
                         f"(tokens 1..{half - 1}) and values (tokens {half}..{spec.vocab_size - 1})")
    if spec.seq_len % 2 or 4 * spec.kv_pairs > spec.seq_len:
        raise UsageError(f"--context {spec.seq_len}: mqar needs an even length >= 4 x --kv-pairs "
                         f"({4 * spec.kv_pairs})")


def _distinct(rng: np.random.Generator, batch_size: int, low: int, high: int, k: int) -> np.ndarray:
    """``(B, k)`` distinct integers per row from ``[low, high)``."""
    return np.argsort(rng.random((batch_size, high - low)), axis=1)[:, :k] + low


def mqar_batch(spec: TaskSpec, batch_size: int, rng: np.random.Generator):
    n, k, half = spec.seq_len, spec.kv_pairs, spec.vocab_size // 2
    keys = _distinct(rng, batch_size, 1, half, k)                                # (B, K)
    values = _distinct(rng, batch_size, half, spec.vocab_size, k)                # (B, K)
    space = (n - 2 * k) // 2                                                     # query slots
    weights = spec.power_a * np.arange(1, space + 1) ** (spec.power_a - 1)
    # k distinct gaps per row, drawn without replacement with these weights (Gumbel top-k)
    scores = np.log(weights / weights.sum()) - np.log(-np.log(rng.random((batch_size, space))))
    gaps = np.argsort(-scores, axis=1)[:, :k]                                    # (B, K)
    x = (rng.integers(0, spec.vocab_size, size=(batch_size, n)) if spec.random_filler
         else np.zeros((batch_size, n), dtype=np.int64))
    y = np.full((batch_size, n), IGNORE, dtype=np.int64)
    x[:, 0:2 * k:2], x[:, 1:2 * k:2] = keys, values                             # the context k v k v ...
    where = 2 * k + 2 * gaps                                                     # (B, K) query positions
    np.put_along_axis(x, where, keys, axis=1)
    np.put_along_axis(y, where, values, axis=1)                                 # target: the bound value
    return x.astype(np.int64), y


def recall_batch(spec: TaskSpec, batch_size: int, rng: np.random.Generator):
    n, half = spec.seq_len, spec.vocab_size // 2
    n_pairs = n // 2 + 1                      # stream of 2 * n_pairs >= n + 1 tokens
    mapping = rng.integers(half, 2 * half, size=(batch_size, half))              # (B, keys) -> value
    keys = rng.integers(0, half, size=(batch_size, n_pairs))                    # (B, P)
    # the query (last pair's key) is a key that occurred in an earlier pair of the window
    first = 1 if (2 * n_pairs - (n + 1)) else 0    # stream pairs cut by the window's left edge
    earlier = keys[:, first:-1]                                                  # (B, P - 1 - first)
    keys[:, -1] = earlier[np.arange(batch_size), rng.integers(0, earlier.shape[1], size=batch_size)]
    values = np.take_along_axis(mapping, keys, axis=1)                          # (B, P)
    stream = np.stack([keys, values], axis=-1).reshape(batch_size, 2 * n_pairs)  # (B, 2P) k v k v ...
    stream = stream[:, 2 * n_pairs - (n + 1):]                                   # (B, N + 1), ends with a value
    x, y = stream[:, :-1].copy(), stream[:, 1:].copy()                          # (B, N) each
    y[~_recallable(x, half)] = IGNORE
    return x.astype(np.int64), y.astype(np.int64)


def _recallable(x: np.ndarray, half: int) -> np.ndarray:
    """``(B, N)`` bool: x[t] is a key that occurred at an earlier position of the same row."""
    is_key = x < half
    onehot = np.zeros(x.shape + (half,), dtype=bool)                             # (B, N, keys)
    rows, cols = np.nonzero(is_key)
    onehot[rows, cols, x[rows, cols]] = True
    seen_before = np.cumsum(onehot, axis=1) - onehot                             # counts at < t
    return is_key & (np.take_along_axis(seen_before, np.where(is_key, x, 0)[..., None], axis=2)[..., 0] > 0)


def copy_batch(spec: TaskSpec, batch_size: int, rng: np.random.Generator):
    """Tokens: 0 noise, 1 separator, 2.. data. Layout of ``x``: the first ``N - n_copy`` positions
    hold ``n_copy`` data tokens at random places among noise, then ``n_copy`` separators;
    ``y`` scores the separators' next tokens, which spell the data tokens in order."""
    n, m = spec.seq_len, spec.n_copy
    body = n - m + 1                               # stream positions before the output run
    stream = np.zeros((batch_size, n + 1), dtype=np.int64)
    data = rng.integers(2, spec.vocab_size, size=(batch_size, m))                # (B, m)
    slots = np.sort(np.argsort(rng.random((batch_size, body - 1)), axis=1)[:, :m], axis=1)  # (B, m)
    np.put_along_axis(stream, slots, data, axis=1)
    stream[:, body - 1] = 1                                                      # separator
    stream[:, body:] = data                                                      # (B, m) the answer
    x, y = stream[:, :-1].copy(), stream[:, 1:].copy()
    y[:, : body - 1] = IGNORE                    # score only the m outputs from the separator on
    x[:, body:] = 1                              # inputs during the output run are separators
    return x, y
