"""`rk.RNNCell`, `rk.LSTMCell`, `rk.GRUCell`: the standard cells with torch.nn.*Cell's contract,
one step on the fused engine, forward and backward.

Each is the reference cell of `rnnkit.cells` (same parameters, same protocol, same errors)
whose step can run as a one-step call of the engine's layer kernels: `engine="fused"` does
(a float32 or float64 CPU input, no LSTM projection, the engine built; otherwise it raises,
naming the reason), forward and backward; `engine="reference"` keeps the plain equations,
which stay the oracle. `engine="auto"` (the default) runs the engine where it was measured to
win (bench/cells.py, docs/benchmarks.md): a step that autograd does not record (inference,
`torch.no_grad()`, the decoders and samplers) runs on the engine, 1.0-1.8x torch.nn's cells;
a step that autograd records runs the equations, because the one-step backward still loses at
larger batches. A batched call goes straight to the kernels (one crossing, as the layers'
`_fast.py`). Tracing (`torch.jit.trace`, ONNX export) and `torch.compile` see the reference
equations."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from rnnkit import cells as _ref
from rnnkit import engine as _engine
from rnnkit.engine.fused_layer import _empty
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

    def _auto_engine(self, x: Tensor, state: Any) -> bool:
        """Whether `engine="auto"` runs this step on the engine: when autograd does not record
        it (see the module docstring)."""
        if not torch.is_grad_enabled():
            return True
        fields = state if isinstance(state, tuple) else (state,)
        return not (x.requires_grad or any(p.requires_grad for p in self._parameters.values()
                                           if p is not None)
                    or any(isinstance(f, Tensor) and f.requires_grad for f in fields))

    def _advance(self, x: Tensor, state: Any) -> Any:
        if self.engine == "fused" and not _tracing():
            reason = self.fused_reason(x)
            if reason is not None:
                raise RuntimeError(f"engine='fused' cannot run this cell: {reason}")
            return self._fused_step(x, state)
        if (self.engine == "auto" and not _tracing() and self._auto_engine(x, state)
                and self.fused_reason(x) is None):
            return self._fused_step(x, state)
        return super()._advance(x, state)

    def forward(self, input: Tensor, hx: Any = None) -> Any:
        if (type(input) is Tensor and input.dim() == 2 and self.engine != "reference"
                and (self.engine == "fused" or self._auto_engine(input, hx))):
            done = self._one_crossing(input, hx)  # most calls: straight to the kernels
            if done is not None:
                return done
        return super().forward(input, hx)

    def _one_crossing(self, x: Tensor, hx: Any) -> Any:
        """`forward` for a batched x (B, I) in one call of the kernels, or None where the
        general path must run: anything out of the ordinary, or input the kernels refuse
        (the general path then raises its own error). Same kernel call, same results."""
        params = self._parameters
        w_ih, w_hh = params.get("weight_ih"), params.get("weight_hh")
        if (w_ih is None or w_hh is None or self.options.get("proj_size") or not x.is_cpu
                or _tracing()):
            return None
        empty = _empty(x.dtype)
        b_ih, b_hh = params.get("bias_ih"), params.get("bias_hh")
        flat = [w_ih, w_hh, empty if b_ih is None else b_ih, empty if b_hh is None else b_hh]
        two = len(self.State._fields) == 2
        if hx is None and not torch.is_grad_enabled():  # the kernels' zero state
            h0 = c0 = empty
        elif hx is None:
            h0 = x.new_zeros(1, x.shape[0], self.hidden_size)
            c0 = x.new_zeros(1, x.shape[0], self.hidden_size) if two else empty
        elif two:
            if not isinstance(hx, tuple) or len(hx) != 2 or not all(
                    isinstance(f, Tensor) and f.dim() == 2 for f in hx):
                return None
            h0, c0 = hx[0].unsqueeze(0), hx[1].unsqueeze(0)
        else:
            if not isinstance(hx, Tensor) or hx.dim() != 2:
                return None
            h0, c0 = hx.unsqueeze(0), empty
        try:
            res = _engine.fused_layer_flat(_engine.CODES[self._cell_name()], x.unsqueeze(0),
                                           h0, c0, flat, functools.partial(_reference_step, self))
        except (ValueError, TypeError):
            return None
        if res is None:
            return None
        return self.State(res[1][0], res[2][0]) if two else res[1][0]

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
