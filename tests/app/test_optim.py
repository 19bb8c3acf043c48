"""Optimizers and schedules of specmix train: Muon on hidden matrices only, the wsd shape, the
filter group, and defaults that keep the AdamW runs of before bit-identical."""
import dataclasses

import pytest
import torch

from specmix.app.optim import MUON_WARMUP, Optimizers, get_lr, make_optimizer, muon_momentum
from specmix.app.train import TrainConfig, train
from specmix.model import LMConfig, SpecMixLM
from specmix.validation import UsageError

MODEL = LMConfig(vocab_size=11, mixers=("spectral-gated", "attention"), n_layers=2, d_model=32, n_heads=4,
                 context=16)


def names_of(model, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_muon_takes_only_the_hidden_matrices():
    torch.manual_seed(0)
    model = SpecMixLM(MODEL)
    opt = make_optimizer(model, TrainConfig(optimizer="muon"))
    assert isinstance(opt, Optimizers)
    muon = names_of(model, opt.optimizers["muon"].param_groups[0]["params"])
    assert muon and all(model.get_parameter(n).dim() == 2 for n in muon)
    assert not [n for n in muon if n.startswith(("tok_emb", "pos_emb", "head")) or ".filter." in n]
    assert {"blocks.0.mixer.in_proj.weight", "blocks.1.mixer.qkv.weight", "blocks.0.mlp.fc.weight"} <= muon
    adamw = {n for g in opt.optimizers["adamw"].param_groups for n in names_of(model, g["params"])}
    assert muon.isdisjoint(adamw) and muon | adamw == {n for n, _ in model.named_parameters()}


def test_default_adamw_groups_are_the_ones_of_before_and_step_identically():
    """Two groups, matrices decayed and the rest (filters included) not: the construction
    every earlier run used, so default runs stay bit-identical."""
    torch.manual_seed(0)
    a, b = SpecMixLM(MODEL), SpecMixLM(MODEL)
    b.load_state_dict(a.state_dict())
    cfg = TrainConfig()
    new = make_optimizer(a, cfg)
    decay = [p for n, p in b.named_parameters() if p.dim() >= 2 and ".filter." not in n]
    rest = [p for n, p in b.named_parameters() if not (p.dim() >= 2 and ".filter." not in n)]
    old = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99), fused=True)
    assert [len(g["params"]) for g in new.param_groups] == [len(decay), len(rest)]
    x = torch.randint(0, 11, (2, 16))
    for model, opt in ((a, new), (b, old)):
        model(x, x)[1].backward()
        opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_filter_parameters_get_their_own_decay_and_lr_cap():
    model = SpecMixLM(MODEL)
    opt = make_optimizer(model, TrainConfig(filter_weight_decay=0.05, filter_lr=1e-4))
    filters = [g for g in opt.param_groups if g.get("name") == "filters"]
    assert len(filters) == 1 and filters[0]["weight_decay"] == 0.05 and filters[0]["lr_max"] == 1e-4
    assert all(".filter." in n for n in names_of(model, filters[0]["params"]))


def test_wsd_holds_the_peak_then_decays_linearly_over_the_cooldown():
    cfg = TrainConfig(steps=110, warmup=10, lr=1.0, min_lr_ratio=0.1, schedule="wsd", cooldown=0.4)
    lrs = [get_lr(s, cfg) for s in range(111)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert all(lr == 1.0 for lr in lrs[10:71])                 # progress <= 0.6
    assert lrs[90] == pytest.approx(1.0 - 0.9 * 0.5)            # half way down the cooldown
    assert lrs[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[70:], lrs[71:]))
    cosine = dataclasses.replace(cfg, schedule="cosine")
    assert get_lr(60, cosine) == pytest.approx(0.1 + 0.45)      # cosine: half way at the midpoint


def test_muon_momentum_warms_up():
    assert muon_momentum(0) == pytest.approx(0.85) and muon_momentum(MUON_WARMUP) == pytest.approx(0.95)
    assert muon_momentum(10 * MUON_WARMUP) == pytest.approx(0.95)


@pytest.mark.parametrize("bad, words", [(dict(cooldown=0.0), "--cooldown must be in (0, 1]"),
                                        (dict(filter_lr=-1.0), "--filter-lr must be >= 0.0")])
def test_bad_schedule_flags_are_refused(bad, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(").replace("]", r"\]")):
        TrainConfig(**bad)


def test_a_muon_wsd_run_trains_and_resumes_exactly(data, tmp_path):
    base = dict(data=data, steps=6, batch_size=4, eval_every=2, eval_batches=1, warmup=1, lr=3e-3, device="cpu",
                optimizer="muon", schedule="wsd", cooldown=0.5, filter_lr=1e-3)
    model = dataclasses.replace(MODEL, vocab_size=None)
    full = train(model, TrainConfig(out=str(tmp_path / "full"), **base), progress=False)
    train(model, TrainConfig(out=str(tmp_path / "cut"), stop_at=4, **base), progress=False)
    resumed = train(model, TrainConfig(out=str(tmp_path / "cut"), resume=True, **base), progress=False)
    assert [r["val_loss"] for r in resumed] == [r["val_loss"] for r in full]
    assert full[-1]["val_loss"] < full[0]["val_loss"]
