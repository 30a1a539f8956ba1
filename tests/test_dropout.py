"""The models' dropout: F.dropout's distribution and gradient, off in eval mode."""

from __future__ import annotations

import torch

from rnnkit.layers._regularisers import Dropout, dropout


def test_identity_in_eval_mode_and_at_zero_rate():
    x = torch.randn(5, 7)
    m = Dropout(0.5).eval()
    assert m(x) is x
    assert dropout(x, 0.0) is x


def test_keep_rate_scale_and_gradient_follow_the_mask():
    torch.manual_seed(0)
    x = torch.randn(200_000, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.double() / 0.7)


def test_seeded_masks_repeat():
    x = torch.ones(1000)
    torch.manual_seed(5)
    a = dropout(x, 0.5)
    torch.manual_seed(5)
    assert torch.equal(a, dropout(x, 0.5))
