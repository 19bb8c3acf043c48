"""`specmix train-peer`: transformers' GPT-2 / Mamba / RWKV trained by specmix's loop, with its
checkpoints, exact resume and a top level that transformers loads as the peer itself."""
import json
import math

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")

from specmix.app.cli import main  # noqa: E402
from specmix.app.optim import make_optimizer  # noqa: E402
from specmix.app.peer_lm import PeerConfig, PeerLM  # noqa: E402
from specmix.app.train import TrainConfig  # noqa: E402
from specmix.validation import UsageError  # noqa: E402


def peer_argv(data, out, family, *extra):
    return ["train-peer", "--data", data, "--family", family, "--n-layers", "2", "--d-model", "16",
            "--n-heads", "2", "--context", "16", "--batch-size", "2", "--eval-every", "2",
            "--eval-batches", "1", "--device", "cpu", "--out", str(out), *extra]


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", ["gpt2", "mamba", "rwkv"])
def test_each_family_trains_and_its_loss_falls(data, tmp_path, family):
    out = tmp_path / family
    assert main(peer_argv(data, out, family, "--steps", "30", "--lr", "1e-2", "--eval-every", "30",
                          "--batch-size", "8")) == 0
    (row,) = metrics(out)
    vocab = len(json.loads((out / "config.json").read_text())["tokenizer"]["chars"])
    assert row["step"] == 30 and row["train_loss"] < math.log(vocab) - 0.3     # below the uniform guess


def test_resume_continues_the_same_run_exactly(data, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(peer_argv(data, whole, "gpt2", "--steps", "6", "--optimizer", "muon")) == 0
    assert main(peer_argv(data, split, "gpt2", "--steps", "6", "--optimizer", "muon", "--stop-at", "4")) == 0
    assert main(peer_argv(data, split, "gpt2", "--steps", "6", "--optimizer", "muon", "--resume")) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in rows]  # noqa: E731
    assert strip(metrics(split)) == strip(metrics(whole))


def test_the_folder_loads_as_the_transformers_model(data, tmp_path):
    out = tmp_path / "run"
    assert main(peer_argv(data, out, "gpt2", "--steps", "2")) == 0
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ours = PeerLM(PeerConfig(family="gpt2", vocab_size=model.config.vocab_size, n_layers=2, d_model=16,
                             n_heads=2, context=16))
    from safetensors.torch import load_model
    ckpt = sorted((out / "checkpoints").iterdir())[-1]
    load_model(ours, str(ckpt / "model.safetensors"))
    ids = tok("hear me speak", return_tensors="pt")["input_ids"]
    assert isinstance(model, transformers.GPT2LMHeadModel)
    torch.testing.assert_close(model(ids).logits, ours.eval()(ids)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family, hidden_per_layer", [("gpt2", 4), ("mamba", 4), ("rwkv", 7)])
def test_muon_gets_the_block_projections_only(family, hidden_per_layer):
    model = PeerLM(PeerConfig(family=family, vocab_size=20, n_layers=2, d_model=16, n_heads=2, context=16))
    opt = make_optimizer(model, TrainConfig(optimizer="muon"))
    muon = {id(p) for g in opt.optimizers["muon"].param_groups for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in muon}
    assert len(names) == 2 * hidden_per_layer
    assert all(p.dim() == 2 for n, p in model.named_parameters() if n in names)
    assert not any(word in n for n in names for word in ("wte", "wpe", "embeddings", "emb", "lm_head", "A_log"))


def test_scored_only_returns_the_scored_rows_with_the_same_loss():
    torch.manual_seed(0)
    model = PeerLM(PeerConfig(family="gpt2", vocab_size=20, n_layers=2, d_model=16, n_heads=2, context=16))
    x = torch.randint(0, 20, (2, 10))
    y = torch.full((2, 10), -1)
    y[:, 3], y[1, 7] = 5, 2
    logits, loss = model(x, y)
    rows, sparse_loss = model(x, y, scored_only=True)
    assert rows.shape == (3, 20)
    torch.testing.assert_close(sparse_loss, loss)


@pytest.mark.parametrize("kwargs, words", [
    (dict(family="mamba", dropout=0.1), "no dropout"),
    (dict(family="gpt2", d_model=30, n_heads=4), "divisible by --n-heads"),
    (dict(family="rwkv", n_layers=1), "--n-layers must be >= 2"),
    (dict(family="gpt2", dropout=1.0), "--dropout"),
])
def test_bad_peer_configs_are_refused(kwargs, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        PeerConfig(**kwargs)


def test_refusals_name_the_flag(data, tmp_path, one_line_error):
    run = tmp_path / "run"
    assert main(peer_argv(data, run, "gpt2", "--steps", "2")) == 0
    one_line_error(["sample", "--checkpoint", str(run)], "specmix train-peer")
    one_line_error(["train", "--data", data, "--out", str(run), "--resume", "--n-layers", "2", "--d-model", "16",
                    "--context", "16", "--batch-size", "2", "--eval-every", "2", "--steps", "4"], "another command")
    one_line_error(peer_argv(data, tmp_path / "x", "gpt2", "--fsdp"), "--fsdp")          # not offered


def test_bad_input_is_named():
    model = PeerLM(PeerConfig(family="gpt2", vocab_size=20, n_layers=2, d_model=16, n_heads=2, context=16))
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="context=16"):
        model(torch.zeros(2, 17, dtype=torch.long))
