"""Synthetic tasks: the generated sequences mean what the docstrings say."""
import numpy as np
import pytest

from specmix.data.tasks import IGNORE, TaskSpec
from specmix.validation import UsageError


def _recall(seq_len=41, vocab=10, batch=16, seed=0):
    spec = TaskSpec("recall", vocab, seq_len)
    return spec, *spec.batch(batch, np.random.default_rng(seed))


@pytest.mark.parametrize("seq_len", [4, 5, 40, 41, 1024])
def test_recall_layout(seq_len):
    spec, x, y = _recall(seq_len)
    half = spec.vocab_size // 2
    assert x.shape == y.shape == (16, seq_len) and x.dtype == y.dtype == np.int64
    assert x.min() >= 0 and x.max() < spec.vocab_size
    np.testing.assert_array_equal(x[:, 1:], np.where(y[:, :-1] == IGNORE, x[:, 1:], y[:, :-1]))
    assert (x[:, -1] < half).all() and (y[:, -1] >= half).all()          # ends: query key -> value
    keys_at = np.nonzero(x[0] < half)[0]
    assert (np.diff(keys_at) == 2).all()                                  # k v k v ... alternate


def test_recall_answers_are_the_value_bound_to_the_key_earlier():
    spec, x, y = _recall(seq_len=64, vocab=8, batch=32)
    half = spec.vocab_size // 2
    for row_x, row_y in zip(x, y):
        bound, scored = {}, 0
        for t in range(len(row_x) - 1):
            if row_x[t] < half:
                if row_x[t] in bound:                                     # seen: scored, same value
                    assert row_y[t] == bound[row_x[t]]
                    scored += 1
                else:
                    assert row_y[t] == IGNORE
                bound[row_x[t]] = row_x[t + 1]
            else:
                assert row_y[t] == IGNORE                                 # values predict nothing
        assert row_x[-1] in bound and row_y[-1] == bound[row_x[-1]]      # the query was seen
        assert scored > 0


def test_tasks_are_seeded_and_vary_per_sequence():
    _, x1, y1 = _recall(seed=3)
    _, x2, y2 = _recall(seed=3)
    _, x3, _ = _recall(seed=4)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert len({tuple(r) for r in x1}) == len(x1)


def test_copy_layout():
    spec = TaskSpec("copy", vocab_size=12, seq_len=50, n_copy=6)
    x, y = spec.batch(8, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 50)
    scored = y != IGNORE
    assert (scored.sum(1) == 6).all() and scored[:, -6:].all()
    for row_x, row_y in zip(x, y):
        data = row_x[:44][row_x[:44] >= 2]                              # data tokens in order
        np.testing.assert_array_equal(row_y[-6:], data)
        assert row_x[44] == 1 and (row_x[45:] == 1).all()                # separators from 44 on


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="sort"), "--task"),
    (dict(vocab_size=7), "--task-vocab"),
    (dict(vocab_size=2), "--task-vocab"),
    (dict(seq_len=3), "--context"),
    (dict(name="copy", seq_len=10, n_copy=16), "--context"),
])
def test_bad_task_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        TaskSpec(**kwargs)
