"""Smoke tests of `specmix bench` at tiny n (no timing is asserted)."""
import json

import pytest

from specmix.app.bench.sweep import BenchConfig, fit_slopes
from specmix.validation import UsageError
from specmix.app.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("backend,ops,mode", [
    ("numpy", "attention,spectral,spectral-circular", "forward"),
    ("torch", "sdpa,spectral,fft-floor,spectral-layer", "train"),
    ("lm", "attention,spectral-gated", "train"),
])
def test_bench_cli_writes_json_csv_png(tmp_path, capsys, backend, ops, mode):
    out = tmp_path / backend
    dtype = ["--dtype", "bfloat16"] if backend == "lm" else []      # lm: the autocast step
    rc = main(["bench", "--backend", backend, *dtype, "--ops", ops, "--lengths", "16,64", "--d-model", "8",
               "--n-heads", "2", "--repeats", "2", "--mode", mode, "--fit-range", "16,64",
               "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    assert {"env", "results", "slopes", "fit_range"} <= report.keys()
    rows = report["results"]
    assert {(r["op"], r["n"]) for r in rows} == {(o, n) for o in ops.split(",") for n in (16, 64)}
    for r in rows:
        assert {"op", "backend", "mode", "n", "d_model", "batch", "ms", "ms_min", "ms_max",
                "peak_mb"} <= r.keys()
        assert r["ms_min"] <= r["ms"] <= r["ms_max"] and r["mode"] == mode
    assert set(report["slopes"]) == set(ops.split(","))
    assert (out / "bench.csv").read_text().count("\n") == len(rows) + 1
    assert (out / "bench_scaling_loglog.png").stat().st_size > 1000
    assert "Fitted log-log slopes" in capsys.readouterr().out


def test_fit_slopes_recovers_exponents():
    rows = [{"op": "a", "n": n, "ms": 3.0 * n**2} for n in (64, 128, 256, 512)]
    rows += [{"op": "b", "n": n, "ms": 0.5 * n} for n in (64, 128, 256, 512)]
    slopes = fit_slopes(rows, (64, 512))
    assert abs(slopes["a"] - 2) < 1e-9 and abs(slopes["b"] - 1) < 1e-9
    assert fit_slopes(rows, (64, 100)) == {}          # one point: no fit


@pytest.mark.parametrize("kwargs,words", [
    (dict(ops=("spectral", "bogus")), "--ops: unknown"),
    (dict(lengths=(0, 4)), "expected integers >= 1"),
    (dict(fit_range=(100, 10)), "--fit-range"),
    (dict(n_heads=3), "--n-heads 3 must divide"),
    (dict(dtype="int8"), "--dtype"),
    (dict(backend="lm", ops=("fourier",)), "unknown kind 'fourier'"),
    (dict(backend="numpy", device="cuda"), "numpy backend runs on the CPU only"),
    (dict(backend="torch", dtype="bfloat16"), "only the lm backend runs under autocast"),
])
def test_bench_bad_config(kwargs, words):
    with pytest.raises(UsageError, match=words):
        BenchConfig(**kwargs)


@pytest.mark.parametrize("argv,words", [
    (["bench", "--ops", "nope", "--out", "/nonexistent/x"], "--ops: unknown"),
    (["bench", "--lengths", "10,x"], "argument --lengths: expected a comma list of int"),
    (["bench", "--mode", "sideways"], "argument --mode: invalid choice"),
])
def test_bench_cli_bad_flag_is_one_line(one_line_error, argv, words):
    one_line_error(argv, words)


def test_resolved_fills_the_backend_defaults_without_mutating():
    cfg = BenchConfig(backend="lm", lengths=(64, 32, 64))
    got = cfg.resolved()
    assert cfg.ops is None and cfg.d_model is None                  # the original is unchanged
    assert got.ops == ("attention", "local:256", "spectral", "spectral-gated")
    assert got.lengths == (32, 64) and got.d_model == 128 and got.fit_range == (4096, 65536)


def test_predicted_time_uses_well_separated_lengths():
    from specmix.app.bench.sweep import _predict_ms
    rows = [{"op": "a", "n": 1024, "ms": 1.0}, {"op": "a", "n": 4096, "ms": 16.0},
            {"op": "a", "n": 4099, "ms": 16.1}]
    assert _predict_ms(rows, "a", 16384) == pytest.approx(16.1 * (16384 / 4099) ** 2, rel=0.01)
    assert _predict_ms(rows[:1], "a", 4096) == 0.0
    steep = [{"op": "b", "n": 100, "ms": 1.0}, {"op": "b", "n": 200, "ms": 1000.0}]
    assert _predict_ms(steep, "b", 400) == pytest.approx(1000.0 * 8)   # slope clamped to 3


def test_bench_pairs_times_both_lengths_alternately(tmp_path, capsys, one_line_error):
    out = tmp_path / "pairs"
    assert main(["bench-pairs", "--bases", "32", "--neighbours", "35", "--d-model", "8",
                 "--rounds", "4", "--out", str(out)]) == 0
    [row] = json.loads((out / "pairs.json").read_text())["rows"]
    assert (row["base"], row["neighbour"], row["rounds"]) == (32, 35, 4)
    assert row["base_ms"] > 0 and row["neighbour_ms"] > 0
    assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
    assert "B / A" in capsys.readouterr().out
    assert main(["bench-pairs", "--op", "fft-floor", "--against", "spectral", "--bases", "32",
                 "--neighbours", "32", "--mode", "forward", "--d-model", "8", "--rounds", "2",
                 "--out", str(out)]) == 0
    [row] = json.loads((out / "pairs.json").read_text())["rows"]
    assert (row["base_op"], row["neighbour_op"]) == ("fft-floor", "spectral")
    assert "fft-floor 32 | spectral 32" in capsys.readouterr().out
    assert main(["bench-pairs", "--bases", "32", "--neighbours", "32", "--d-model", "8", "--rounds", "2",
                 "--calls", "3", "--out", str(out)]) == 0
    assert "2 alternating rounds of 3 calls per side" in capsys.readouterr().out
    one_line_error(["bench-pairs", "--calls", "0"], "--calls")
    assert main(["bench-pairs", "--backend", "lm", "--op", "spectral-gated", "--against", "attention",
                 "--bases", "16", "--neighbours", "16", "--d-model", "8", "--n-layers", "1",
                 "--rounds", "2", "--out", str(out)]) == 0
    [row] = json.loads((out / "pairs.json").read_text())["rows"]
    assert (row["base_op"], row["neighbour_op"]) == ("spectral-gated", "attention")
    assert "training step of 1-layer LMs, d_model 8" in capsys.readouterr().out
    assert main(["bench-pairs", "--backend", "lm", "--op", "gated-projections", "--against", "attention",
                 "--bases", "16", "--neighbours", "16", "--d-model", "8", "--n-layers", "1",
                 "--rounds", "2", "--out", str(out)]) == 0
    assert "gated-projections 16 | attention 16" in capsys.readouterr().out
    one_line_error(["bench-pairs", "--backend", "lm", "--op", "sdpa"], "--op")
    one_line_error(["bench-pairs", "--dtype", "bfloat16"], "--dtype")
    one_line_error(["bench-pairs", "--neighbours", "35"], "one length per base")
    one_line_error(["bench-pairs", "--op", "naive"], "--op")
    one_line_error(["bench-pairs", "--against", "naive"], "--against")


def test_gated_projections_keep_the_mixers_projections_and_mix_nothing():
    import torch

    from specmix.app.bench.ceiling import with_gated_projections
    from specmix.app.bench.ops import untrained_lm
    model = untrained_lm("spectral-gated", d_model=8, n_layers=2, n_heads=2, context=16)
    projections = [(b.mixer.in_proj, b.mixer.out_proj) for b in model.blocks]
    with_gated_projections(model).eval()
    assert [(b.mixer.in_proj, b.mixer.out_proj) for b in model.blocks] == projections
    assert not [name for name, _ in model.named_parameters() if "filter" in name or "short_conv" in name]
    idx = torch.randint(0, 65, (1, 16), generator=torch.Generator().manual_seed(0))
    other = idx.clone()
    other[0, 5] = (idx[0, 5] + 1) % 65
    with torch.no_grad():
        changed = (model(idx)[0] - model(other)[0]).abs().amax(-1)[0]   # (N,)
    assert changed[5] > 0 and changed[torch.arange(16) != 5].max() == 0   # position-wise only
