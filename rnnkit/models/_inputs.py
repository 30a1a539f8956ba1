"""Shared front end of the task models: token ids through an embedding, or real features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["InputEncoder", "length_mask"]


class InputEncoder(nn.Module):
    """Token ids (T, B) -> embeddings (T, B, E), or features (T, B, I) passed through.

    Args:
        vocab_size: build an embedding of this many tokens (then inputs are int ids), or None
            for real-valued inputs of `input_size` features.
        input_size: E (the embedding size) or I (the feature size).
    """

    def __init__(self, vocab_size: int | None, input_size: int, padding_idx: int | None = None
                 ) -> None:
        super().__init__()
        self.vocab_size, self.input_size = vocab_size, input_size
        self.embedding = (nn.Embedding(vocab_size, input_size, padding_idx=padding_idx)
                          if vocab_size else None)

    def forward(self, x: Tensor) -> Tensor:
        if self.embedding is not None:
            if x.dim() != 2 or x.is_floating_point():
                raise ValueError(f"x must be (T, B) token ids for a model with a vocabulary, got "
                                 f"{tuple(x.shape)} {x.dtype}")
            return self.embedding(x)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be (T, B, {self.input_size}) features, got "
                             f"{tuple(x.shape)}")
        return x


def length_mask(lengths: Tensor | None, T: int, B: int) -> Tensor:
    """(T, B) bool: True at valid steps."""
    if lengths is None:
        return torch.ones(T, B, dtype=torch.bool)
    return torch.arange(T).unsqueeze(1) < lengths.to("cpu").unsqueeze(0)
