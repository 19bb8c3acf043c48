"""Export with a dynamic sequence length: ``torch.export`` programs and ONNX files (run by
onnxruntime) of mixers, a Block and the LM, at lengths other than the traced example's,
equal to eager mode."""
import numpy as np
import pytest
import torch

from helpers import assert_close
from specmix import Block, LMConfig, SpecMixLM, SpectralMixer
from specmix.export import export_onnx, export_program

MAX_LEN = 96
RUN_AT = ((1, 1), (3, 17), (2, 96))          # (B, N): none is the example's (2, 64)
MIXERS = [dict(filter=f, causal=c, gated=g) for f in ("frequency", "implicit")
          for c in (True, False) for g in (False, True)]


def _name(kw):
    return f"{kw['filter']}-{'causal' if kw['causal'] else 'bidir'}-{'gated' if kw['gated'] else 'plain'}"


def modules():
    torch.manual_seed(0)
    out = {_name(kw): SpectralMixer(16, MAX_LEN, **kw) for kw in MIXERS}
    out["block"] = Block(16, SpectralMixer(16, MAX_LEN, gated=True, filter="implicit"))
    out["lm"] = SpecMixLM(LMConfig(vocab_size=11, d_model=16, n_layers=2, context=MAX_LEN,
                                   mixers=("spectral-gated", "spectral"), filter="frequency"))
    return out


def inputs(name, b, n):
    return torch.randint(0, 11, (b, n)) if name == "lm" else torch.randn(b, n, 16)


def eager(module, x):
    with torch.no_grad():
        y = module.eval()(x)
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("name", [_name(kw) for kw in MIXERS] + ["block", "lm"])
def test_an_exported_program_runs_at_every_length(name):
    module = modules()[name]
    program = export_program(module, max_len=MAX_LEN).module()
    for b, n in RUN_AT:
        x = inputs(name, b, n)
        assert_close(program(x), eager(module, x), what=f"{name} (B, N)=({b}, {n})")


ONNX_CASES = ["frequency-causal-gated", "implicit-causal-plain", "frequency-bidir-plain", "implicit-bidir-gated",
              "block", "lm"]


@pytest.mark.parametrize("name", ONNX_CASES)
def test_onnx_runs_in_onnxruntime_at_three_lengths(tmp_path, name):
    ort = pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    pytest.importorskip("onnxscript", reason="the export extra is not installed")
    module = modules()[name]
    path = export_onnx(module, str(tmp_path / f"{name}.onnx"), max_len=MAX_LEN)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for b, n in RUN_AT:
        x = inputs(name, b, n)
        (out,) = session.run(None, {"input": x.numpy()})
        # onnxruntime's DFT at lengths that are not powers of two rounds more than MKL's
        assert_close(torch.from_numpy(np.asarray(out)), eager(module, x), tol=1e-4,
                     what=f"{name} (B, N)=({b}, {n})")


def test_export_refuses_an_example_longer_than_max_len():
    with pytest.raises(ValueError, match="example_len"):
        export_program(SpectralMixer(16, MAX_LEN), max_len=MAX_LEN, example_len=MAX_LEN + 1)


def test_a_frequency_filter_program_refuses_lengths_past_its_max_len():
    """The program was checked for N <= max_len (the filter has no longer taps)."""
    program = export_program(SpectralMixer(16, MAX_LEN), max_len=MAX_LEN).module()
    with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[1\] <= 96"):
        program(torch.randn(1, MAX_LEN + 1, 16))
