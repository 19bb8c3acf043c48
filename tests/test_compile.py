"""torch.compile at any length: one compiled object serves three lengths, equal to eager in
loss and gradients, with a bounded number of graphs (the traced forms of
:mod:`specmix.traceable`); the gated mixer compiles with fullgraph=True; a swapped GPT-2
generates the same tokens compiled, with no new graph after the first prompt length."""
import copy

import pytest
import torch
from torch._dynamo.utils import counters

from helpers import assert_close
from specmix import LMConfig, SpecMixLM, SpectralMixer

LENGTHS = (24, 57, 100)


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("filter, causal, gated", [("frequency", True, True), ("implicit", True, True),
                                                   ("frequency", False, False), ("implicit", False, True)])
def test_a_mixer_compiles_as_one_graph_for_every_length(filter, causal, gated):
    """fullgraph=True: no graph break inside the mixer; dynamic=True: one graph, three lengths.
    aot_eager traces exactly what inductor receives (the LM test below runs inductor)."""
    mixer = SpectralMixer(16, 128, causal=causal, filter=filter, gated=gated)
    compiled = torch.compile(mixer, fullgraph=True, dynamic=True, backend="aot_eager")
    for n in LENGTHS:
        x = torch.randn(2, n, 16, requires_grad=True)
        y_eager = mixer(x)
        (g_eager,) = torch.autograd.grad(y_eager.square().sum(), x)
        y = compiled(x)
        (g,) = torch.autograd.grad(y.square().sum(), x)
        assert_close(y, y_eager, what=f"output N={n}")
        assert_close(g, g_eager, what=f"input gradient N={n}")
    assert graphs() == 1


def _loss_and_grads(model, idx, targets):
    model.zero_grad(set_to_none=True)
    _, loss = model(idx, targets)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _check_training_at_three_lengths(model, compiled, vocab: int) -> None:
    for n in LENGTHS:
        idx, targets = torch.randint(0, vocab, (2, n)), torch.randint(0, vocab, (2, n))
        loss_eager, grads_eager = _loss_and_grads(model, idx, targets)
        loss, grads = _loss_and_grads(compiled, idx, targets)
        assert_close(loss, loss_eager, what=f"loss N={n}")
        for (name, _), g, g_eager in zip(model.named_parameters(), grads, grads_eager):
            assert_close(g, g_eager, what=f"grad {name} N={n}")


def test_the_lm_compiled_by_default_equals_eager_at_three_lengths():
    """The default torch.compile (inductor, automatic dynamic shapes) of a gated spectral LM
    with an implicit filter: the first length compiles a static graph, the second a dynamic
    one that serves the third and any other. Loss and every gradient within 1e-5 relative.
    (One small layer: inductor's first compile on 2 cores is what this test pays for.)"""
    cfg = LMConfig(vocab_size=13, d_model=16, n_layers=1, context=128, mixers=("spectral-gated",),
                   filter="implicit")
    model = SpecMixLM(cfg)
    _check_training_at_three_lengths(model, torch.compile(model), 13)
    assert graphs() == 2


def test_a_hybrid_lm_compiles_for_training_and_eval_with_few_graphs():
    """Gated spectral + attention with rotary positions, traced as inductor would get it
    (aot_eager): 2 graphs for training at three lengths, at most 2 more for eval at four."""
    cfg = LMConfig(vocab_size=13, d_model=16, n_layers=2, n_heads=2, context=128,
                   mixers=("spectral-gated", "attention"), filter="frequency", pos_emb="rope")
    model = SpecMixLM(cfg)
    compiled = torch.compile(model, backend="aot_eager")
    _check_training_at_three_lengths(model, compiled, 13)
    assert graphs() == 2
    model.eval()
    with torch.no_grad():
        for n in LENGTHS + (128,):
            idx = torch.randint(0, 13, (3, n))
            assert_close(compiled(idx)[0], model(idx)[0], what=f"eval logits N={n}")
    assert graphs() <= 4


def test_a_swapped_gpt2_generates_the_same_tokens_compiled():
    """Cached generate through a compiled forward (aot_eager: the graphs inductor would get,
    without its code generation, for time): the decoding state's bookkeeping runs
    eagerly (torch.compiler.disable), the layers around it compiled; after the first
    prompt length no new graph is made (prompt and one-token steps are all compiled then)."""
    pytest.importorskip("transformers")
    from test_hf import gpt2

    from specmix import swap_attention
    model = gpt2()
    swap_attention(model, max_len=96, gated=True)
    model.eval()
    eager = copy.deepcopy(model)
    model.forward = torch.compile(model.forward, dynamic=True, backend="aot_eager")
    after_first = None
    for n in (5, 11, 19, 30):
        ids = torch.randint(1, 50, (2, n))
        kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(ids))
        expected = eager.generate(ids, **kwargs)
        assert torch.equal(model.generate(ids, **kwargs), expected)
        with torch.no_grad():
            assert_close(model(ids, use_cache=False).logits, eager(ids, use_cache=False).logits,
                         what=f"logits N={n}")
        after_first = graphs() if after_first is None else after_first
    assert graphs() == after_first


def test_a_swapped_gpt2_trains_compiled_as_in_eager_mode():
    """Training (a fresh cache per call, gradients on): loss and gradients equal at three
    lengths; the graph count stops growing after the second length."""
    pytest.importorskip("transformers")
    from test_hf import gpt2

    from specmix import swap_attention
    model = gpt2()
    for module in model.modules():          # no dropout: both sides must draw the same numbers
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    swap_attention(model, max_len=96, gated=True, filter="implicit")
    model.train()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="aot_eager")
    counts = []
    for n in (9, 30, 61):
        ids = torch.randint(1, 50, (2, n))
        for m in (model, eager):
            m.zero_grad(set_to_none=True)
        loss_eager = eager(ids, labels=ids).loss
        loss_eager.backward()
        loss = compiled(ids, labels=ids).loss
        loss.backward()
        assert_close(loss, loss_eager, what=f"loss N={n}")
        for (name, p), p_eager in zip(model.named_parameters(), eager.parameters()):
            if p_eager.grad is not None:
                assert_close(p.grad, p_eager.grad, what=f"grad {name} N={n}")
        counts.append(graphs())
    assert counts[2] == counts[1]
