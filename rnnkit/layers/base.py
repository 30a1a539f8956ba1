"""RecurrentLayer: any cell of the protocol as a torch.nn-compatible sequence layer."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import engine as _engine
from rnnkit.cells.base import RecurrentCell
from rnnkit.engine import variants as _variants
from rnnkit.layers import _inputs, _regularisers
from rnnkit.layers._torch_path import run_torch, supports_torch
from rnnkit.layers.scan import unroll

__all__ = ["RecurrentLayer", "ENGINES"]

ENGINES = ("auto", "fused", "reference", "torch")


class RecurrentLayer(nn.Module):
    """A stack of recurrent layers built from one cell class, with torch.nn's contract.

    Parameters are registered under torch.nn's names (`weight_ih_l{k}`, `bias_hh_l{k}_reverse`,
    ...) so state dicts interchange with torch.nn.RNN/LSTM/GRU. Each layer k and direction d runs
    `cell_cls.step` over time through `unroll` (the reference engine) or through the fused CPU
    engine in `rnnkit.engine`, chosen by `engine`.

    Args:
        cell_cls: the cell class whose `step` defines the recurrence.
        mode: the engine's name for this recurrence ("LSTM", "GRU", "RNN_TANH", "RNN_RELU", ...).
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
            dtype: as in torch.nn.
        engine: "auto" (on CUDA, torch.nn's cuDNN kernels for the standard cells; on CPU the
            fused kernels where they exist; else the reference path), "fused" (error if the
            fused engine cannot run this layer), "reference" (the plain per-step loop) or
            "torch" (torch.nn's own kernels, for the standard cells only).
        initializer: applied to the layer after the cell's default initialisation (e.g.
            `rnnkit.init.chrono_`), also by `reset_parameters()`.
        recurrent_dropout: variational dropout on h_{t-1} where it enters the recurrent
            products, one mask per sequence, layer and direction (Gal & Ghahramani 2016);
            training only.
        zoneout: probability that a unit keeps its previous value at a step (Krueger et al.
            2016), one rate for every state field or one per field (LSTM: (h, c)); in
            evaluation each unit moves to the expectation p * old + (1 - p) * new.
        **cell_options: passed to the cell class (e.g. nonlinearity, proj_size).

    Shape:
        input (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a PackedSequence;
        state (L*D, B, H) per state field. Output (T, B, D*H) and the final state.
    """

    def __init__(
        self,
        cell_cls: type[RecurrentCell],
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: torch.dtype | None = None,
        engine: str = "auto",
        initializer: Callable[[nn.Module], Any] | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        self._initializer = initializer
        _inputs.check_config(input_size, hidden_size, num_layers, dropout)
        if isinstance(dropout, (int, float)) and dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                UserWarning,
                stacklevel=3,
            )
        self.cell_cls = cell_cls
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.engine = engine
        self.cell_options = cell_options
        self.proj_size = int(cell_options.get("proj_size", 0))
        self.recurrent_dropout = _regularisers.check_rate("recurrent_dropout", recurrent_dropout)
        n_fields = len(cell_cls.State._fields)
        self.zoneout = _regularisers.check_zoneout(zoneout, n_fields)
        factory = {"device": device, "dtype": dtype}
        out_size = cell_cls.state_sizes(hidden_size, **cell_options)[0]
        for k in range(num_layers):
            layer_in = input_size if k == 0 else out_size * self.num_directions
            for d in range(self.num_directions):
                for spec in cell_cls.param_specs(layer_in, hidden_size, bias, **cell_options):
                    p = nn.Parameter(torch.empty(spec.shape, **factory))
                    self.register_parameter(self._param_name(spec.name, k, d), p)
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def engine(self) -> str:
        return self._engine

    @engine.setter
    def engine(self, value: str) -> None:
        if value not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {value!r}")
        self._engine = value

    @staticmethod
    def _param_name(name: str, k: int, d: int) -> str:
        return f"{name}_l{k}{'_reverse' if d == 1 else ''}"

    def _spec_names(self) -> list[str]:
        specs = self.cell_cls.param_specs(1, self.hidden_size, True, **self.cell_options)
        return [s.name for s in specs]

    def layer_weights(self, k: int, d: int) -> tuple[Tensor | None, ...]:
        """Parameters of layer k, direction d, in the cell's `step` order (None: no bias)."""
        cache = self.__dict__.setdefault("_weight_names", {})  # names are fixed at construction
        names = cache.get((k, d))
        if names is None:
            names = cache[k, d] = tuple(self._param_name(n, k, d) for n in self._spec_names())
        # A registered Parameter straight from the dict (Module.__getattr__ costs ~0.4 us a
        # name, and this runs on every call); anything else (no bias, a parametrization's
        # computed weight) through getattr.
        params = self._parameters
        return tuple(p if (p := params.get(n)) is not None else getattr(self, n, None)
                     for n in names)

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [
            [w for w in self.layer_weights(k, d) if w is not None]
            for k in range(self.num_layers)
            for d in range(self.num_directions)
        ]

    def reset_parameters(self) -> None:
        names = self._spec_names()
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                group = {n: w for n, w in zip(names, self.layer_weights(k, d), strict=True)
                         if w is not None}
                self.cell_cls.init_params(group, self.hidden_size, **self.cell_options)
        if self._initializer is not None:
            self._initializer(self)

    def flatten_parameters(self) -> None:
        """No-op, for code written against torch.nn's cuDNN layers."""

    # -- forward ------------------------------------------------------------------------------

    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, Any]:
        """Run the stack over a sequence; returns (output, final state) like torch.nn."""
        seq = _inputs.prepare(self, input, hx, lengths)
        out, state = self._run(seq.x, seq.state, seq.lengths)
        return seq.restore(out, state)

    def _run(
        self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        if self.engine == "torch" or (self.engine == "auto" and x.is_cuda):
            if supports_torch(self):
                return run_torch(self, x, state, lengths)
            if self.engine == "torch":
                raise RuntimeError(f"engine='torch' runs only the standard RNN/LSTM/GRU, not "
                                   f"{type(self).__name__} (mode {self.mode!r})")
        if self.engine in ("auto", "fused"):
            kernels = _variants if _variants.handles(self) else _engine
            reason = kernels.unsupported_reason(self, x)
            if reason is None:
                return kernels.run_stack(self, x, state, lengths)
            if self.engine == "fused":
                raise RuntimeError(f"engine='fused' cannot run this layer: {reason}")
        return self._reference_stack(x, state, lengths)

    def _reference_stack(
        self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Every layer and direction through `unroll`: the oracle for the fused engine."""
        State = self.cell_cls.State
        finals: list[list[Tensor]] = [[] for _ in state]
        layer_input = x  # (T, B, I)
        for k in range(self.num_layers):
            outputs = []
            for d in range(self.num_directions):
                index = k * self.num_directions + d
                h_drop, zone = _regularisers.masks(self, x.shape[0], x.shape[1], x)
                step = functools.partial(
                    self.cell_cls.step, params=self.layer_weights(k, d), **self.cell_options
                )
                if h_drop is not None:
                    step = functools.partial(step, h_drop=h_drop)
                start = State(*(s[index] for s in state))
                out, final = unroll(step, layer_input, start, lengths, reverse=d == 1,
                                    zoneout=zone)
                outputs.append(out)  # (T, B, H)
                for field, value in zip(finals, final, strict=True):
                    field.append(value)
            layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and k < self.num_layers - 1:
                layer_input = _regularisers.dropout(layer_input, self.dropout)
        return layer_input, tuple(torch.stack(field) for field in finals)  # (L*D, B, H) each

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        for key, value in self.cell_options.items():
            s += f", {key}={value!r}"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout}"
        if self.engine != "auto":
            s += f", engine={self.engine!r}"
        return s
