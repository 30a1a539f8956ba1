"""Tests for Seq2Seq and attention: code paths, teacher forcing vs free running, padding."""

import pytest
import torch

from rnnkit.decoding.greedy import greedy_decode
from rnnkit.models.attention import Attention
from rnnkit.models.seq2seq import Seq2Seq

V_SRC, V_TGT = 11, 9


def _model(**kw) -> Seq2Seq:
    args = dict(embedding_size=6, hidden_size=5, backend="torch")
    args.update(kw)
    return Seq2Seq(V_SRC, V_TGT, **args).eval()


def _batch(lengths=(4, 2, 3), T=5):
    S = max(lengths)
    src = torch.randint(4, V_SRC, (S, len(lengths)))
    for b, n in enumerate(lengths):
        src[n:, b] = 1
    tgt = torch.randint(4, V_TGT, (T, len(lengths)))
    tgt[0] = 2
    return src, torch.tensor(lengths), tgt


def _stepwise(m: Seq2Seq, src, src_len, tgt):
    state = m.init_decoder(src, src_len)
    steps = []
    for t in range(tgt.shape[0]):
        logits, state, _ = m.decode_step(tgt[t], state)
        steps.append(logits)
    return torch.stack(steps)


@pytest.mark.parametrize("kind", ["bahdanau", "dot", "general"])
def test_attention_ignores_padding_and_weights_sum_to_one(kind):
    att = Attention(kind, query_size=4, key_size=4)
    keys = torch.randn(5, 2, 4)
    mask = torch.tensor([[True, True]] * 2 + [[True, False]] * 3)
    ctx, w = att(torch.randn(3, 2, 4), keys, mask)
    assert torch.allclose(w.sum(-1), torch.ones(3, 2))
    assert torch.all(w[:, 1, 2:] == 0)
    changed = keys.clone()
    changed[2:, 1] = 100.0  # padding of row 1
    query = torch.randn(3, 2, 4)
    assert torch.allclose(att(query, changed, mask)[0][:, 1], att(query, keys, mask)[0][:, 1])
    assert ctx.shape == (3, 2, 4)


@pytest.mark.parametrize("attention", ["none", "dot", "general"])
def test_one_call_teacher_forcing_equals_step_by_step(attention):
    m = _model(attention=attention, hidden_size=6, num_layers=2, cell="lstm")
    src, src_len, tgt = _batch()
    fast, _ = m(src, src_len, tgt)
    assert torch.allclose(fast, _stepwise(m, src, src_len, tgt), atol=1e-6)


def test_free_running_ignores_ground_truth_and_matches_greedy():
    m = _model(attention="bahdanau", input_feeding=True, bidirectional=True, cell="gru")
    src, src_len, tgt = _batch(T=6)
    free, _ = m(src, src_len, tgt, teacher_forcing=0.0)
    other = tgt.clone()
    other[1:] = torch.randint(4, V_TGT, other[1:].shape)
    assert torch.equal(free, m(src, src_len, other, teacher_forcing=0.0)[0])
    forced, _ = m(src, src_len, tgt, teacher_forcing=1.0)
    assert not torch.allclose(free[1:], forced[1:])
    hyps = greedy_decode(m, m.init_decoder(src, src_len), tgt[0], eos_id=-1, max_len=6)
    assert [h.tokens for h in hyps] == free.argmax(-1).t().tolist()


def test_free_running_trains_gradients_flow_and_ratio_mixes():
    m = _model(attention="general").train()
    src, src_len, tgt = _batch()
    loss = m.loss(src, src_len, tgt, tgt, teacher_forcing=0.0)
    loss.backward()
    assert m.src_embedding.weight.grad.abs().sum() > 0
    g = torch.Generator().manual_seed(0)
    half, _ = m.eval()(src, src_len, tgt, teacher_forcing=0.5, generator=g)
    assert half.shape == (5, 3, V_TGT)


@pytest.mark.parametrize("kw", [
    dict(attention="none", cell="lstm", num_layers=2, bidirectional=True),
    dict(attention="bahdanau", cell="gru", input_feeding=True),
    dict(attention="general", cell="lstm", bidirectional=True, backend="rnnkit"),
    dict(attention="dot", cell="rnn", hidden_size=6, backend="rnnkit"),
])
def test_padding_never_changes_a_sequence_output(kw):
    m = _model(**kw)
    src, src_len, tgt = _batch(lengths=(5, 2, 3))
    batch_logits, _ = m(src, src_len, tgt, teacher_forcing=0.0)
    batch_hyps = greedy_decode(m, m.init_decoder(src, src_len), tgt[0], 3, 8)
    for b, n in enumerate(src_len.tolist()):
        one_src = src[:n, b:b + 1]
        alone, _ = m(one_src, src_len[b:b + 1], tgt[:, b:b + 1], teacher_forcing=0.0)
        assert torch.allclose(alone[:, 0], batch_logits[:, b], atol=1e-5)
        hyp = greedy_decode(m, m.init_decoder(one_src, src_len[b:b + 1]), tgt[0, b:b + 1], 3, 8)
        assert hyp[0].tokens == batch_hyps[b].tokens


def test_shared_embeddings_and_tied_output():
    m = Seq2Seq(10, 10, embedding_size=8, hidden_size=8, share_embeddings=True,
                tie_weights=True, backend="torch")
    assert m.src_embedding is m.tgt_embedding
    assert m.output.weight is m.tgt_embedding.weight
    assert Seq2Seq(**m.config()).config() == m.config()


@pytest.mark.parametrize("kw, match", [
    (dict(attention="luong"), "attention must be one of"),
    (dict(attention="none", input_feeding=True), "input_feeding=True needs attention"),
    (dict(attention="dot", bidirectional=True), "dot attention needs query_size == key_size"),
    (dict(tie_weights=True, embedding_size=4), "tie_weights needs embedding_size == hidden"),
    (dict(share_embeddings=True), "share_embeddings needs one vocabulary"),
])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        _model(**kw)


def test_source_shape_errors_name_the_argument():
    m = _model()
    with pytest.raises(ValueError, match=r"src_len must have shape \(3,\)"):
        m.init_decoder(torch.zeros(4, 3, dtype=torch.long), torch.tensor([1, 2]))
