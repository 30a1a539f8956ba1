"""FourDirectionRNN: each sweep is a bidirectional layer over rows or columns."""

from __future__ import annotations

import pytest
import torch

from rnnkit.layers.four_direction import FourDirectionRNN

B, F, R, C, H = 2, 3, 4, 5, 6


def test_row_sweep_equals_the_layer_on_each_row():
    layer = FourDirectionRNN(F, H, cell="lstm", sweep="parallel").double()
    x = torch.randn(B, F, R, C, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (B, 4 * H, R, C)
    for b in range(B):
        for r in range(R):
            row, _ = layer.rows(x[b, :, r].T.unsqueeze(0))  # (1, C, 2H)
            torch.testing.assert_close(out[b, :2 * H, r], row[0].T)
        for c in range(C):
            col, _ = layer.cols(x[b, :, :, c].T.unsqueeze(0))  # (1, R, 2H)
            torch.testing.assert_close(out[b, 2 * H:, :, c], col[0].T)


def test_renet_output_depends_on_every_input_position():
    layer = FourDirectionRNN(F, H).double()
    x = torch.randn(1, F, R, C, dtype=torch.float64, requires_grad=True)
    layer(x)[0, :, 0, 0].sum().backward()  # the top-left output
    assert (x.grad.abs().sum(1) > 0).all()  # reaches the bottom-right input too


def test_parallel_output_sees_only_its_row_and_column():
    layer = FourDirectionRNN(F, H, sweep="parallel").double()
    x = torch.randn(1, F, R, C, dtype=torch.float64, requires_grad=True)
    layer(x)[0, :, 1, 2].sum().backward()
    reach = x.grad.abs().sum(1)[0] > 0  # (R, C)
    expected = torch.zeros(R, C, dtype=torch.bool)
    expected[1, :] = True
    expected[:, 2] = True
    assert torch.equal(reach, expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sweep must be"):
        FourDirectionRNN(F, H, sweep="diagonal")
    with pytest.raises(ValueError, match=r"x must be \(B, 3, rows, cols\)"):
        FourDirectionRNN(F, H)(torch.randn(B, 2, R, C))
