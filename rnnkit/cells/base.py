"""The one cell protocol every rnnkit cell follows: `cell.next_state(x_t, state) -> state`.

Shape alphabet used across rnnkit: B batch, T time, I input size, H hidden size,
G gate width (4H for LSTM, 3H for GRU), L layers, D directions, V vocabulary.

A cell is an `nn.Module` whose parameters carry torch.nn's cell names (`weight_ih`,
`weight_hh`, `bias_ih`, `bias_hh`). Its math lives in a static
`step(x, state, params, **options)` so that a sequence layer can run the same equations on its
own `weight_ih_l0`-style parameters: the cell class is the single source of truth for the
recurrence, and the module form is a convenience for one step.

Calling a cell, `cell(input, hx)`, follows torch.nn's cells: a cell with one state field (RNN,
GRU, ...) returns the new h as a Tensor, a cell with several returns the state tuple (`(h, c)`
for the LSTM, as torch.nn.LSTMCell). `cell.next_state(x, state)` always returns the `State`
NamedTuple; it is what `unroll` and the layers run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["RecurrentCell", "ParamSpec"]


class ParamSpec(NamedTuple):
    """One parameter of a cell: its torch.nn name, its shape, and whether it is a bias."""

    name: str
    shape: tuple[int, ...]
    is_bias: bool = False


class RecurrentCell(nn.Module):
    """Base class for cells. Subclasses define `State`, `param_specs` and `step`.

    Args:
        input_size: I, features per step.
        hidden_size: H, units in the state.
        bias: whether the cell has `bias_ih` and `bias_hh`.
    """

    State: ClassVar[type]
    #: Pre-activation blocks stacked in `weight_ih` (1 for RNN, 3 for GRU, 4 for LSTM).
    gates: ClassVar[int] = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        # nn.Module's, not super()'s: rk.LSTMCell also derives from nn.LSTMCell, whose
        # __init__ would build torch.nn's own parameters.
        nn.Module.__init__(self)
        _check_positive("input_size", input_size)
        _check_positive("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.options = options
        factory = {"device": device, "dtype": dtype}
        for spec in self.param_specs(input_size, hidden_size, bias, **options):
            self.register_parameter(spec.name, nn.Parameter(torch.empty(spec.shape, **factory)))
        self.reset_parameters()

    @classmethod
    def param_specs(
        cls, input_size: int, hidden_size: int, bias: bool, **options: Any
    ) -> list[ParamSpec]:
        """The parameters of one cell, in the order `step` takes them."""
        G = cls.gates * hidden_size
        specs = [
            ParamSpec("weight_ih", (G, input_size)),
            ParamSpec("weight_hh", (G, hidden_size)),
        ]
        if bias:
            specs += [ParamSpec("bias_ih", (G,), True), ParamSpec("bias_hh", (G,), True)]
        return specs

    @classmethod
    def init_params(cls, params: dict[str, Tensor], hidden_size: int, **options: Any) -> None:
        """torch.nn's default: every parameter uniform in (-1/sqrt(H), 1/sqrt(H)).

        `params` maps the names of `param_specs` to the tensors of one cell (absent biases are
        left out); subclasses override this for other schemes.
        """
        bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
        with torch.no_grad():
            for p in params.values():
                p.uniform_(-bound, bound)

    @staticmethod
    def step(x: Tensor, state: Any, params: Sequence[Tensor | None], **options: Any) -> Any:
        """The recurrence: new state from x (B, I), state fields (B, H) and `params`.

        Every cell also takes `h_drop`, None or a (B, H) multiplier applied to h_{t-1} where
        it enters a matrix product (recurrent dropout); h_{t-1} elsewhere stays whole.
        """
        raise NotImplementedError

    @classmethod
    def state_sizes(cls, hidden_size: int, **options: Any) -> tuple[int, ...]:
        """Width of each field of `State` (all H by default)."""
        return (hidden_size,) * len(cls.State._fields)

    def params(self) -> tuple[Tensor | None, ...]:
        """This cell's parameters in `step` order, None for absent biases."""
        specs = self.param_specs(self.input_size, self.hidden_size, True, **self.options)
        return tuple(getattr(self, s.name, None) for s in specs)

    def reset_parameters(self) -> None:
        self.init_params(dict(self.named_parameters()), self.hidden_size, **self.options)

    def init_state(
        self, batch: int | None = None, *, dtype: torch.dtype | None = None, device: Any = None
    ) -> Any:
        """The zero state: each field (B, H), or (H,) when `batch` is None (unbatched)."""
        ref = next(self.parameters())
        dtype = dtype or ref.dtype
        device = device or ref.device
        lead = () if batch is None else (batch,)
        sizes = self.state_sizes(self.hidden_size, **self.options)
        return self.State(*(torch.zeros(*lead, n, dtype=dtype, device=device) for n in sizes))

    def next_state(self, x: Tensor, state: Any = None) -> Any:
        """One step of the protocol: the new `State` NamedTuple.

        x: (B, I) or (I,); state: a `State` (or a tuple, or for one field a Tensor) of (B, H)
        tensors, or None for zeros.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a Tensor, got {type(x).__name__}")
        if x.dim() not in (1, 2):
            raise ValueError(f"input must be (B, I) or (I,), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"input has {x.shape[-1]} features, but the cell was built with "
                f"input_size={self.input_size}"
            )
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        if state is None:
            state = self.init_state(x.shape[0], dtype=x.dtype, device=x.device)
        else:
            state = self._as_state(state, x, unbatched)
        new = self._advance(x, state)
        if unbatched:
            new = self.State(*(s.squeeze(0) for s in new))
        return new

    def _advance(self, x: Tensor, state: Any) -> Any:
        """The new state from a checked x (B, I) and state (fields (B, H)): the cell's
        equations here; `rnnkit.layers.cells` runs the standard cells on the fused engine."""
        return self.step(x, state, self.params(), **self.options)

    def forward(self, input: Tensor, hx: Any = None) -> Any:
        """One step with torch.nn's cell contract: the new h (a Tensor) for a cell with one
        state field, the new state tuple (h, c) for a cell with several."""
        new = self.next_state(input, hx)
        return new[0] if len(new) == 1 else new

    def _as_state(self, state: Any, x: Tensor, unbatched: bool) -> Any:
        """`state` checked against x's batch and this cell's sizes, as a batched `State`."""
        fields = self.State._fields
        if isinstance(state, Tensor):
            state = (state,)
        if not isinstance(state, (tuple, list)) or len(state) != len(fields):
            what = "a Tensor" if len(fields) == 1 else f"a tuple of {len(fields)} tensors"
            raise TypeError(f"hx must be {what} {fields}, got {describe(state)}")
        sizes = self.state_sizes(self.hidden_size, **self.options)
        out = []
        for name, s, n in zip(fields, state, sizes, strict=True):
            expected = (n,) if unbatched else (x.shape[0], n)
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"hx field {name!r} must have shape {expected}, got {got}")
            if s.dtype != x.dtype:
                raise TypeError(f"hx field {name!r} has dtype {s.dtype}, but input has "
                                f"dtype {x.dtype}")
            out.append(s.unsqueeze(0) if unbatched else s)
        return self.State(*out)

    def __prepare_scriptable__(self) -> nn.Module:
        """torch.jit.script compiles torch.nn's twin of a standard cell (same parameters);
        the variants have no TorchScript form."""
        from rnnkit.export.torch_nn import torch_cell_twin

        return torch_cell_twin(self)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


def describe(value: Any) -> str:
    """A short description of an argument for error messages: its shape, length or type."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
