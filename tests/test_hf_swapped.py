"""Swapped Hugging Face models survive save and load: load_swapped, the Auto classes with
trust_remote_code after save_swapped (also in a fresh process), the recorded swap."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

transformers = pytest.importorskip("transformers")

from specmix import swap_attention  # noqa: E402
from specmix.hf import load_swapped, save_swapped  # noqa: E402
from specmix.hf_attention import HFSpectralAttention  # noqa: E402

from test_hf import bert, gpt2, llama  # noqa: E402

FAMILIES = {"gpt2": (gpt2, "AutoModelForCausalLM"), "llama": (llama, "AutoModelForCausalLM"),
            "bert": (bert, "AutoModel")}


def swapped(family):
    torch.manual_seed(0)
    model = FAMILIES[family][0]()
    swap_attention(model, max_len=96, gated=True)
    return model.eval()


def outputs(model, ids):
    out = model(ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_swapped_model_comes_back_exactly(tmp_path, family):
    model = swapped(family)
    assert model.config.specmix_swap["gated"] is True and model.config.specmix_swap["max_len"] == 96
    save_swapped(model, tmp_path)
    ids = torch.randint(1, 50, (2, 11))
    for restored in (load_swapped(str(tmp_path)),
                     getattr(transformers, FAMILIES[family][1]).from_pretrained(tmp_path, trust_remote_code=True)):
        restored.eval()
        assert sum(isinstance(m, HFSpectralAttention) for m in restored.modules()) == 2
        assert torch.equal(outputs(restored, ids), outputs(model, ids))


def test_load_swapped_reads_a_plain_save_pretrained_folder(tmp_path):
    model = swapped("gpt2")
    model.save_pretrained(tmp_path)                     # no shim: the recorded swap is enough
    ids = torch.randint(1, 50, (1, 9))
    assert torch.equal(load_swapped(str(tmp_path)).eval()(ids).logits, model(ids).logits)


def test_a_folder_without_a_swap_record_is_refused(tmp_path):
    gpt2().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="was not saved after specmix.swap_attention"):
        load_swapped(str(tmp_path))


FRESH = textwrap.dedent("""
    import sys, torch, transformers
    auto = getattr(transformers, sys.argv[4])
    model = auto.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    out = model(torch.load(sys.argv[2]))
    torch.save((out.logits if hasattr(out, "logits") else out.last_hidden_state).detach(), sys.argv[3])
""")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_swapped_model_opens_in_a_fresh_process(tmp_path, family):
    """A process that never imports specmix itself: the saved shim imports the installed one."""
    model = swapped(family)
    save_swapped(model, tmp_path / "m")
    ids = torch.randint(1, 50, (2, 11))
    torch.save(ids, tmp_path / "ids.pt")
    done = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "m"), str(tmp_path / "ids.pt"),
                           str(tmp_path / "out.pt"), FAMILIES[family][1]], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), outputs(model, ids))


@pytest.mark.parametrize("implementation", ["static", "sliding_window"])
def test_a_swapped_model_refuses_preallocated_caches(implementation):
    model = swapped("gpt2")
    with pytest.raises(TypeError, match="static or sliding-window cache"):
        model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False,
                       cache_implementation=implementation)


def test_the_lora_recipe_trains_the_new_spectral_modules_in_full():
    """docs/huggingface.md: LoRA on the pretrained MLPs, the swapped modules in modules_to_save."""
    peft = pytest.importorskip("peft")
    from specmix.hf import spectral_module_names
    model = swapped("gpt2").train()
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["c_fc"],
                                                      modules_to_save=spectral_module_names(model)))
    trainable = {n: p for n, p in lora.named_parameters() if p.requires_grad}
    assert any("filter" in n for n in trainable) and any("short_conv" in n for n in trainable)
    assert any("lora_" in n for n in trainable) and not any("wte" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    opt = torch.optim.SGD(trainable.values(), lr=0.1)
    ids = torch.randint(1, 50, (2, 16))
    for _ in range(2):
        lora(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in lora.named_parameters() if not torch.equal(p, before[n])}
    assert any("filter" in n for n in changed) and any("lora_B" in n for n in changed)
    assert not any("wte" in n or "ln_f" in n for n in changed)


def test_an_offloaded_dynamic_cache_generates_as_the_default_one():
    model = swapped("gpt2")
    ids = torch.randint(1, 50, (1, 8), generator=torch.Generator().manual_seed(1))
    plain = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(model.generate(ids, max_new_tokens=8, do_sample=False, cache_implementation="offloaded"), plain)
    assert torch.equal(model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False), plain)
