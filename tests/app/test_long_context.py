"""Long-context tooling: task training, length evaluation, the lm sweep and decode speed."""
import json

import numpy as np
import torch

import pytest

from specmix.app.cli import main


def test_recall_task_trains_and_reports_answer_accuracy(tmp_path, capsys, read_metrics, one_line_error):
    out = tmp_path / "recall"
    argv = ["train", "--task", "recall", "--task-vocab", "8", "--seq-len", "24",
            "--mixers", "spectral-gated", "--head-dim", "4", "--n-layers", "2", "--d-model", "32",
            "--batch-size", "32", "--steps", "300", "--eval-every", "100", "--eval-batches", "4",
            "--lr", "1e-2", "--warmup", "20", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [100, 200, 300]
    for r in rows:
        assert 0 <= r["val_answer_acc"] <= 1 and 0 <= r["val_scored_acc"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["context"] == 24 and config["task"]["name"] == "recall"
    # 4 keys, 4 values: chance is 1/4; a 2-layer gated model learns to look the key up
    assert rows[-1]["val_answer_acc"] > 0.6, rows
    assert "val answer acc" in capsys.readouterr().out
    one_line_error(["sample", "--checkpoint", str(out), "--device", "cpu"], "synthetic task")


def test_task_flags_are_checked(tmp_path, capsys, one_line_error):
    base = ["train", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "x")]
    one_line_error(base + ["--task", "recall", "--task-vocab", "7"], "--task-vocab")
    one_line_error(base + ["--task", "recall", "--seq-len", "-3"], "--context must be >= 1, got -3")
    one_line_error(base + ["--task", "copy", "--context", "8"], "--context 8 is too short")
    one_line_error(base + ["--head-dim", "3"], "--head-dim 3 must divide")


def _train_lm(data, out, filt, mixers="spectral-gated", context=32):
    argv = ["train", "--data", data, "--mixers", mixers, "--filter", filt, "--n-layers", "2",
            "--d-model", "16", "--n-heads", "2", "--context", str(context), "--batch-size", "4",
            "--steps", "4", "--eval-every", "4", "--eval-batches", "1", "--device", "cpu",
            "--out", str(out)]
    assert main(argv) == 0


def test_eval_lengths_beyond_the_trained_context(data, tmp_path, capsys):
    out = tmp_path / "implicit"
    _train_lm(data, out, "implicit")
    capsys.readouterr()
    report_path = tmp_path / "lengths.json"
    assert main(["eval-lengths", "--checkpoint", str(out), "--contexts", "16,32,128",
                 "--tokens", "256", "--device", "cpu", "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    rows = {r["context"]: r for r in report["rows"]}
    assert report["trained_context"] == 32 and set(rows) == {16, 32, 128}
    assert rows[16]["windows"] == 16 and rows[128]["windows"] == 2
    assert rows[32]["loss_beyond"] is None and rows[128]["loss_beyond"] is not None
    for r in rows.values():
        assert 0 < r["loss"] < 10
    assert "positions >= 32" in capsys.readouterr().out


def test_eval_lengths_reuses_the_trained_weights(data, tmp_path):
    """At the trained context the extended model computes what the trained one does."""
    import torch

    from specmix.app.checkpoint import load_model
    out = tmp_path / "implicit"
    _train_lm(data, out, "implicit")
    short, _ = load_model(str(out))
    long, _ = load_model(str(out), context=256)
    assert long.config.context == 256
    idx = torch.randint(0, short.config.vocab_size, (2, 32))
    with torch.no_grad():
        assert torch.allclose(short(idx)[0], long(idx)[0], atol=1e-5)


@pytest.mark.parametrize("filt,mixers,words", [
    ("frequency", "spectral", "frequency filter has taps for lags < max_len=32 only"),
    ("implicit", "spectral,attention", "learned position embeddings"),
])
def test_eval_lengths_refuses_models_tied_to_their_length(data, tmp_path, capsys, filt, mixers, words, one_line_error):
    out = tmp_path / "m"
    _train_lm(data, out, filt, mixers)
    capsys.readouterr()
    one_line_error(["eval-lengths", "--checkpoint", str(out), "--contexts", "32,64",
                            "--device", "cpu"], words)
    # at the trained context or below it works
    assert main(["eval-lengths", "--checkpoint", str(out), "--contexts", "16,32", "--tokens", "64",
                 "--device", "cpu"]) == 0


@pytest.mark.slow
def test_lm_bench_sweeps_whole_models(tmp_path, capsys):
    out = tmp_path / "lm"
    assert main(["bench", "--backend", "lm", "--lengths", "32,64", "--d-model", "16", "--n-heads", "2",
                 "--n-layers", "2", "--ops", "attention,local:8,spectral,spectral-gated", "--repeats", "2",
                 "--mode", "train",
                 "--fit-range", "32,64", "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert {(r["op"], r["n"]) for r in report["results"]} == {
        (op, n) for op in ("attention", "local:8", "spectral", "spectral-gated") for n in (32, 64)}
    text = capsys.readouterr().out
    assert "attention / spectral-gated" in text and "spectral tok/s" in text


def test_bench_decode_writes_rows(tmp_path, capsys, one_line_error):
    out = tmp_path / "dec"
    assert main(["bench-decode", "--prompts", "16,64", "--new-tokens", "8", "--d-model", "16",
                 "--n-layers", "2", "--n-heads", "2", "--repeats", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    report = json.loads((out / "decode.json").read_text())
    rows = report["rows"]
    assert {(r["mixers"], r["prompt"]) for r in rows} == {
        (k, p) for k in ("spectral-gated", "attention") for p in (16, 64)}
    assert all(r["tokens_per_s"] > 0 and r["prefill_ms"] > 0 for r in rows)
    assert set(report["ratios"]) == {"16", "64"} and all(
        set(r) == {"attention"} and r["attention"] > 0 for r in report["ratios"].values())
    text = capsys.readouterr().out
    assert "spectral-gated tok/s" in text and "spectral-gated speed-up over attention" in text
    one_line_error(["bench-decode", "--prompts", "0"], "--prompts")


def test_bench_decode_batches_count_every_sequence(tmp_path, capsys):
    out = tmp_path / "dec"
    assert main(["bench-decode", "--prompts", "16", "--batch", "1,3", "--new-tokens", "4", "--d-model", "16",
                 "--n-layers", "1", "--n-heads", "2", "--repeats", "2", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "decode.json").read_text())
    by = {(r["mixers"], r["batch"]): r for r in report["rows"]}
    assert set(by) == {(k, b) for k in ("spectral-gated", "attention") for b in (1, 3)}
    assert set(report["ratios"]) == {"16", "16x3"}
    for kind in ("spectral-gated", "attention"):          # the state per sequence does not depend on B
        assert by[(kind, 1)]["state_mb_per_seq"] == by[(kind, 3)]["state_mb_per_seq"] > 0
        assert by[(kind, 3)]["tokens_per_s"] == pytest.approx(
            3 * 4 / (float(np.median(by[(kind, 3)]["steps_ms_per_repeat"])) / 1e3))
    assert "| batch |" in capsys.readouterr().out.replace("prompt | batch", "| batch")


def test_state_bytes_count_only_tensors_with_a_batch_axis():
    from specmix.app.bench.decode import state_bytes_per_sequence
    from specmix.app.bench.ops import untrained_lm
    model = untrained_lm("attention", d_model=16, n_layers=2, n_heads=2, context=40, device="cpu").eval()
    _, states = model.prefill(torch.randint(0, 10, (4, 8)))
    kv = sum(t.numel() * t.element_size() for s in states for t in (s.keys, s.values)) // 4
    assert state_bytes_per_sequence(states, 4) == kv


def test_compare_on_a_task_reports_answer_accuracy(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--task", "recall", "--task-vocab", "8", "--seq-len", "16",
                 "--mixers", "spectral-gated", "attention", "--n-layers", "1", "--d-model", "16",
                 "--n-heads", "2", "--batch-size", "4", "--steps", "3", "--eval-every", "3",
                 "--eval-batches", "1", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    for v in report["variants"]:
        assert 0 <= v["final_answer_acc"] <= 1 and v["curve"][-1]["step"] == 3
    assert "final answer acc" in capsys.readouterr().out
    assert (out / "compare_loss.png").exists()


def test_time_limit_ends_the_run_with_an_evaluation(tmp_path, read_metrics):
    out = tmp_path / "t"
    assert main(["train", "--task", "recall", "--task-vocab", "8", "--seq-len", "16",
                 "--n-layers", "1", "--d-model", "16", "--batch-size", "4", "--steps", "1000",
                 "--eval-every", "500", "--eval-batches", "1", "--time-limit", "1e-9",
                 "--device", "cpu", "--out", str(out)]) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1]


def test_mqar_trains_reports_scored_accuracy_and_stops_at_a_target(tmp_path, read_metrics):
    out = tmp_path / "mqar"
    argv = ["train", "--task", "mqar", "--task-vocab", "32", "--context", "32", "--kv-pairs", "2",
            "--mixers", "spectral-gated", "--head-dim", "4", "--n-layers", "2", "--d-model", "32",
            "--mlp-ratio", "0", "--batch-size", "16", "--steps", "400", "--eval-every", "50",
            "--eval-batches", "2", "--lr", "1e-2", "--warmup", "20", "--target-acc", "0.0",
            "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [50]                        # target 0 is reached at once
    assert 0 <= rows[0]["val_scored_acc"] <= 1 and "val_answer_acc" not in rows[0]
