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


@pytest.mark.parametrize("seq_len,pairs,filler", [(64, 4, False), (128, 8, True), (256, 16, False)])
def test_mqar_queries_every_key_once_and_scores_only_queries(seq_len, pairs, filler):
    spec = TaskSpec("mqar", vocab_size=512, seq_len=seq_len, kv_pairs=pairs, random_filler=filler)
    x, y = spec.batch(16, np.random.default_rng(0))
    half = spec.vocab_size // 2
    assert x.shape == y.shape == (16, seq_len) and x.dtype == y.dtype == np.int64
    for row_x, row_y in zip(x, y):
        keys, values = row_x[0:2 * pairs:2], row_x[1:2 * pairs:2]
        assert len(set(keys)) == pairs and len(set(values)) == pairs             # distinct
        assert ((keys >= 1) & (keys < half)).all() and ((values >= half) & (values < 512)).all()
        bound = dict(zip(keys, values))
        scored = np.nonzero(row_y != IGNORE)[0]
        assert len(scored) == pairs and (scored >= 2 * pairs).all() and (scored % 2 == 0).all()
        assert sorted(row_x[scored]) == sorted(keys)                            # each key queried once
        for t in scored:
            assert row_y[t] == bound[row_x[t]]                                  # label = the bound value
        if not filler:
            rest = np.setdiff1d(np.arange(2 * pairs, seq_len), scored)
            assert (row_x[rest] == 0).all()


def test_mqar_is_seeded_and_gaps_follow_the_power_law():
    spec = TaskSpec("mqar", vocab_size=256, seq_len=512, kv_pairs=8)
    a, b = spec.batch(4, np.random.default_rng(7)), spec.batch(4, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    _, y = spec.batch(256, np.random.default_rng(1))
    gaps = (np.nonzero(y != IGNORE)[1] - 16) // 2                              # slot of each query
    assert np.median(gaps) < 256 / 4                                            # most queries come early


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocab_size=8, kv_pairs=4), "too small for 4 distinct keys"),
    (dict(seq_len=63), "even length"),
    (dict(seq_len=12, kv_pairs=4), ">= 4 x --kv-pairs"),
])
def test_bad_mqar_arguments(kwargs, match):
    with pytest.raises(UsageError, match=match):
        TaskSpec(**({"name": "mqar", "vocab_size": 64, "seq_len": 64, "kv_pairs": 4} | kwargs))
