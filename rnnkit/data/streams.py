"""StreamBatches: one token sequence cut into B parallel streams, read in chunks for TBPTT."""

from __future__ import annotations

from torch import Tensor

__all__ = ["StreamBatches"]


class StreamBatches:
    """Cut one long token sequence into `batch_size` contiguous streams and read them in chunks.

    Chunk k of stream b continues exactly where chunk k-1 of stream b stopped, so a model that
    carries its recurrent state from one batch to the next sees each stream as one long sequence
    (truncated backpropagation through time). Batch `index` is a pure function of the index, so
    a data position is just `(epoch, index)`.

    Args:
        ids: token ids, shape (N,).
        batch_size: number of streams B.
        seq_len: chunk length T.

    Shape:
        `batch(k)` returns `(x, y)`, both (T, B) long; y is x shifted by one token.

    Example:
        >>> import torch
        >>> s = StreamBatches(torch.arange(9), batch_size=2, seq_len=2)
        >>> x, y = s.batch(0)
        >>> x.T.tolist(), y.T.tolist()
        ([[0, 1], [4, 5]], [[1, 2], [5, 6]])
    """

    def __init__(self, ids: Tensor, batch_size: int, seq_len: int) -> None:
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"batch_size and seq_len must be >= 1, got {batch_size} and {seq_len}")
        if ids.dim() != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        per_stream = (ids.numel() - 1) // batch_size
        if per_stream < 2:
            raise ValueError(f"{ids.numel()} tokens are too few for batch_size={batch_size} "
                             f"(need at least {2 * batch_size + 1})")
        self.batch_size = batch_size
        self.seq_len = min(seq_len, per_stream)
        n = per_stream * batch_size
        self.x = ids[:n].view(batch_size, per_stream).t().contiguous()  # (N/B, B)
        self.y = ids[1:n + 1].view(batch_size, per_stream).t().contiguous()  # (N/B, B)
        self.num_batches = (per_stream + self.seq_len - 1) // self.seq_len

    def __len__(self) -> int:
        return self.num_batches

    @property
    def num_tokens(self) -> int:
        return self.x.numel()

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        """Chunk `index` of every stream: `(x, y)`, each (T, B); the last chunk may be shorter."""
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch index {index} out of range [0, {self.num_batches})")
        t0 = index * self.seq_len
        return self.x[t0:t0 + self.seq_len], self.y[t0:t0 + self.seq_len]

    def __iter__(self):
        for k in range(self.num_batches):
            yield self.batch(k)
