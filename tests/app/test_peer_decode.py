"""bench-decode's transformers peers: their cached steps are the model's own logits, their
depth matches specmix's parameters, and the bench runs them beside a specmix LM."""
import pytest
import torch

pytest.importorskip("transformers", reason="the hf extra is not installed")

from specmix.app.bench.decode import DecodeBenchConfig, format_decode, run_decode_bench  # noqa: E402
from specmix.app.bench.peer_decode import PeerDecoder, matched_depth, matched_shape  # noqa: E402
from specmix.app.peer_lm import PeerConfig, PeerLM  # noqa: E402
from specmix.validation import UsageError  # noqa: E402


@pytest.mark.parametrize("kind, batch", [("hf-gpt2", 2), ("hf-mamba", 2), ("hf-rwkv", 1)])
def test_cached_steps_equal_the_full_forward(kind, batch):
    cfg = PeerConfig(family=kind.removeprefix("hf-"), vocab_size=65, d_model=16, n_layers=2, n_heads=2, context=24)
    model = PeerDecoder(cfg, device="cpu")
    idx = torch.randint(0, 65, (batch, 9), generator=torch.Generator().manual_seed(0))
    logits, states = model.prefill(idx[:, :6])
    stepped = [logits]
    for pos in range(6, 9):
        stepped.append(model.step(idx[:, pos], pos, states))
    with torch.no_grad():
        full = model.lm.net(input_ids=idx).logits                     # (B, 9, V)
    torch.testing.assert_close(torch.stack(stepped, 1), full[:, 5:], rtol=1e-4, atol=1e-4)
    assert sum(t.numel() for t in states[0].batch_tensors()) > 0


@pytest.mark.parametrize("family", ["gpt2", "mamba", "rwkv"])
def test_matched_depth_is_the_nearest_parameter_count(family):
    def params(n):
        cfg = PeerConfig(family=family, vocab_size=65, d_model=16, n_layers=n, n_heads=2, context=32)
        return sum(p.numel() for p in PeerLM(cfg).parameters())
    target = params(5) + 10
    depth = matched_depth(family, target, d_model=16, n_heads=2, context=32)
    assert depth == 5 and abs(params(depth) - target) < abs(params(depth + 1) - target)


@pytest.mark.parametrize("family", ["gpt2", "rwkv"])
def test_matched_shape_fits_the_mlp_width_when_no_depth_is_near(family):
    def params(n, d_ff=None):
        cfg = PeerConfig(family=family, vocab_size=65, d_model=16, n_layers=n, n_heads=2, context=32, d_ff=d_ff)
        return sum(p.numel() for p in PeerLM(cfg).parameters()) - (32 * 16 if family == "gpt2" else 0)
    target = params(4) + (params(5) - params(4)) * 4 // 10          # 40% of a layer above 4 layers
    depth, d_ff = matched_shape(family, target, d_model=16, n_heads=2, context=32)
    assert depth == 4 and d_ff > 64 and abs(params(depth, d_ff) / target - 1) < 0.01
    near = params(4) + 3
    assert matched_shape(family, near, d_model=16, n_heads=2, context=32) == (4, None)


def test_mamba_has_no_mlp_width():
    with pytest.raises(UsageError, match="--d-ff 64: transformers' mamba has no MLP"):
        PeerConfig(family="mamba", vocab_size=65, d_ff=64)


def test_bench_decode_times_a_peer_beside_specmix(tmp_path):
    cfg = DecodeBenchConfig(mixers=("spectral-gated", "hf-gpt2", "hf-mamba"), prompts=(16,), batch=(1, 2),
                            new_tokens=3,
                            d_model=16, n_layers=2, n_heads=2, filter="implicit", repeats=2, device="cpu",
                            out=str(tmp_path))
    report = run_decode_bench(cfg, progress=False)
    peer = [r for r in report["rows"] if r["mixers"].startswith("hf-")]
    assert len(peer) == 4 and all(r["tokens_per_s"] > 0 and r["state_mb_per_seq"] > 0 for r in peer)
    assert "hf-gpt2" in format_decode(report) and "layers)" in format_decode(report)


def test_a_peer_cannot_be_the_reference_kind():
    with pytest.raises(UsageError, match="first kind must be a specmix one"):
        DecodeBenchConfig(mixers=("hf-gpt2", "spectral-gated"))


def test_rwkv_decodes_one_sequence_at_a_time():
    """transformers' RWKV one-token step broadcasts (B, D) against (B, 1, D) at batch > 1; the
    bench refuses that rather than time a wrong computation (the test pins the upstream bug:
    if it is fixed, the refusal can go)."""
    with pytest.raises(UsageError, match="--batch 1"):
        DecodeBenchConfig(mixers=("spectral-gated", "hf-rwkv"), batch=(1, 2))
    model = PeerDecoder(PeerConfig(family="rwkv", vocab_size=65, d_model=16, n_layers=2, n_heads=2, context=24),
                        device="cpu")
    idx = torch.randint(0, 65, (2, 5), generator=torch.Generator().manual_seed(0))
    _, states = model.prefill(idx[:, :4])
    with torch.no_grad():
        full = model.lm.net(input_ids=idx).logits[:, -1]
    assert not torch.allclose(model.step(idx[:, 4], 4, states), full, atol=1e-3)


def test_bench_pairs_times_a_peer_training_step_beside_specmix(tmp_path):
    from specmix.app.bench.pairs import PairBenchConfig, format_pairs, measure_pair
    cfg = PairBenchConfig(backend="lm", op="spectral-gated", against="hf-mamba", bases=(32,), neighbours=(32,),
                          d_model=16, n_layers=2, filter="implicit", rounds=2, out=str(tmp_path))
    row = measure_pair(cfg, 32, 32)
    assert row["base_ms"] > 0 and row["neighbour_ms"] > 0
    assert abs(row["neighbour_params"] / row["base_params"] - 1) < 0.5      # one block of either size apart
    text = format_pairs({"config": vars(cfg) | {"bases": [32], "neighbours": [32]}, "env": {}, "rows": [row]})
    assert "hf-mamba 32 (" in text and "implicit filter" in text


def test_peer_versions_name_what_each_peer_runs_on():
    from importlib.metadata import version

    from specmix.app.bench.peer_decode import peer_versions
    assert peer_versions(("spectral-gated", "attention")) == {}
    assert peer_versions(("enc-spectral", "enc-fnet")) == {"transformers": version("transformers")}
    mamba = peer_versions(("spectral-gated", "hf-mamba"))
    assert mamba["transformers"] == version("transformers") and set(mamba) == {"transformers", "mambapy"}
