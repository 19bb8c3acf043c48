"""The recall mixer (Taylor-mapped gated spectral mixer) and rotary attention."""
import pytest
import torch

from specmix import Attention, Block
from specmix.feature_map import TaylorSpectralMixer, n_taylor_features, taylor_features
from specmix.functional import rotary

from helpers import assert_causal, assert_close, assert_same_grads, tiny_lm

D, MAX_LEN = 16, 48


def taylor(**kw):
    torch.manual_seed(0)
    return TaylorSpectralMixer(D, MAX_LEN, head_dim=4, **kw).double()


def test_taylor_features_approximate_the_exponential_kernel():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64), torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    fa, fb = taylor_features(a, dim=1), taylor_features(b, dim=1)            # (3, F, 7)
    assert fa.shape == (3, n_taylor_features(5), 7) == (3, 21, 7)
    dot = (a * b).sum(1) / 5 ** 0.5
    assert_close((fa * fb).sum(1), 1 + dot + dot ** 2 / 2, what="phi(a).phi(b)")


def reference(mixer: TaylorSpectralMixer, x: torch.Tensor) -> torch.Tensor:
    """The stated formula with loops over heads, time and lags."""
    q, _, u = mixer._streams(x, None, True)
    bsz, d, n = q.shape
    h = mixer.head_dim
    k, v = mixer._short_conv(u, True, None).chunk(3, dim=1)[1:]
    kernel = mixer.filter.kernel(n)                                           # (H, N)
    out = []
    for head in range(d // h):
        rows = slice(head * h, (head + 1) * h)
        fq, fk = taylor_features(q[:, rows], dim=1), taylor_features(k[:, rows], dim=1)  # (B, F, N)
        ys = []
        for t in range(n):
            mem = sum(kernel[head, t - s] * fk[:, :, s, None] * v[:, rows, s][:, None, :] for s in range(t + 1))
            y = (fq[:, :, t, None] * mem).sum(1)                              # (B, h)
            ys.append(y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + mixer.eps))
        out.append(torch.stack(ys, -1))                                       # (B, h, N)
    return mixer.out_proj(torch.cat(out, 1).transpose(1, 2))


def test_equals_the_stated_formula_in_values_and_gradients():
    mixer = taylor()
    with torch.no_grad():   # a non-flat kernel, so that lags matter
        mixer.filter.response.add_(0.3 * torch.randn_like(mixer.filter.response))
    x = torch.randn(2, 11, D, dtype=torch.float64, requires_grad=True)
    y, ref = mixer(x), reference(mixer, x)
    assert_close(y, ref, what="taylor mixer")
    assert_same_grads(y, ref, [x, *mixer.parameters()], what="taylor mixer")


def test_gradcheck():
    mixer = TaylorSpectralMixer(4, 8, head_dim=2).double()
    x = torch.randn(1, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mixer(t), (x,))


def test_starts_as_a_flat_causal_sum():
    assert torch.equal(taylor().filter.kernel(MAX_LEN), torch.ones(D // 4, MAX_LEN, dtype=torch.float64))


@pytest.mark.parametrize("filt", ["frequency", "implicit"])
def test_causal_in_mixer_and_block_and_under_bf16(filt):
    mixer = taylor(filter=filt)
    x = torch.randn(2, 40, D, dtype=torch.float64)
    assert_causal(mixer, x, times=(0, 3, 17, 38))
    assert_causal(Block(D, mixer).double(), x, times=(0, 17, 38))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_causal(mixer.float(), x.float(), times=(0, 17, 38), atol=2e-2)


def test_padding_does_not_change_real_positions():
    mixer = taylor()
    x = torch.randn(2, 23, D, dtype=torch.float64)
    padded = torch.cat([x, 5 * torch.randn(2, 9, D, dtype=torch.float64)], dim=1)
    mask = torch.arange(32)[None, :].expand(2, -1) < 23
    out = mixer(padded, mask)
    assert torch.allclose(out[:, :23], mixer(x), atol=1e-10)
    assert (out[:, 23:] == 0).all()


def test_masked_prefill_and_step_match_forward():
    mixer = taylor()
    x = torch.randn(2, 12, D, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    with torch.no_grad():
        full = mixer(x, mask)
        y, state = mixer.prefill(x[:, :7], 12, mask[:, :7])
        steps = torch.stack([mixer.step(x[:, t], state, mask[:, t]) for t in range(7, 12)], 1)
    assert_close(torch.cat([y, steps], 1), full, what="masked decoding")


@pytest.mark.parametrize("mixers,pos", [("spectral-taylor", "auto"), ("spectral-taylor,attention", "rope"),
                                        ("attention", "rope"), ("local:8", "rope")])
def test_cached_decoding_of_the_lm_matches_the_full_forward(mixers, pos, monkeypatch):
    monkeypatch.setattr("specmix.decoding.MIN_FOLD_BLOCK", 2)
    model = tiny_lm(mixers, head_dim=4, pos_emb=pos)
    assert (model.pos_emb is None) == (pos == "rope" or "attention" not in mixers)
    prompt = torch.randint(0, 11, (2, 10), generator=torch.Generator().manual_seed(1))
    out, cached = model.decode(prompt, 40, pick=lambda logits: logits.argmax(-1))
    with torch.no_grad():
        full = model(out[:, :-1])[0][:, 9:]
    assert (full - cached).abs().max().item() < 1e-4


def test_bad_uses_are_named():
    with pytest.raises(ValueError, match="head_dim must be >= 2"):
        TaylorSpectralMixer(16, 8, head_dim=1)
    with pytest.raises(ValueError, match="causal only"):
        taylor()(torch.randn(1, 4, D, dtype=torch.float64), causal=False)
    with pytest.raises(ValueError, match="context parallelism"):
        taylor()(torch.randn(1, 4, D, dtype=torch.float64), shard=object())
    from specmix.model import LMConfig
    from specmix.validation import UsageError
    with pytest.raises(UsageError, match="--head-dim >= 2"):
        LMConfig(mixers=("spectral-taylor",))
    with pytest.raises(UsageError, match="even head width"):
        LMConfig(d_model=12, n_heads=4, mixers=("attention",), pos_emb="rope")


def test_rotary_scores_depend_on_relative_positions_only():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 1, 8, generator=gen, dtype=torch.float64), torch.randn(1, 2, 1, 8, generator=gen, dtype=torch.float64)
    score = [(rotary(q, a) * rotary(k, b)).sum() for a, b in [(5, 2), (13, 10), (3, 0)]]
    assert_close(torch.stack(score[1:]), score[0].expand(2), what="shifted scores")
    assert not torch.allclose((rotary(q, 5) * rotary(k, 1)).sum(), score[0])
    assert_close(rotary(q, 0), q, what="position 0 is the identity")


def test_rotary_attention_is_causal_and_pads_cleanly():
    torch.manual_seed(0)
    mixer = Attention(D, 2, rope=True).double()
    x = torch.randn(2, 20, D, dtype=torch.float64)
    assert_causal(mixer, x, times=(0, 7, 18))
    mask = torch.ones(2, 26, dtype=torch.bool)
    mask[:, 20:] = False
    padded = torch.cat([x, torch.randn(2, 6, D, dtype=torch.float64)], 1)
    assert torch.allclose(mixer(padded, mask)[:, :20], mixer(x), atol=1e-10)
    assert "rope=True" in repr(mixer)


def test_scored_only_logits_are_the_scored_rows():
    model = tiny_lm("spectral-taylor", head_dim=4)
    idx = torch.randint(0, 11, (3, 20), generator=torch.Generator().manual_seed(0))
    targets = torch.full_like(idx, -1)
    targets[:, 5::4] = idx[:, 5::4]
    logits, loss = model(idx, targets)
    some, loss2 = model(idx, targets, scored_only=True)
    assert some.shape == (12, 11)                  # positions 5, 9, 13, 17 of 3 rows
    assert_close(some, logits[targets != -1], tol=1e-6, what="scored rows")
    assert_close(loss2, loss, tol=1e-6, what="loss")
    with pytest.raises(ValueError, match="needs targets"):
        model(idx, scored_only=True)
