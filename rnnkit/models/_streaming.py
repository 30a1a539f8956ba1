"""One step of a task model's recurrent stack, for the models' `step` methods (streaming)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["rnn_step", "check_streamable"]


def check_streamable(rnn: nn.Module, owner: str) -> None:
    """Raise ValueError, saying why, when `rnn` cannot stream (a bidirectional stack)."""
    if getattr(rnn, "bidirectional", False):
        raise ValueError(
            f"{owner}.step() streams forward in time, but this model's recurrent layer is "
            "bidirectional: its reverse direction starts from each sequence's last step, which "
            "an unbounded stream never reaches; build the model with bidirectional=False to "
            "stream, or call it on whole sequences")


def rnn_step(rnn: nn.Module, x_t: Tensor, state: Any, owner: str) -> tuple[Tensor, Any]:
    """Feed one step x_t (B, I) (or (I,) unbatched) through `rnn`, a time-major stack of
    rnnkit or torch.nn layers; returns its output (B, H) (or (H,)) and the new state.

    rnnkit layers stream through `layer.step`; a torch.nn layer runs a sequence of one step,
    which is the same computation. `owner` names the model in errors.
    """
    check_streamable(rnn, owner)
    if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2):
        got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
        raise ValueError(f"{owner}.step() takes one time step, (B, I) or (I,), got {got}")
    if hasattr(rnn, "step"):
        return rnn.step(x_t, state)
    if getattr(rnn, "batch_first", False) and x_t.dim() == 2:
        out, state = rnn(x_t.unsqueeze(1), state)  # (B, 1, H): a sequence of one step
        return out[:, 0], state
    out, state = rnn(x_t.unsqueeze(0), state)  # (1, B, H) or (1, H): a sequence of one step
    return out[0], state
