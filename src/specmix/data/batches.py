"""Token data for torch training: a corpus, its char tokenizer, splits and batches.

Text handling lives in :mod:`specmix.data.corpus` and the tasks in :mod:`specmix.data.tasks`
(NumPy only); this module moves batches to torch. Batches are random contiguous windows drawn from a seeded NumPy generator,
whose state is saved in checkpoints so that a resumed run sees the same data order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .corpus import CharTokenizer, CorpusError, load_corpus, sample_batch, split_tokens
from .tasks import TaskSpec

__all__ = ["TokenData", "TaskData", "load_data"]


@dataclass
class TokenData:
    tokenizer: CharTokenizer
    train: np.ndarray
    val: np.ndarray
    name: str

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @classmethod
    def load(cls, data: str | None, context: int, tokenizer: CharTokenizer | None = None) -> "TokenData":
        text, name = load_corpus(data)
        tok = tokenizer or CharTokenizer.from_text(text)
        train, val = split_tokens(tok.encode(text))
        shortest = min(len(train), len(val))
        if shortest <= context:
            raise CorpusError(f"--context {context} is too large for {name}: its smallest split "
                              f"has {shortest} characters (need more than the context)")
        return cls(tok, train, val, name)

    def batch(self, split: str, batch_size: int, context: int, rng: np.random.Generator,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` int64 ``(B, context)``: inputs and next-token targets."""
        x, y = sample_batch(self.train if split == "train" else self.val, batch_size, context, rng)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


@dataclass
class TaskData:
    """A synthetic task (:mod:`specmix.tasks`) behind TokenData's ``batch`` interface.

    ``train`` batches come from the run's data generator; ``val`` batches from the fixed
    held-out generator that :func:`specmix.app.evaluate.evaluate` seeds anew at every evaluation.
    """

    spec: TaskSpec
    name: str

    @property
    def vocab_size(self) -> int:
        return self.spec.vocab_size

    @classmethod
    def load(cls, spec: TaskSpec) -> "TaskData":
        return cls(spec, f"task:{spec.name}")

    def batch(self, split: str, batch_size: int, context: int, rng: np.random.Generator,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` int64 ``(B, seq_len)``; ``y == -1`` at unscored positions."""
        x, y = self.spec.batch(batch_size, rng)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def load_data(*, task: str, data: str | None, task_vocab: int, context: int,
              tokenizer: CharTokenizer | None = None, kv_pairs: int = 4) -> TokenData | TaskData:
    """The corpus (``task="lm"``: ``data`` is a file or None for the default corpus) or the
    synthetic task of sequences of ``context`` tokens. ``tokenizer`` keeps a resumed run's
    vocabulary. The caller reads what was resolved (e.g. ``vocab_size``) from the result."""
    if task != "lm":
        return TaskData.load(TaskSpec(task, task_vocab, context, kv_pairs=kv_pairs))
    return TokenData.load(data, context, tokenizer)
