"""The fast CPU dropout: keep rate, every 16-bit lane uniform, unbiased output, exact gradient."""
import pytest
import torch
from torch import nn

from specmix.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_keep_rate_of_each_lane(p):
    torch.manual_seed(0)
    keep = keep_mask((1 << 20,), p).view(-1, 4)          # (words, 4 lanes of 16 bits)
    rates = keep.float().mean(0)                            # one keep rate per lane
    # 2^18 draws per lane: the binomial standard error is <= 0.001
    assert torch.allclose(rates, torch.full((4,), 1 - p), atol=0.005), rates


def test_lanes_are_independent_of_each_other():
    torch.manual_seed(1)
    keep = keep_mask((1 << 20,), 0.5).view(-1, 4).float()
    both = (keep[:, 0] * keep[:, 3]).mean()
    assert abs(both.item() - 0.25) < 0.005


def test_output_is_unbiased_and_gradient_is_the_scaled_mask():
    torch.manual_seed(2)
    x = torch.rand(64, 128, 32, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    y = dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.005
    scale = 65536 / (65536 - round(0.3 * 65536))
    assert torch.equal(y, x.detach() * kept * scale)
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, kept * torch.tensor(scale, dtype=torch.float64))


def test_module_matches_nn_dropout_conventions():
    torch.manual_seed(3)
    drop = Dropout(0.5)
    assert isinstance(drop, nn.Dropout) and repr(drop) == repr(nn.Dropout(0.5))
    x = torch.randn(4, 9, 8, dtype=torch.bfloat16)
    drop.eval()
    assert drop(x) is x
    drop.train()
    y = drop(x)
    assert y.dtype == x.dtype and y.shape == x.shape and not torch.equal(y, x)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_seeded_masks_repeat():
    torch.manual_seed(4)
    a = keep_mask((3, 7, 5), 0.25)
    torch.manual_seed(4)
    assert torch.equal(a, keep_mask((3, 7, 5), 0.25))


def test_bad_p_is_refused():
    with pytest.raises(ValueError, match="p must be in"):
        dropout(torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="p must be in"):
        keep_mask((3,), -0.1)
