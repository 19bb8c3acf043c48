"""The device subset: fp32 and bf16 twins, causality and exact cached decoding on the device
named by ``SPECMIX_TEST_DEVICE`` (``cpu`` by default; ``benchmarks/gpu.sh`` sets ``cuda``).
On the CPU these run in every ``make test``; on a GPU machine they are the CUDA check."""
import os

import pytest
import torch

from helpers import TOL, assert_causal, assert_close, tiny_lm
from specmix.functional import fft_conv, fft_conv_ref
from specmix.model import LMConfig, SpecMixLM

DEVICE = os.environ.get("SPECMIX_TEST_DEVICE", "cpu")
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("SPECMIX_TEST_DEVICE=cuda but no CUDA device", allow_module_level=True)
pytestmark = pytest.mark.cuda if DEVICE == "cuda" else []
KINDS = ["spectral", "spectral-gated", "attention", "local:8"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fft_conv_equals_its_direct_twin_on_the_device(dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 300, 16, generator=gen).to(DEVICE).requires_grad_()
    k = (torch.randn(16, 300, generator=gen) / 300 ** 0.5).to(DEVICE).requires_grad_()
    with torch.autocast(DEVICE, dtype=dtype, enabled=dtype != torch.float32):
        y = fft_conv(x, k)
    ref = fft_conv_ref(x.double(), k.double())
    assert y.dtype == torch.float32 and y.device.type == DEVICE    # FFTs stay fp32 under autocast
    assert_close(y, ref.float(), tol=TOL[torch.float32] * 10, what=f"{dtype} output")
    grads = torch.autograd.grad(y, (x, k), torch.ones_like(y))
    ref_grads = torch.autograd.grad(ref, (x, k), torch.ones_like(ref))
    for g, r in zip(grads, ref_grads):
        assert_close(g, r.float(), tol=TOL[torch.float32] * 10, what=f"{dtype} gradient")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_every_mixer_kind_is_causal_on_the_device(kind, dtype):
    model = tiny_lm(kind).to(DEVICE)
    emb = torch.randn(2, 40, 32, generator=torch.Generator().manual_seed(1)).to(DEVICE)

    def hidden(x):
        with torch.no_grad(), torch.autocast(DEVICE, dtype=dtype, enabled=dtype != torch.float32):
            for block in model.blocks:
                x = block(x)
        return x.float()

    assert_causal(lambda x: hidden(x.to(DEVICE)).cpu(), emb.cpu(), atol=1e-5 if dtype == torch.float32 else 1e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_decoding_equals_the_full_forward_on_the_device(kind):
    cfg = LMConfig(vocab_size=11, d_model=32, n_layers=2, n_heads=4, context=64, mixers=(kind,))
    torch.manual_seed(0)
    model = SpecMixLM(cfg).to(DEVICE).eval()
    idx = torch.randint(0, 11, (2, 20), generator=torch.Generator().manual_seed(2)).to(DEVICE)
    out, logits = model.decode(idx, 30, lambda lg: lg.argmax(-1))
    with torch.no_grad():
        full = model(out[:, :-1])[0][:, idx.shape[1] - 1:]              # (B, new, V)
    assert_close(logits, full, tol=1e-4, what=f"{kind} cached logits")
