"""`rk.RNNCell`, `rk.LSTMCell`, `rk.GRUCell`: the standard cells with torch.nn.*Cell's contract,
one step on the fused engine, forward and backward.

Each is the reference cell of `rnnkit.cells` (same parameters, same protocol, same errors)
whose step can run as a one-step call of the engine's layer kernels: `engine="fused"` does
(a float32 or float64 CPU input, no LSTM projection, the engine built; otherwise it raises,
naming the reason), forward and backward; `engine="reference"` keeps the plain equations,
which stay the oracle. `engine="auto"` (the default) runs the reference equations for now:
measured with bench/cells.py (docs/benchmarks.md), the one-step engine call wins in inference
for the LSTM and GRU but loses for the RNN and in training at larger batches, so the engine
waits for the per-call cost (issue 14). Tracing (`torch.jit.trace`, ONNX export) and `torch.compile`
see the reference equations.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from rnnkit import cells as _ref
from rnnkit import engine as _engine
from rnnkit.layers.base import _tracing as _layer_tracing

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "CELL_ENGINES"]

#: what `engine=` takes on a cell
CELL_ENGINES = ("auto", "fused", "reference")


class _FusedStep:
    """Mixin over a reference cell: `engine=` and the fused one-step call."""

    def _init_engine(self, engine: str) -> None:
        self.engine = engine

    @property
    def engine(self) -> str:
        return self.__dict__["_engine"]

    @engine.setter
    def engine(self, value: str) -> None:
        if value not in CELL_ENGINES:
            raise ValueError(f"engine must be one of {CELL_ENGINES}, got {value!r}")
        self.__dict__["_engine"] = value

    def _cell_name(self) -> str:
        raise NotImplementedError

    def fused_reason(self, x: Tensor) -> str | None:
        """Why the engine cannot run this cell on `x` (B, I), or None if it can."""
        if self.options.get("proj_size"):
            return (f"the fused engine has no LSTM projection "
                    f"(proj_size={self.options['proj_size']}); use engine='reference'")
        return _engine.unsupported_reason(self._cell_name(), x.unsqueeze(0), self.weight_ih)

    def _advance(self, x: Tensor, state: Any) -> Any:
        if self.engine == "fused" and not _tracing():
            reason = self.fused_reason(x)
            if reason is not None:
                raise RuntimeError(f"engine='fused' cannot run this cell: {reason}")
            return self._fused_step(x, state)
        return super()._advance(x, state)

    def _fused_step(self, x: Tensor, state: Any) -> Any:
        weights = (self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                   getattr(self, "bias_hh", None))
        two = len(state) == 2
        twin = functools.partial(_reference_step, self)
        _, h_n, c_n = _engine.fused_layer(self._cell_name(), x.unsqueeze(0),
                                          state[0].unsqueeze(0),
                                          state[1].unsqueeze(0) if two else None,
                                          [weights], None, twin)
        return self.State(h_n[0], c_n[0]) if two else self.State(h_n[0])

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.engine == "auto" else f"{s}, engine={self.engine!r}"


def _reference_step(cell: Any, x: Tensor, h0: Tensor, c0: Tensor,
                    *flat: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
    """The fused one-step call by the cell's equations (for gradients of gradients): x
    (1, B, I), h0 and c0 (1, B, H) (c0 empty unless LSTM), the 4 weights (empty: no bias)."""
    params = tuple(w if w.numel() else None for w in flat)
    start = (h0[0], c0[0]) if c0.numel() else (h0[0],)
    new = cell.step(x[0], cell.State(*start), params, **cell.options)
    h = new[0].unsqueeze(0)
    return h, h, (new[1].unsqueeze(0) if len(new) == 2 else None)


def _tracing() -> bool:
    """The layers' rule (jit.trace, ONNX export, torch.export), and torch.compile too: a cell
    call sits inside the user's compiled code, where the equations trace and the kernels cannot."""
    return _layer_tracing() or torch.compiler.is_compiling()


class RNNCell(_FusedStep, _ref.RNNCell):
    """`rnnkit.cells.RNNCell` (tanh or ReLU) on the fused engine; `engine=` as in the module
    docstring.

    Example:
        >>> import rnnkit as rk
        >>> cell = rk.RNNCell(3, 5)
        >>> cell(torch.zeros(2, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None,
                 dtype: torch.dtype | None = None, engine: str = "auto") -> None:
        self._init_engine(engine)
        super().__init__(input_size, hidden_size, bias, nonlinearity, device=device,
                         dtype=dtype)

    def _cell_name(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"


class LSTMCell(_FusedStep, _ref.LSTMCell):
    """`rnnkit.cells.LSTMCell` on the fused engine (the reference path with `proj_size > 0`);
    `engine=` as in the module docstring.

    Example:
        >>> import rnnkit as rk
        >>> h, c = rk.LSTMCell(3, 5)(torch.zeros(2, 3))
        >>> tuple(c.shape)
        (2, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None, proj_size: int = 0,
                 engine: str = "auto") -> None:
        self._init_engine(engine)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype,
                         proj_size=proj_size)

    def _cell_name(self) -> str:
        return "LSTM"


class GRUCell(_FusedStep, _ref.GRUCell):
    """`rnnkit.cells.GRUCell` on the fused engine; `engine=` as in the module docstring.

    Example:
        >>> import rnnkit as rk
        >>> rk.GRUCell(3, 5)(torch.zeros(2, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: torch.dtype | None = None,
                 engine: str = "auto") -> None:
        self._init_engine(engine)
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)

    def _cell_name(self) -> str:
        return "GRU"
