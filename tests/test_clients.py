"""Real clients with nn swapped for rk: small copies, written here, of the patterns torch.nn code
uses (a word LM saved whole, an LSTMCell loop, a GRU decoder fed one token at a time, isinstance
init loops, quantization, ONNX export, gradient penalties, TorchScript, torch.compile)."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import Tensor, nn

import rnnkit as rk


class WordLM(nn.Module):
    """Embedding -> recurrent stack -> decoder, the shape of the classic word language model."""

    def __init__(self, rnn_cls: type, vocab: int = 50, emb: int = 12, hidden: int = 16) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = rnn_cls(emb, hidden, 2, dropout=0.2)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: Tensor, hidden: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple]:
        emb = self.drop(self.encoder(tokens))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)), hidden


def _twins(make_nn, make_rk):
    torch.manual_seed(0)
    theirs = make_nn()
    ours = make_rk()
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _lm_losses(model: nn.Module, steps: int = 3) -> list[float]:
    """A few seeded training steps with dropout on: the losses must be torch.nn's exactly."""
    torch.manual_seed(1)
    data = torch.randint(0, 50, (9, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hidden = (torch.zeros(2, 4, 16), torch.zeros(2, 4, 16))
    losses = []
    model.train()
    for _ in range(steps):
        out, hidden = model(data[:-1], hidden)
        hidden = tuple(h.detach() for h in hidden)
        loss = nn.functional.cross_entropy(out.reshape(-1, 50), data[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        losses.append(loss.item())
    return losses


def test_word_lm_trains_as_torch_nn_and_saves_whole_under_weights_only():
    theirs, ours = _twins(lambda: WordLM(nn.LSTM), lambda: WordLM(rk.LSTM))
    assert _lm_losses(ours) == pytest.approx(_lm_losses(theirs), rel=1e-5)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    safe = [WordLM, rk.LSTM, nn.Dropout, nn.Embedding, nn.Linear]
    with torch.serialization.safe_globals(safe):
        loaded = torch.load(buf, weights_only=True)
    tokens, h = torch.randint(0, 50, (5, 2)), (torch.zeros(2, 2, 16), torch.zeros(2, 2, 16))
    ours.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(tokens, h)[0], ours(tokens, h)[0], rtol=0, atol=0)
    assert loaded.rnn._flat_weights[0] is loaded.rnn.weight_ih_l0  # torch.nn's bookkeeping


def test_lstm_cell_prediction_loop_matches_torch_nn():
    """Two stacked LSTMCells over a sine wave, then 5 steps fed their own prediction."""
    def make(cell_cls):
        return nn.ModuleList([cell_cls(1, 8), cell_cls(8, 8), nn.Linear(8, 1)]).double()

    theirs, ours = _twins(lambda: make(nn.LSTMCell), lambda: make(rk.LSTMCell))
    x = torch.sin(torch.linspace(0, 6, 20, dtype=torch.float64)).view(20, 1, 1).repeat(1, 3, 1)

    def run(m):
        c1, c2, lin = m
        h1 = c_1 = h2 = c_2 = torch.zeros(3, 8, dtype=torch.float64)
        outputs = []
        for t in range(20 + 5):
            inp = x[t] if t < 20 else outputs[-1]
            h1, c_1 = c1(inp, (h1, c_1))
            h2, c_2 = c2(h1, (h2, c_2))
            outputs.append(lin(h2))
        out = torch.stack(outputs)
        grads = torch.autograd.grad(out.pow(2).mean(), list(m.parameters()))
        return out, grads

    (out_ours, g_ours), (out_theirs, g_theirs) = run(ours), run(theirs)
    torch.testing.assert_close(out_ours, out_theirs, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell_cls", [rk.GRUCell, rk.RNNCell])
def test_single_field_cells_return_a_tensor(cell_cls):
    cell = cell_cls(8, 16)
    h = cell(torch.randn(4, 8))
    assert isinstance(h, Tensor) and h.shape == (4, 16)
    assert nn.Linear(16, 3)(cell(torch.randn(4, 8), h)).shape == (4, 3)
    assert cell(torch.randn(8), h[0]).shape == (16,)  # unbatched, as torch.nn


def test_gru_decoder_one_token_at_a_time_matches_torch_nn():
    """The translation tutorial's decoder: batch 1, one GRU call per token, greedy feedback."""
    def make(gru_cls):
        return nn.ModuleDict({"emb": nn.Embedding(20, 10), "gru": gru_cls(10, 10),
                              "out": nn.Linear(10, 20)})

    theirs, ours = _twins(lambda: make(nn.GRU), lambda: make(rk.GRU))

    def decode(m, steps=8):
        token, hidden, logps = torch.tensor([[1]]), torch.randn(1, 1, 10,
                                                                generator=torch.Generator()), []
        for _ in range(steps):
            out, hidden = m["gru"](torch.relu(m["emb"](token)), hidden)
            logp = torch.log_softmax(m["out"](out[0]), dim=-1)
            logps.append(logp)
            token = logp.argmax(-1, keepdim=True).detach()
        return torch.cat(logps)

    torch.testing.assert_close(decode(ours), decode(theirs), rtol=1e-5, atol=1e-6)


def test_isinstance_init_loop_reaches_rnnkit_layers_and_cells():
    model = nn.Sequential(rk.LSTM(4, 6), rk.GRUCell(4, 6), rk.RNN(4, 6))
    touched = []
    for m in model.modules():
        if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN, nn.GRUCell)):
            for name, p in m.named_parameters():
                if "weight_hh" in name:
                    nn.init.orthogonal_(p)
                    touched.append(name)
    assert len(touched) == 3
    w = model[0].weight_hh_l0.detach()  # (4H, H): orthogonal columns
    torch.testing.assert_close(w.T @ w, torch.eye(6), atol=1e-5, rtol=0)
    assert isinstance(model[0], nn.RNNBase) and not isinstance(model[0], nn.GRU)
    model.double()  # nn.RNNBase's bookkeeping follows .to()
    assert model[0]._flat_weights[1] is model[0].weight_hh_l0
    assert model[0]._flat_weights[1].dtype == torch.float64


def test_quantize_dynamic_through_rnnkit_export():
    model = nn.Sequential()
    model.add_module("rnn", rk.LSTM(6, 16))
    model.eval()
    x = torch.randn(7, 3, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates eager quantization
        warnings.simplefilter("ignore", UserWarning)
        quantized = rk.export.quantize_dynamic(model)
    assert type(quantized.rnn).__module__.startswith("torch.ao.nn.quantized.dynamic")
    out_q = quantized(x)[0]
    out_f = model(x)[0]
    assert (out_q - out_f).abs().max() < 0.05  # int8 weights: close, not equal
    assert isinstance(model.rnn, rk.LSTM)  # the model itself is untouched


class _Head(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn
        self.out = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.rnn(x)[0])


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_of_a_model_holding_rk_layers(tmp_path, dynamo):
    ort = pytest.importorskip("onnxruntime")
    if dynamo:
        pytest.importorskip("onnxscript")
    model = _Head(rk.LSTM(3, 5, num_layers=2, bidirectional=True)).eval()
    x = torch.randn(6, 2, 3)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' own deprecation and tracer notes
        if dynamo:  # torch.export specialises recurrent layers' shapes (torch.nn's too)
            torch.onnx.export(model, (x,), str(path), verbose=False)
        else:
            torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "T", 1: "B"}})
    session = ort.InferenceSession(str(path))
    x2 = torch.randn(6, 2, 3) if dynamo else torch.randn(9, 4, 3)
    got = session.run(None, {session.get_inputs()[0].name: x2.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model(x2).detach(), rtol=1e-4, atol=1e-5)


def test_gradient_penalty_on_the_default_engine_equals_torch_nn():
    theirs, ours = _twins(lambda: nn.GRU(3, 4, 2, bidirectional=True).double(),
                          lambda: rk.GRU(3, 4, 2, bidirectional=True).double())
    results = []
    for m in (ours, theirs):
        x = torch.randn(5, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                        requires_grad=True)
        g, = torch.autograd.grad(m(x)[0].pow(2).sum(), x, create_graph=True)
        penalty = (g.norm() - 1) ** 2
        results.append((penalty, torch.autograd.grad(penalty, list(m.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layer", [rk.LSTM(3, 5), rk.LayerNormGRU(3, 5)],
                         ids=["lstm", "layernorm_gru"])
def test_jit_trace_and_torch_compile(layer):
    model = _Head(layer).eval()
    x = torch.randn(6, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates tracing
        traced = torch.jit.trace(model, (x,))
    torch.testing.assert_close(traced(x), model(x), rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, on first compile
        compiled = torch.compile(model)
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


class _ScriptHead(nn.Module):
    """_Head for torch.jit.script, whose resolver cannot read `__init__`'s string annotations
    once torch.jit.trace has seen _Head."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        self.out = nn.Linear(rnn.hidden_size, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.rnn(x)[0])


def test_jit_script_compiles_torch_nn_twins_sharing_the_parameters():
    model = _ScriptHead(rk.GRU(3, 5)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
        cell = torch.jit.script(rk.LSTMCell(3, 5))
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(scripted(x), model(x))
    assert cell(x[0])[1].shape == (2, 5)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.5)  # shared: the scripted module sees the change
    torch.testing.assert_close(scripted(x), model(x))
    with pytest.raises(RuntimeError, match="cannot compile LayerNormLSTM.*torch.jit.trace"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(rk.LayerNormLSTM(3, 5))


def test_regularisers_are_refused_by_torch_nn_kernels():
    layer = rk.LSTM(3, 5, engine="torch", zoneout=0.1)
    with pytest.raises(RuntimeError, match="no zoneout; use engine='auto'"):
        layer(torch.randn(4, 2, 3))
    layer = rk.GRU(3, 5, engine="torch", recurrent_dropout=0.2)
    layer.eval()  # recurrent dropout is off in evaluation: torch.nn's kernels are exact then
    with pytest.raises(RuntimeError, match="recurrent_dropout"):
        layer(torch.randn(4, 2, 3))


@pytest.mark.parametrize("make", [
    lambda: rk.LSTM(3, 4, 2, bidirectional=True, forget_bias=1.0),
    lambda: rk.GRU(3, 4, chrono=10), lambda: rk.RNN(3, 4, nonlinearity="relu"),
    lambda: rk.IRNN(3, 4), lambda: rk.PeepholeLSTM(3, 4), lambda: rk.LayerNormLSTM(3, 4),
    lambda: rk.LayerNormGRU(3, 4), lambda: rk.LeakyRNN(3, 4, rate=(0.1, 1.0)),
    lambda: rk.SkipRNN(3, 4, delays=(1, 2)), lambda: rk.LSTM(3, 4, zoneout=0.1),
    lambda: rk.GRUCell(3, 4), lambda: rk.LSTMCell(3, 4),
], ids=["lstm", "gru", "rnn", "irnn", "peephole", "ln_lstm", "ln_gru", "leaky", "skip",
        "zoneout", "gru_cell", "lstm_cell"])
def test_every_layer_loads_whole_with_only_its_class_allowed(make):
    module = make().eval()
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    with torch.serialization.safe_globals([type(module)]):
        loaded = torch.load(buf, weights_only=True)
    cell = isinstance(module, nn.RNNCellBase)
    x = torch.randn(2, 3) if cell else torch.randn(5, 2, 3)
    want, got = (module(x), loaded(x)) if cell else (module(x)[0], loaded(x)[0])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    loaded.reset_parameters()  # the initialiser survives as data (forget bias, chrono, ...)
