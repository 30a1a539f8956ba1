"""What each task model exports to ONNX: its graphs, their inputs and outputs, example inputs.

Every graph takes the sequences' `lengths` (B,) as an input where the model reads sequences, and
has dynamic batch (B) and time (T, S) axes. `graphs(model)` lists them (`export_model` in
`rnnkit.export.onnx` writes them); the modules here are thin wrappers that call the model's own
submodules, after `for_export` has put GraphLayers in place of its recurrent layers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.export.graph_layers import GraphLayer, for_export
from rnnkit.models import (
    ConditionalGenerator,
    Forecaster,
    LanguageModel,
    PianoRollModel,
    Seq2Seq,
    SequenceClassifier,
    SequenceTagger,
)
from rnnkit.models.seq2seq import DecoderState

__all__ = ["Graph", "graphs", "SUPPORTED"]

_T, _B = 5, 3  # the example's sizes; the graphs take any
_LENGTHS = torch.tensor([5, 2, 4])


@dataclass
class Graph:
    """One ONNX graph of a model: the module to trace, its named example inputs, the names of
    its outputs, the dynamic axes of each, and a line saying what it computes."""

    suffix: str  # "" for a model's only graph, ".encoder" / ".decoder" for Seq2Seq's two
    module: nn.Module
    inputs: dict[str, Tensor]
    outputs: list[str]
    what: str
    axes: dict[str, dict[int, str]] = field(default_factory=dict)


def _fields(layer: nn.Module) -> tuple[str, ...]:
    if not isinstance(layer, GraphLayer):
        raise TypeError(f"expected a GraphLayer, got {type(layer).__name__}")
    return layer.fields


def _state_axes(names: list[str]) -> dict[str, dict[int, str]]:
    return {n: {1: "B"} for n in names}


def _tokens(vocab: int) -> Tensor:
    return torch.randint(0, vocab, (_T, _B))


class _Call(nn.Module):
    """`model(x, lengths)`: the model's own forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.model(x, lengths)


class _LanguageModel(nn.Module):
    def __init__(self, model: LanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        out, final = m.rnn(m.drop(m.embedding(tokens)), state if len(state) > 1 else state[0],
                           lengths=lengths)
        return (m.decoder(m.drop(out)), *_as_tuple(final))


class _Forecaster(nn.Module):
    def __init__(self, model: Forecaster) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        m = self.model
        _, state = m.rnn((x - m.mean) / m.scale, lengths=lengths)
        h = _as_tuple(state)[0][-1]  # (B, H): the top layer at each sequence's last step
        return m.head(h).view(-1, m.horizon, m.num_features) * m.scale + m.mean


class _Conditional(nn.Module):
    def __init__(self, model: ConditionalGenerator) -> None:
        super().__init__()
        self.model = model

    def forward(self, condition: Tensor, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        emb = m.drop(m.embedding(tokens))  # (T, B, E)
        if m.condition_every_step:
            emb = torch.cat([emb, condition.unsqueeze(0).expand(emb.shape[0], -1, -1)], dim=-1)
        out, state = m.rnn(emb, m.initial_state(condition), lengths=lengths)
        return (m.decoder(m.drop(out)), *_as_tuple(state))


class _Encoder(nn.Module):
    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_len: Tensor) -> tuple[Tensor, ...]:
        s = self.model.init_decoder(src, src_len)
        return (*_as_tuple(s.rnn), *[t for t in s[1:] if t is not None])


class _DecoderStep(nn.Module):
    def __init__(self, model: Seq2Seq, n_fields: int) -> None:
        super().__init__()
        self.model, self.n_fields = model, n_fields

    def forward(self, tokens: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
        m, n = self.model, self.n_fields
        rnn = inputs[:n] if n > 1 else inputs[0]
        rest = list(inputs[n:])
        feed = rest.pop(0) if m.input_feeding else None
        memory, projected, mask = rest if m.attention is not None else (None, None, None)
        logits, state, weights = m.decode_step(tokens, DecoderState(rnn, feed, memory,
                                                                    projected, mask))
        extra = [state.feed] if m.input_feeding else []
        return (logits, *_as_tuple(state.rnn), *extra, *([weights] if weights is not None
                                                        else []))


def _as_tuple(state: Any) -> tuple[Tensor, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _sequence_model(exported: nn.Module, vocab: int | None, features: int, output: str,
                    out_axes: dict[int, str], what: str) -> list[Graph]:
    name = "tokens" if vocab else "x"
    x = _tokens(vocab) if vocab else torch.randn(_T, _B, features)
    return [Graph("", _Call(exported), {name: x, "lengths": _LENGTHS}, [output], what,
                  {name: {0: "T", 1: "B"}, "lengths": {0: "B"}, output: out_axes})]


def _seq2seq(model: Seq2Seq, exported: Seq2Seq) -> list[Graph]:
    fields = list(_fields(exported.decoder))
    B, S, H = _B, _T, model.hidden_size
    L = model.num_layers
    src = torch.randint(4, model.src_embedding.num_embeddings, (S, B))
    enc_out = list(fields)
    dec_in: dict[str, Tensor] = {"tokens": torch.randint(4, model.output.out_features, (B,))}
    dec_in.update({f: torch.randn(L, B, H) for f in fields})
    axes: dict[str, dict[int, str]] = _state_axes(fields)
    if model.input_feeding:
        enc_out.append("feed")
        dec_in["feed"] = torch.randn(B, H)
        axes["feed"] = {0: "B"}
    if model.attention is not None:
        enc_out += ["memory", "projected", "mask"]
        with torch.no_grad():
            memory = exported.encoder(exported.src_embedding(src), lengths=_LENGTHS)[0]
            dec_in.update(memory=memory, projected=exported.attention.project_keys(memory),
                          mask=torch.arange(S).unsqueeze(1) < _LENGTHS.unsqueeze(0))
        axes.update(memory={0: "S", 1: "B"}, projected={0: "S", 1: "B"}, mask={0: "S", 1: "B"})
    dec_out = ["logits", *[f"{f}_n" for f in fields]]
    dec_out += ["feed_n"] if model.input_feeding else []
    dec_out += ["attention"] if model.attention is not None else []
    dec_axes = dict(axes)
    dec_axes.update({"tokens": {0: "B"}, "logits": {0: "B"}, "feed_n": {0: "B"},
                     "attention": {0: "B", 1: "S"}}, **_state_axes([f"{f}_n" for f in fields]))
    encoder = Graph(".encoder", _Encoder(exported), {"src": src, "src_len": _LENGTHS}, enc_out,
                    "encoder: source ids and lengths -> the decoder's first state "
                    "(the inputs of the decoder graph but tokens)",
                    {"src": {0: "S", 1: "B"}, "src_len": {0: "B"}, **axes})
    decoder = Graph(".decoder", _DecoderStep(exported, len(fields)), dec_in, dec_out,
                    "one decoder step: previous tokens (B,) and the state -> next-token logits "
                    "and the new state; greedy, sampling or beam search loop around it", dec_axes)
    return [encoder, decoder]


def graphs(model: nn.Module) -> list[Graph]:
    """The ONNX graphs that export `model` (one, or Seq2Seq's encoder and decoder step).

    Raises:
        ValueError: a model class with no export defined here, or a module with no ONNX form.
    """
    cls = type(model)
    if cls not in SUPPORTED and cls.__name__ != "_TaskModel":
        raise ValueError(f"cannot export a {cls.__name__}: rnnkit exports "
                         f"{', '.join(c.__name__ for c in SUPPORTED)} and the lab task model "
                         f"(for any other module use rnnkit.export.export_onnx with your own "
                         f"example inputs)")
    if any(t.device.type != "cpu" for t in [*model.parameters(), *model.buffers()]):
        model = copy.deepcopy(model).cpu()  # the graph is written from CPU examples
    exported = for_export(model)
    if isinstance(model, LanguageModel):
        fields = _fields(exported.rnn)
        L, H = model.args["num_layers"], model.args["hidden_size"]
        inputs = {"tokens": _tokens(model.args["vocab_size"]), "lengths": _LENGTHS,
                  **{f"{f}0": torch.randn(L, _B, H) for f in fields}}
        outs = ["logits", *[f"{f}_n" for f in fields]]
        return [Graph("", _LanguageModel(exported), inputs, outs,
                      "next-token logits at every step and the state at each sequence's last "
                      "step (feed it back as the next call's state to continue)",
                      {"tokens": {0: "T", 1: "B"}, "lengths": {0: "B"},
                       "logits": {0: "T", 1: "B"}, **_state_axes([f"{f}0" for f in fields]),
                       **_state_axes(outs[1:])})]
    if isinstance(model, Seq2Seq):
        return _seq2seq(model, exported)
    if isinstance(model, Forecaster):
        x = torch.randn(_T, _B, model.num_features)
        return [Graph("", _Forecaster(exported), {"x": x, "lengths": _LENGTHS}, ["forecast"],
                      "the next `horizon` values after each sequence's last valid step",
                      {"x": {0: "T", 1: "B"}, "lengths": {0: "B"}, "forecast": {0: "B"}})]
    if isinstance(model, ConditionalGenerator):
        fields = _fields(exported.rnn)
        v = torch.randn(_B, model.init_state.in_features)
        inputs = {"condition": v, "tokens": _tokens(model.decoder.out_features),
                  "lengths": _LENGTHS}
        outs = ["logits", *[f"{f}_n" for f in fields]]
        return [Graph("", _Conditional(exported), inputs, outs,
                      "teacher-forced logits at every step from the condition's initial state, "
                      "and the final state",
                      {"condition": {0: "B"}, "tokens": {0: "T", 1: "B"}, "lengths": {0: "B"},
                       "logits": {0: "T", 1: "B"}, **_state_axes(outs[1:])})]
    if isinstance(model, PianoRollModel):
        return _sequence_model(exported, None, model.num_keys, "logits",
                               {0: "T", 1: "B"}, "next-frame key logits at every step")
    if isinstance(model, (SequenceClassifier, SequenceTagger)):
        enc = model.inputs
        per_step = isinstance(model, SequenceTagger)
        return _sequence_model(exported, enc.vocab_size, enc.input_size, "logits",
                               {0: "T", 1: "B"} if per_step else {0: "B"},
                               "tag logits at every step" if per_step else "class logits")
    # the lab's task model: embedded symbols or raw values -> one layer -> a read-out
    vocab = model.embed.num_embeddings if model.embed is not None else None
    features = model.rnn.input_size
    return _sequence_model(exported, vocab, features, "y",
                           {0: "T", 1: "B"} if model.per_step else {0: "B"},
                           "the task's read-out (every step for copy, else the last step)")


SUPPORTED = (LanguageModel, SequenceClassifier, SequenceTagger, PianoRollModel, Forecaster,
             ConditionalGenerator, Seq2Seq)
