"""The bidirectional side by side: swapped BERT, BERT and FNet masked-LM encoders, BERT's
masking, the equal-time masked-character bench and the encoder ops of bench-pairs."""
import json

import pytest
import torch

pytest.importorskip("transformers", reason="the hf extra is not installed")

from specmix.app.bench.encoders import (ENCODER_KINDS, IGNORE, MLMBenchConfig, build_encoder,  # noqa: E402
                                        format_mlm, mask_characters, run_mlm_bench)
from specmix.validation import UsageError  # noqa: E402


@pytest.mark.parametrize("kind", ENCODER_KINDS)
def test_every_encoder_sees_both_directions(kind):
    model = build_encoder(kind, vocab=12, d_model=16, n_layers=2, n_heads=2, context=20).eval()
    idx = torch.randint(0, 12, (2, 20), generator=torch.Generator().manual_seed(0))
    later = idx.clone()
    later[:, 15:] = (later[:, 15:] + 1) % 12
    with torch.no_grad():
        a, b = model(input_ids=idx).logits, model(input_ids=later).logits        # (B, N, V)
    assert a.shape == (2, 20, 12)
    assert not torch.allclose(a[:, :10], b[:, :10])          # a change at the end reaches the start
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("HFSpectralAttention" in kinds) == (kind == "enc-spectral")
    assert ("BertSdpaSelfAttention" in kinds or "BertSelfAttention" in kinds) == (kind == "enc-bert")


def test_masking_follows_bert():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (64, 256), generator=gen)
    inputs, labels = mask_characters(tokens, 50, 50, gen)
    chosen = labels != IGNORE
    assert 0.13 < chosen.float().mean() < 0.17 and chosen.any(1).all()
    assert torch.equal(labels[chosen], tokens[chosen]) and torch.equal(inputs[~chosen], tokens[~chosen])
    masked = (inputs[chosen] == 50).float().mean()
    kept = (inputs[chosen] == tokens[chosen]).float().mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.14         # 10% kept + the random draws that hit themselves


def test_bench_mlm_trains_every_encoder_for_its_budget(data, tmp_path):
    cfg = MLMBenchConfig(data=data, seconds=1.0, d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4,
                         eval_every=5, eval_batches=2, out=str(tmp_path))
    report = run_mlm_bench(cfg, progress=False)
    assert [r["kind"] for r in report["runs"]] == list(ENCODER_KINDS)
    assert all(r["steps"] >= 1 and r["curve"] and r["best_val"] > 0 for r in report["runs"])
    assert json.loads((tmp_path / "mlm.json").read_text())["runs"][0]["kind"] == "enc-spectral"
    assert "enc-fnet" in format_mlm(report)


def test_bad_mlm_flags_are_refused():
    with pytest.raises(UsageError, match="--kinds"):
        MLMBenchConfig(kinds=("enc-gpt",))


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_bench_pairs_times_two_encoders(tmp_path, mode):
    from specmix.app.bench.pairs import PairBenchConfig, format_pairs, measure_pair
    cfg = PairBenchConfig(backend="lm", op="enc-spectral", against="enc-fnet", bases=(32,), neighbours=(32,),
                          d_model=16, n_layers=1, rounds=2, mode=mode, out=str(tmp_path))
    row = measure_pair(cfg, 32, 32)
    assert row["base_ms"] > 0 and row["neighbour_params"] > 0
    text = format_pairs({"config": vars(cfg) | {"bases": [32], "neighbours": [32]}, "env": {}, "rows": [row]})
    assert "masked-LM encoders" in text
