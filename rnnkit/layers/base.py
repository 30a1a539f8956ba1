"""RecurrentLayer: any cell of the protocol as a torch.nn-compatible sequence layer."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnkit import init as _init
from rnnkit.cells.base import RecurrentCell
from rnnkit.layers import _fast, _inputs, _regularisers, stack
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
        initializer: applied to the layer after the cell's default initialisation, also by
            `reset_parameters()`: a callable `f(layer)`, or `(name, kwargs)` naming a function
            of `rnnkit.init` (`("chrono_", {"t_max": 100})`), which keeps the layer
            picklable under `torch.load(weights_only=True)`.
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

    #: The cell class; the named layers (rk.LSTM, ...) set it on the class, so that a pickled
    #: layer holds no reference to it (torch.load(weights_only=True) allow-lists classes).
    cell_cls: ClassVar[type[RecurrentCell] | None] = None

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
        initializer: Callable[[nn.Module], Any] | tuple[str, dict[str, Any]] | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, ...] = 0.0,
        **cell_options: Any,
    ) -> None:
        # nn.Module's, not super()'s: rk.LSTM also derives from nn.LSTM, whose __init__ would
        # build torch.nn's own parameters.
        nn.Module.__init__(self)
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
        if type(self).cell_cls is not cell_cls:
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
        if isinstance(self, nn.RNNBase):
            # torch.nn's bookkeeping of its parameters, which nn.RNNBase's own methods use
            # (.to(), pickling, DataParallel replicas)
            self._all_weights = [list(self._names(k, d)) for k in range(num_layers)
                                 for d in range(self.num_directions)]
            self._flat_weights_names = [n for names in self._all_weights for n in names]
            self._init_flat_weights()
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

    def _names(self, k: int, d: int) -> list[str]:
        """Names of the parameters of layer k, direction d, that exist (biases may not)."""
        return [self._param_name(n, k, d) for n in self._spec_names()
                if self._param_name(n, k, d) in self._parameters]

    def layer_weights(self, k: int, d: int) -> tuple[Tensor | None, ...]:
        """Parameters of layer k, direction d, in the cell's `step` order (None: no bias)."""
        cache = self.__dict__.get("_weight_names")  # names are fixed at construction
        if cache is None:
            cache = self.__dict__["_weight_names"] = {}
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
        init = self._initializer
        if isinstance(init, tuple):
            name, kwargs = init
            getattr(_init, name)(self, **kwargs)
        elif init is not None:
            init(self)

    def flatten_parameters(self) -> None:
        """No-op, for code written against torch.nn's cuDNN layers."""

    # -- pickling, TorchScript -----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """The layer's state without its caches (they hold tuples and modules that
        `torch.load(weights_only=True)` would refuse); they are rebuilt on first use."""
        getstate = getattr(super(), "__getstate__", None)
        state = dict(getstate() if getstate is not None else self.__dict__)
        for cache in ("_weight_names", "_torch_template", "_flat_weight_refs"):
            state.pop(cache, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if isinstance(self, nn.RNNBase) and "_flat_weight_refs" not in self.__dict__:
            self._init_flat_weights()

    def __prepare_scriptable__(self) -> nn.Module:
        """torch.jit.script compiles torch.nn's twin of a standard layer, sharing this layer's
        parameters; the variants and the rnnkit-only options have no TorchScript form."""
        from rnnkit.export.torch_nn import torch_twin

        try:
            return torch_twin(self, share=True)
        except ValueError as err:
            raise RuntimeError(f"torch.jit.script cannot compile {type(self).__name__}: {err}. "
                               "Use torch.jit.trace, torch.compile or eager mode") from None

    # -- forward ------------------------------------------------------------------------------

    # torch.compile runs the layer as it is, between its graphs: its tracer cannot enter the
    # fused kernels, and would otherwise try each of the engine's Python frames on its own.
    # (The guard costs about 0.7 us a call.)
    @torch.compiler.disable
    def forward(
        self, input: Tensor | PackedSequence, hx: Any = None, *, lengths: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, Any]:
        """Run the stack over a sequence; returns (output, final state) like torch.nn."""
        if lengths is None and type(input) is Tensor:  # most calls: one crossing (_fast.py)
            done = _fast.forward(self, input, hx)
            if done is not None:
                return done
        seq = _inputs.prepare(self, input, hx, lengths)
        out, state = self._run(seq.x, seq.state, seq.lengths)
        return seq.restore(out, state)

    def step(self, x_t: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        """One time step of an unbounded stream: `forward` on a sequence of length one.

        Feeding a stream step by step, each call's state into the next, gives what `forward`
        gives on the whole sequence, in memory that does not grow with the stream's length
        (under `torch.no_grad()`, or with the state detached between calls, as in truncated
        BPTT). Unidirectional layers only: a reverse direction needs the stream's end.

        Shape: x_t (B, I) (or (I,) unbatched); hx and the returned state as in `forward`
        ((L*D, B, H) per field); the output (B, D*H).

        Example:
            >>> import rnnkit as rk
            >>> lstm = rk.LSTM(3, 5, num_layers=2).eval()
            >>> y, state = lstm.step(torch.randn(4, 3))
            >>> y, state = lstm.step(torch.randn(4, 3), state)
            >>> tuple(y.shape), tuple(state[1].shape)
            ((4, 5), (2, 4, 5))
        """
        if self.bidirectional:
            raise ValueError(f"step() streams forward in time, but this {type(self).__name__} "
                             "is bidirectional: its reverse direction needs the whole "
                             "sequence; call the layer on the sequence instead")
        if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2):
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must be one step, (B, I) or (I,), got {got}")
        x = x_t.unsqueeze(0)  # (1, B, I) or (1, I): time-major whatever batch_first says
        if self.batch_first and x_t.dim() == 2:
            x = x.transpose(0, 1)  # (B, 1, I)
        out, state = self(x, hx)
        return (out[:, 0] if self.batch_first and x_t.dim() == 2 else out[0]), state

    def _run(
        self, x: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        if _tracing():
            # torch.jit.trace and torch.onnx.export record tensor operations: torch.nn's
            # kernels (one aten::lstm, ONNX's LSTM) for the standard cells, else the
            # reference's plain ops; the fused kernels are opaque to them.
            if supports_torch(self):
                return run_torch(self, x, state, lengths)
            return stack.run_reference(self, x, state, lengths)
        if self.engine == "torch" or (self.engine == "auto" and x.is_cuda):
            if supports_torch(self):
                return run_torch(self, x, state, lengths)
            if self.engine == "torch":
                raise RuntimeError(f"engine='torch' cannot run this layer: {_why_not_torch(self)}")
        if self.engine in ("auto", "fused"):
            reason = stack.fused_reason(self, x)
            if reason is None:
                return stack.run_fused(self, x, state, lengths)
            if self.engine == "fused":
                raise RuntimeError(f"engine='fused' cannot run this layer: {reason}")
        return stack.run_reference(self, x, state, lengths)

    def _reference_direction(
        self, x: Tensor, start: tuple[Tensor, ...], params: tuple[Tensor | None, ...],
        lengths: Tensor | None, reverse: bool, h_drop: Tensor | None = None,
        zone: Any = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One direction of one layer by the cell's equations: x (T, B, I), `start` the state
        fields (B, *) -> out (T, B, H) and the final state. The fused engine's gradients of
        gradients (create_graph=True) differentiate this too."""
        step = functools.partial(self.cell_cls.step, params=params, **self.cell_options)
        if h_drop is not None:
            step = functools.partial(step, h_drop=h_drop)
        return unroll(step, x, self.cell_cls.State(*start), lengths, reverse=reverse,
                      zoneout=zone)

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


def _tracing() -> bool:
    """True while torch.jit.trace, torch.onnx.export or torch.export records the forward.
    (The TorchScript exporter traces, so is_tracing covers it; torch.onnx.is_in_onnx_export
    costs 2.6 us a call.)"""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def _why_not_torch(layer: RecurrentLayer) -> str:
    options = [name for name, on in (("recurrent_dropout", layer.recurrent_dropout > 0),
                                     ("zoneout", any(layer.zoneout))) if on]
    if options:
        return (f"torch.nn's kernels have no {' or '.join(options)}; use engine='auto' (the "
                f"fused engine) or engine='reference'")
    return (f"torch.nn runs only the standard RNN/LSTM/GRU, not {type(layer).__name__} "
            f"(mode {layer.mode!r})")
