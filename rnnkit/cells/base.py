"""The one cell protocol every rnnkit cell follows: `cell(x_t, state) -> state`.

Shape alphabet used across rnnkit: B batch, T time, I input size, H hidden size,
G gate width (4H for LSTM, 3H for GRU), L layers, D directions, V vocabulary.

A cell is an `nn.Module` whose parameters carry torch.nn's cell names (`weight_ih`,
`weight_hh`, `bias_ih`, `bias_hh`). Its math lives in a static
`step(x, state, params, **options)` so that a sequence layer can run the same equations on its
own `weight_ih_l0`-style parameters: the cell class is the single source of truth for the
recurrence, and the module form is a convenience for one step.
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
        super().__init__()
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

    def forward(self, x: Tensor, state: Any = None) -> Any:
        """One step. x: (B, I) or (I,); state: a `State` of (B, H) tensors, or None for zeros."""
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
            state = None if state is None else self._as_state(state).__class__(
                *(s.unsqueeze(0) for s in self._as_state(state))
            )
        if state is None:
            state = self.init_state(x.shape[0], dtype=x.dtype, device=x.device)
        state = self._as_state(state)
        new = self.step(x, state, self.params(), **self.options)
        if unbatched:
            new = self.State(*(s.squeeze(0) for s in new))
        return new

    def _as_state(self, state: Any) -> Any:
        if isinstance(state, Tensor):
            state = (state,)
        if len(state) != len(self.State._fields):
            raise ValueError(
                f"state must have {len(self.State._fields)} fields {self.State._fields}, "
                f"got {len(state)}"
            )
        return self.State(*state)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
