"""Shared fixtures and markers. ``helpers.py`` beside this file holds the assertion helpers
(causality probe, the per-dtype tolerance table and ``assert_close``)."""
import json

import pytest
import torch
from hypothesis import settings

settings.register_profile("specmix", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("specmix")

# a small corpus made here (tests never read ../shared/data)
CORPUS_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
               "All:\nSpeak, speak.\n\n") * 60


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer tests (make test runs them too)")
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def corpus_text() -> str:
    return CORPUS_TEXT


@pytest.fixture
def data(tmp_path) -> str:
    """Path of a small UTF-8 corpus file."""
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS_TEXT)
    return str(path)


@pytest.fixture
def read_metrics():
    def read(out):
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return read


@pytest.fixture
def one_line_error(capsys):
    """``one_line_error(argv, words)``: the CLI exits 2 with one stderr line containing words."""
    from specmix.app.cli import main

    def check(argv, words):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    return check
