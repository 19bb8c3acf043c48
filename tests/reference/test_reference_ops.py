"""Hand-written NumPy gradients vs float64 finite differences and vs torch autograd."""
import numpy as np
import pytest
import torch

from specmix.functional import fft_conv_ref
from specmix.reference import model, ops
from specmix.reference.gradcheck import max_rel_error, numerical_grad

RNG = np.random.default_rng(0)
TOL = 1e-6


def check(forward, backward, inputs: dict, grad_names):
    """Compare backward's grads with central differences of sum(out * w)."""
    out, cache = forward(**inputs)
    w = RNG.standard_normal(np.shape(out))
    grads = backward(w, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for name, g in zip(grad_names, grads):
        if name is None:
            continue
        num = numerical_grad(lambda: float((forward(**inputs)[0] * w).sum()), inputs[name])
        err = max_rel_error(g, num)
        assert err < TOL, f"{forward.__name__} d{name}: rel error {err:.2e}"


def test_linear_and_mlp_and_gelu():
    x = RNG.standard_normal((2, 3, 4))
    check(ops.linear_forward, ops.linear_backward,
          dict(x=x, w=RNG.standard_normal((4, 5)), b=RNG.standard_normal(5)), ["x", "w", "b"])
    check(ops.gelu_forward, ops.gelu_backward, dict(x=x), ["x"])
    check(ops.mlp_forward, ops.mlp_backward,
          dict(x=x, w1=RNG.standard_normal((4, 6)), b1=RNG.standard_normal(6),
               w2=RNG.standard_normal((6, 4)), b2=RNG.standard_normal(4)),
          ["x", "w1", "b1", "w2", "b2"])


def test_layernorm_add_embedding():
    x = RNG.standard_normal((2, 3, 5))
    check(ops.layernorm_forward, ops.layernorm_backward,
          dict(x=x, gamma=RNG.standard_normal(5), beta=RNG.standard_normal(5)), ["x", "gamma", "beta"])
    check(ops.add_forward, ops.add_backward, dict(a=x, b=RNG.standard_normal(x.shape)), ["a", "b"])
    idx = np.array([[0, 2, 2], [1, 0, 2]])
    out, cache = ops.embedding_forward(idx, RNG.standard_normal((4, 3)))
    w = RNG.standard_normal(out.shape)
    table = RNG.standard_normal((4, 3))
    num = numerical_grad(lambda: float((ops.embedding_forward(idx, table)[0] * w).sum()), table)
    assert max_rel_error(ops.embedding_backward(w, cache), num) < TOL


@pytest.mark.parametrize("seq_len,grid", [(1, 1), (5, 8), (7, 7), (8, 8), (3, 9)])
def test_spectral_gradients(seq_len, grid):
    resp = RNG.standard_normal((3, grid // 2 + 1, 2))
    check(ops.spectral_forward, ops.spectral_backward,
          dict(x=RNG.standard_normal((2, seq_len, 3)), response=resp, grid=grid),
          ["x", "response"])


def test_cross_entropy():
    logits = RNG.standard_normal((2, 3, 5))
    targets = RNG.integers(0, 5, (2, 3))
    loss, cache = ops.cross_entropy_forward(logits, targets)
    num = numerical_grad(lambda: ops.cross_entropy_forward(logits, targets)[0], logits)
    assert max_rel_error(ops.cross_entropy_backward(1.0, cache), num) < TOL


@pytest.mark.parametrize("mixing", [True, False])
def test_whole_model_gradients(mixing):
    cfg = model.RefModelConfig(vocab_size=5, d_model=4, context=6, n_layers=2, mlp_ratio=2,
                               mixing=mixing)
    params = model.init_params(cfg, np.random.default_rng(1))
    idx = RNG.integers(0, 5, (2, 6))
    tgt = RNG.integers(0, 5, (2, 6))
    _, caches = model.forward(params, idx, tgt, cfg)
    grads = model.backward(params, caches, cfg)
    assert grads.keys() == params.keys()
    for name, p in params.items():
        num = numerical_grad(lambda: model.forward(params, idx, tgt, cfg)[0], p)
        err = max_rel_error(grads[name], num)
        assert err < TOL, f"d{name}: rel error {err:.2e}"


# ----------------------------------------------------------------------------- torch as oracle
def _t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def test_spectral_matches_torch_direct_convolution():
    x, resp = RNG.standard_normal((2, 7, 3)), RNG.standard_normal((3, 5, 2))   # grid 8
    y, cache = ops.spectral_forward(x, resp, 8)
    w = RNG.standard_normal(y.shape)
    dx, dresp = ops.spectral_backward(w, cache)
    xt, rt = _t(x), _t(resp)
    k = torch.fft.irfft(torch.view_as_complex(rt), n=8)[:, :7]                   # (D, N)
    yt = fft_conv_ref(xt, k)
    (yt * torch.tensor(w)).sum().backward()
    assert np.allclose(y, yt.detach().numpy(), atol=1e-12)
    assert np.allclose(dx, xt.grad.numpy(), atol=1e-12)
    assert np.allclose(dresp, rt.grad.numpy(), atol=1e-12)


def test_dense_ops_match_torch():
    x, g, b = RNG.standard_normal((2, 3, 5)), RNG.standard_normal(5), RNG.standard_normal(5)
    w = RNG.standard_normal((2, 3, 5))
    y, cache = ops.layernorm_forward(x, g, b)
    dx, dg, db = ops.layernorm_backward(w, cache)
    xt, gt, bt = _t(x), _t(g), _t(b)
    yt = torch.nn.functional.layer_norm(xt, (5,), gt, bt, eps=1e-5)
    (yt * torch.tensor(w)).sum().backward()
    for mine, theirs in ((y, yt), (dx, xt.grad), (dg, gt.grad), (db, bt.grad)):
        assert np.allclose(mine, theirs.detach().numpy(), atol=1e-10)
    y, cache = ops.gelu_forward(x)
    xt = _t(x)
    torch.nn.functional.gelu(xt, approximate="tanh").mul(torch.tensor(w)).sum().backward()
    assert np.allclose(ops.gelu_backward(w, cache), xt.grad.numpy(), atol=1e-12)
    logits, tgt = RNG.standard_normal((2, 3, 5)), RNG.integers(0, 5, (2, 3))
    loss, cache = ops.cross_entropy_forward(logits, tgt)
    lt = _t(logits)
    lt_loss = torch.nn.functional.cross_entropy(lt.reshape(-1, 5), torch.tensor(tgt).reshape(-1))
    lt_loss.backward()
    assert abs(loss - lt_loss.item()) < 1e-12
    assert np.allclose(ops.cross_entropy_backward(1.0, cache), lt.grad.numpy(), atol=1e-12)
    idx = np.array([[0, 2, 2]])
    table = RNG.standard_normal((4, 3))
    out, cache = ops.embedding_forward(idx, table)
    tt = _t(table)
    torch.nn.functional.embedding(torch.tensor(idx), tt).mul(torch.tensor(out * 0 + 1)).sum().backward()
    assert np.allclose(ops.embedding_backward(np.ones_like(out), cache), tt.grad.numpy())


def test_spectral_op_is_causal():
    x, resp = RNG.standard_normal((1, 16, 2)), RNG.standard_normal((2, 9, 2))
    y, _ = ops.spectral_forward(x, resp, 16)
    x2 = x.copy()
    x2[:, 9:] += 5.0
    y2, _ = ops.spectral_forward(x2, resp, 16)
    assert np.abs(y2[:, :9] - y[:, :9]).max() < 1e-12
    assert np.abs(y2[:, 9:] - y[:, 9:]).max() > 1e-3
