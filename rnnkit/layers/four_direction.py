"""FourDirectionRNN: recurrent sweeps over a 2-D grid in all four directions (ReNet-style)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.layers.rnn import GRU, LSTM, RNN

__all__ = ["FourDirectionRNN"]

_LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class FourDirectionRNN(nn.Module):
    """Four recurrent sweeps over an image-like grid, so every output sees the whole input.

    sweep="renet" (Visin et al. 2015): a bidirectional RNN reads every row left-to-right and
    right-to-left; a second bidirectional RNN reads every column of that result top-to-bottom
    and bottom-to-top. Output (B, 2H, R, C): each position summarises the whole grid.

    sweep="parallel": four independent RNNs read the input itself in the four directions
    (rows both ways, columns both ways) and their outputs are concatenated: (B, 4H, R, C),
    each position summarising its row and its column.

    Sequences of one sweep are batched: all rows of all images form one batch of B*R
    sequences of length C, so the layers run on the fused engine.

    Args:
        in_channels: features per grid position.
        hidden_size: H per direction.
        cell: "gru", "lstm" or "rnn".
        sweep: "renet" or "parallel".
        **layer_kwargs: passed to the rnnkit layers (e.g. engine, num_layers).

    Shape: x (B, in_channels, R, C) -> (B, 2H or 4H, R, C).

    Example:
        >>> import torch
        >>> layer = FourDirectionRNN(1, 8)
        >>> tuple(layer(torch.randn(2, 1, 5, 6)).shape)
        (2, 16, 5, 6)
    """

    def __init__(self, in_channels: int, hidden_size: int, cell: str = "gru",
                 sweep: str = "renet", **layer_kwargs: Any) -> None:
        super().__init__()
        if cell not in _LAYERS:
            raise ValueError(f"cell must be one of {sorted(_LAYERS)}, got {cell!r}")
        if sweep not in ("renet", "parallel"):
            raise ValueError(f"sweep must be 'renet' or 'parallel', got {sweep!r}")
        self.sweep, self.in_channels, self.hidden_size = sweep, in_channels, hidden_size
        Layer = _LAYERS[cell]
        self.rows = Layer(in_channels, hidden_size, bidirectional=True, batch_first=True,
                          **layer_kwargs)
        cols_in = 2 * hidden_size if sweep == "renet" else in_channels
        self.cols = Layer(cols_in, hidden_size, bidirectional=True, batch_first=True,
                          **layer_kwargs)

    @property
    def out_channels(self) -> int:
        return (2 if self.sweep == "renet" else 4) * self.hidden_size

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (B, {self.in_channels}, rows, cols), got "
                             f"{tuple(x.shape)}")
        rows = _sweep(self.rows, x)  # (B, 2H, R, C): left-right and right-left
        source = rows if self.sweep == "renet" else x
        cols = _sweep(self.cols, source.transpose(2, 3)).transpose(2, 3)  # (B, 2H, R, C)
        return cols if self.sweep == "renet" else torch.cat([rows, cols], dim=1)


def _sweep(layer: nn.Module, x: Tensor) -> Tensor:
    """Run a bidirectional layer along the last axis of x (B, F, R, C) -> (B, 2H, R, C)."""
    B, F, R, C = x.shape
    seqs = x.permute(0, 2, 3, 1).reshape(B * R, C, F)  # every row is a sequence of C steps
    out, _ = layer(seqs)  # (B*R, C, 2H)
    return out.reshape(B, R, C, -1).permute(0, 3, 1, 2)
