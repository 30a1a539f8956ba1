"""ImageClassifier: an image read as a sequence (row by row, pixel by pixel) or swept by a
FourDirectionRNN over patches, then one class."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit as rk
from rnnkit.layers._regularisers import Dropout
from rnnkit.layers.four_direction import FourDirectionRNN

__all__ = ["ImageClassifier", "IMAGE_STEPS", "IMAGE_CELLS"]

IMAGE_STEPS = ("rows", "pixels", "four-direction")
IMAGE_CELLS = ("rnn", "irnn", "lstm", "gru")


def _sequence_layer(cell: str, input_size: int, hidden_size: int, num_layers: int,
                    bidirectional: bool, dropout: float, **kwargs: Any) -> nn.Module:
    """The layer of `cell` with the initialisation its paper prescribes: tanh RNN (torch's
    init), IRNN (identity recurrence, ReLU; Le et al. 2015), LSTM with forget bias 1, GRU."""
    common = dict(num_layers=num_layers, bidirectional=bidirectional,
                  dropout=dropout if num_layers > 1 else 0.0, **kwargs)
    if cell == "rnn":
        return rk.RNN(input_size, hidden_size, **common)
    if cell == "irnn":
        return rk.IRNN(input_size, hidden_size, **common)
    if cell == "lstm":
        return rk.LSTM(input_size, hidden_size, forget_bias=1.0, **common)
    if cell == "gru":
        return rk.GRU(input_size, hidden_size, **common)
    raise ValueError(f"cell must be one of {list(IMAGE_CELLS)}, got {cell!r}")


class ImageClassifier(nn.Module):
    """Classify (R, C) images with recurrent layers.

    steps="rows": R steps of C pixels (row by row, e.g. 28 steps of 28 for Fashion-MNIST);
    steps="pixels": R*C steps of one pixel in scan-line order (Le et al. 2015's pixel-by-pixel
    task). Both read the final state of the top layer (each direction's) into a linear head.
    steps="four-direction": the image is cut into `patch` x `patch` patches (a grid of
    R/patch x C/patch positions of patch^2 features), `num_layers` ReNet-style
    FourDirectionRNN sweeps (rows both ways, then columns both ways) run over the grid, and
    the flattened result goes to the head.

    Args:
        num_classes: K.
        rows, cols: R, C of every image.
        steps: "rows", "pixels" or "four-direction".
        cell: "rnn", "irnn", "lstm" or "gru" ("irnn" not with four-direction).
        hidden_size: H (per direction).
        num_layers: stacked layers, or stacked four-direction sweeps.
        bidirectional: rows / pixels: read the sequence both ways too.
        dropout: on the features before the head (and between stacked layers).
        patch: four-direction: patch side; R and C must be multiples of it.
        **layer_kwargs: passed to the rnnkit layers (e.g. engine).

    Shape: x (R, B, C) (rows as time, as rnnkit batches are time-major) -> logits (B, K).

    Example:
        >>> import torch
        >>> model = ImageClassifier(10, 8, 8, steps="pixels", cell="irnn", hidden_size=16)
        >>> tuple(model(torch.rand(8, 3, 8)).shape)
        (3, 10)
    """

    def __init__(self, num_classes: int, rows: int, cols: int, steps: str = "rows",
                 cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, patch: int = 4,
                 **layer_kwargs: Any) -> None:
        super().__init__()
        if steps not in IMAGE_STEPS:
            raise ValueError(f"steps must be one of {list(IMAGE_STEPS)}, got {steps!r}")
        self.rows, self.cols, self.steps, self.patch = rows, cols, steps, patch
        self.drop = Dropout(dropout)
        if steps == "four-direction":
            if cell == "irnn":
                raise ValueError("cell 'irnn' is not offered with four-direction sweeps; use "
                                 "'rnn', 'lstm' or 'gru'")
            if patch < 1 or rows % patch or cols % patch:
                raise ValueError(f"patch must divide the image size: {rows}x{cols} images "
                                 f"do not split into {patch}x{patch} patches")
            sweeps, channels = [], patch * patch
            for _ in range(num_layers):
                sweeps.append(FourDirectionRNN(channels, hidden_size, cell, **layer_kwargs))
                channels = sweeps[-1].out_channels
            self.sweeps = nn.ModuleList(sweeps)
            features = channels * (rows // patch) * (cols // patch)
        else:
            size = cols if steps == "rows" else 1
            self.rnn = _sequence_layer(cell, size, hidden_size, num_layers, bidirectional,
                                       dropout, **layer_kwargs)
            features = hidden_size * (2 if bidirectional else 1)
        self.head = nn.Linear(features, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The vector the head reads: (B, F)."""
        if x.dim() != 3 or x.shape[0] != self.rows or x.shape[2] != self.cols:
            raise ValueError(f"images must be (rows={self.rows}, B, cols={self.cols}), got "
                             f"{tuple(x.shape)}")
        if self.steps == "four-direction":
            p = self.patch
            grid = F.pixel_unshuffle(x.transpose(0, 1).unsqueeze(1), p)  # (B, p*p, R/p, C/p)
            for sweep in self.sweeps:
                grid = self.drop(sweep(grid))  # (B, 2H, R/p, C/p)
            return grid.flatten(1)
        if self.steps == "pixels":
            x = x.transpose(1, 2).reshape(self.rows * self.cols, x.shape[1], 1)  # (R*C, B, 1)
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        D = 2 if self.rnn.bidirectional else 1
        return self.drop(torch.cat(list(h[-D:]), dim=-1))  # top layer, every direction

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, K)
