"""Seq2Seq: an RNN encoder and an RNN decoder, from the encoded state or with attention."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import engine as _engine
from rnnkit.layers import _fast
from rnnkit.layers._regularisers import Dropout
from rnnkit.models.attention import ATTENTION_KINDS, Attention
from rnnkit.models.factory import make_rnn, run_rnn

__all__ = ["Seq2Seq", "DecoderState", "ATTENTION_CHOICES"]

ATTENTION_CHOICES = ("none", *ATTENTION_KINDS)


class DecoderState(NamedTuple):
    """Everything one decoder step needs, batch-indexed so beam search can reorder it.

    rnn: the decoder layer's state, (h, c) for LSTM or h, each (L, N, H); feed: the previous
    attentional vector (N, H) for input feeding, else None; memory: encoder outputs (S, N, Hk);
    projected: their query-independent attention projection (S, N, Hq); mask: (S, N) bool.
    """

    rnn: Any
    feed: Tensor | None
    memory: Tensor | None
    projected: Tensor | None
    mask: Tensor | None


def _index(x: Any, dim: int, index: Tensor) -> Any:
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(_index(t, dim, index) for t in x)
    return x.index_select(dim, index)


class Seq2Seq(nn.Module):
    """Encoder-decoder for many-to-many tasks where the output length differs from the input's.

    The encoder (stacked, optionally bidirectional) reads the source; its final state starts
    the decoder (a bidirectional encoder's two directions are joined by `tanh(W [h_fwd;
    h_bwd])` per layer). With `attention="none"` the decoder sees the source only through that
    encoded state. Otherwise, at each step t the decoder attends over the encoder outputs:
    Luong ("dot", "general") scores with the new top hidden state h_t, Bahdanau ("bahdanau")
    with the previous one and feeds the context into the RNN input. Either way the output is
    `softmax(W_o tanh(W_c [h_t; c_t]))`. With `input_feeding` the previous attentional vector
    `tanh(W_c [h_{t-1}; c_{t-1}])` joins the next input (Luong et al. 2015). Padding is handled
    by source lengths and attention masks; batches need no sorting.

    Args:
        src_vocab_size, tgt_vocab_size: source and target vocabulary sizes.
        embedding_size: E, on both sides.
        hidden_size: H of encoder (per direction) and decoder.
        num_layers: L on both sides.
        cell: "lstm", "gru" or "rnn".
        bidirectional: bidirectional encoder.
        attention: "none", "bahdanau", "dot" or "general".
        input_feeding: feed the attentional vector back (needs attention).
        dropout: on embeddings, between layers and before the output layer.
        share_embeddings: one embedding table for both sides (needs equal vocabularies).
        tie_weights: the output layer reuses the target embedding (needs E == H).
        backend: "auto", "rnnkit" or "torch" (see `make_rnn`).
        pad_id, bos_id, eos_id: the special target ids.

    Shape:
        src: (S, B) ids, src_len (B,); tgt_in: (T, B) ids starting with BOS. forward returns
        logits (T, B, V) and attention weights (T, B, S) or None.

    Example:
        >>> m = Seq2Seq(7, 9, embedding_size=4, hidden_size=6, attention="general",
        ...             backend="torch")
        >>> src, tgt = torch.randint(4, 7, (5, 2)), torch.randint(4, 9, (3, 2))
        >>> logits, weights = m(src, torch.tensor([5, 3]), tgt)
        >>> tuple(logits.shape), tuple(weights.shape)
        ((3, 2, 9), (3, 2, 5))
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_size: int = 64,
                 hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, attention: str = "none",
                 input_feeding: bool = False, dropout: float = 0.0,
                 share_embeddings: bool = False, tie_weights: bool = False,
                 backend: str = "auto", pad_id: int = 1, bos_id: int = 2,
                 eos_id: int = 3) -> None:
        super().__init__()
        if attention not in ATTENTION_CHOICES:
            raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {attention!r}")
        if input_feeding and attention == "none":
            raise ValueError("input_feeding=True needs attention, got attention='none'")
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary, got src_vocab_size="
                             f"{src_vocab_size}, tgt_vocab_size={tgt_vocab_size}")
        if tie_weights and embedding_size != hidden_size:
            raise ValueError(f"tie_weights needs embedding_size == hidden_size, got "
                             f"embedding_size={embedding_size}, hidden_size={hidden_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.args = dict(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                         embedding_size=embedding_size, hidden_size=hidden_size,
                         num_layers=num_layers, cell=cell, bidirectional=bidirectional,
                         attention=attention, input_feeding=input_feeding, dropout=dropout,
                         share_embeddings=share_embeddings, tie_weights=tie_weights,
                         backend=backend, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        self.cell, self.attention_kind, self.input_feeding = cell, attention, input_feeding
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.num_layers, self.hidden_size = num_layers, hidden_size
        D = 2 if bidirectional else 1
        self.num_directions = D
        key_size = D * hidden_size
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_size)
        self.tgt_embedding = (self.src_embedding if share_embeddings
                              else nn.Embedding(tgt_vocab_size, embedding_size))
        self.drop = Dropout(dropout)
        self.encoder = make_rnn(cell, embedding_size, hidden_size, num_layers, dropout, backend,
                                bidirectional=bidirectional)
        n_parts = 2 if cell == "lstm" else 1
        self.bridge = (nn.ModuleList(nn.Linear(key_size, hidden_size) for _ in range(n_parts))
                       if bidirectional else None)
        dec_in = embedding_size
        if attention == "bahdanau":
            dec_in += key_size
        if input_feeding:
            dec_in += hidden_size
        self.decoder = make_rnn(cell, dec_in, hidden_size, num_layers, dropout, backend)
        self.attention = (Attention(attention, hidden_size, key_size)
                          if attention != "none" else None)
        self.combine = (nn.Linear(hidden_size + key_size, hidden_size, bias=False)
                        if attention != "none" else None)
        self.output = nn.Linear(hidden_size, tgt_vocab_size)
        if tie_weights:
            self.output.weight = self.tgt_embedding.weight

    def config(self) -> dict:
        """Constructor arguments, JSON-ready: `Seq2Seq(**m.config())` rebuilds the model."""
        return dict(self.args)

    # ---- encoder ---------------------------------------------------------------------------
    def _run_encoder(self, emb: Tensor, src_len: Tensor) -> tuple[Tensor, Any]:
        return run_rnn(self.encoder, emb, None, src_len.cpu())

    def _bridge(self, state: Any) -> Any:
        parts = state if isinstance(state, tuple) else (state,)
        if self.bridge is not None:
            L, H = self.num_layers, self.hidden_size
            joined = []
            for part, lin in zip(parts, self.bridge, strict=True):
                B = part.shape[1]
                both = part.view(L, 2, B, H).permute(0, 2, 1, 3).reshape(L, B, 2 * H)
                joined.append(torch.tanh(lin(both)))                 # (L, B, H)
            parts = tuple(joined)
        return parts if self.cell == "lstm" else parts[0]

    def init_decoder(self, src: Tensor, src_len: Tensor) -> DecoderState:
        """Encode a padded source batch; returns the decoder's starting state."""
        if src.dim() != 2:
            raise ValueError(f"src must be (S, B) token ids, got shape {tuple(src.shape)}")
        if src_len.shape != (src.shape[1],):
            raise ValueError(f"src_len must have shape ({src.shape[1]},), got "
                             f"{tuple(src_len.shape)}")
        emb = self.drop(self.src_embedding(src))                     # (S, B, E)
        memory, state = self._run_encoder(emb, src_len)              # (S, B, D*H)
        state = self._bridge(state)
        if self.attention is None:
            return DecoderState(state, None, None, None, None)
        S, B = src.shape
        mask = torch.arange(S, device=src.device).unsqueeze(1) < \
            src_len.to(src.device).unsqueeze(0)                      # (S, B)
        feed = memory.new_zeros(B, self.hidden_size) if self.input_feeding else None
        return DecoderState(state, feed, memory, self.attention.project_keys(memory), mask)

    @staticmethod
    def reorder_state(state: DecoderState, index: Tensor, keep_source: bool = False
                      ) -> DecoderState:
        """Select (and repeat) batch rows of a decoder state, as beam search needs.

        `keep_source=True` leaves the per-source parts (encoder outputs, projected keys, mask)
        where they are: for a caller that keeps every row's source in place (beam search
        reordering the hypotheses of each sentence among themselves, which share one source),
        where selecting them would copy the whole memory at every step.
        """
        if keep_source:
            return DecoderState(_index(state.rnn, 1, index), _index(state.feed, 0, index),
                                state.memory, state.projected, state.mask)
        return DecoderState(_index(state.rnn, 1, index), _index(state.feed, 0, index),
                            _index(state.memory, 1, index), _index(state.projected, 1, index),
                            _index(state.mask, 1, index))

    # ---- decoder ---------------------------------------------------------------------------
    def _top_hidden(self, rnn_state: Any) -> Tensor:
        h = rnn_state[0] if isinstance(rnn_state, tuple) else rnn_state
        return h[-1]                                                 # (N, H)

    def decode_step(self, tokens: Tensor, state: DecoderState
                    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step: tokens (N,) -> logits (N, V), new state, attention (N, S).

        Under no_grad, with a one-layer decoder on rnnkit's engine and no dropout drawn, the
        whole step is one kernel call (`rnnkit.engine.decode_step`), the inner loop of greedy,
        sampled and beam decoding; otherwise the modules run one by one.
        """
        if not torch.is_grad_enabled():
            fused = self._fused_step(tokens, state)
            if fused is not None:
                return fused
        parts = [self.drop(self.tgt_embedding(tokens))]              # (N, E)
        ctx = weights = None
        if self.attention_kind == "bahdanau":
            ctx, weights = self.attention(self._top_hidden(state.rnn), state.memory, state.mask,
                                          state.projected)           # (N, D*H), (N, S)
            parts.append(ctx)
        if self.input_feeding:
            parts.append(state.feed)
        out, rnn_state = self.decoder(torch.cat(parts, -1).unsqueeze(0), state.rnn)  # (1, N, H)
        h = out[0]
        if self.attention is None:
            vec = h
        else:
            if ctx is None:
                ctx, weights = self.attention(h, state.memory, state.mask, state.projected)
            vec = torch.tanh(self.combine(torch.cat([h, ctx], -1)))  # (N, H)
        logits = self.output(self.drop(vec))                         # (N, V)
        feed = vec if self.input_feeding else None
        return logits, DecoderState(rnn_state, feed, state.memory, state.projected,
                                    state.mask), weights

    def _fused_step(self, tokens: Tensor, state: DecoderState
                    ) -> tuple[Tensor, DecoderState, Tensor | None] | None:
        """decode_step as one engine call, or None where the modules must run."""
        if ((self.training and self.drop.p > 0) or self.tgt_embedding.max_norm is not None
                or not isinstance(tokens, Tensor)):
            return None
        flat = _fast.kernel_weights(self.decoder)
        if flat is None:
            return None
        lstm = self.cell == "lstm"
        h0, c0 = state.rnn if lstm else (state.rnn, None)
        if not isinstance(h0, Tensor) or (lstm and not isinstance(c0, Tensor)):
            return None
        empty = h0.new_empty(0)
        att = self.attention is not None
        additive = self.attention_kind == "bahdanau"
        try:
            res = _engine.decode_step(
                _engine.CODES[self.decoder.mode], tokens, self.tgt_embedding.weight,
                state.feed if self.input_feeding else empty, h0, c0 if lstm else empty, flat,
                state.memory if att else empty, state.projected if att else empty,
                state.mask if att else empty, self.combine.weight if att else empty,
                self.attention.w_query.weight if additive else empty,
                self.attention.v.weight.view(-1) if additive else empty, self.output.weight,
                self.output.bias if self.output.bias is not None else empty)
        except (ValueError, TypeError):
            return None  # the modules run, and raise their own error if the input is wrong
        if res is None:  # the engine is not loaded yet
            return None
        logits, h_n, c_n, vec, weights = res
        rnn_state = (h_n, c_n) if lstm else h_n
        return logits, DecoderState(rnn_state, vec if self.input_feeding else None,
                                    state.memory, state.projected, state.mask), \
            (weights if att else None)

    def forward(self, src: Tensor, src_len: Tensor, tgt_in: Tensor,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """Decode `tgt_in` (T, B) given the source; returns logits (T, B, V) and attention.

        `teacher_forcing` is the probability, per step and sequence, of feeding the ground-truth
        token rather than the model's own previous prediction (its argmax): 1 is teacher forcing,
        0 free running, values between are scheduled sampling's mixture. With full teacher
        forcing, no input feeding and Luong or no attention, the decoder runs over all T steps
        in one call; otherwise it runs step by step.
        """
        state = self.init_decoder(src, src_len)
        if teacher_forcing >= 1.0 and not self.input_feeding and \
                self.attention_kind != "bahdanau":
            emb = self.drop(self.tgt_embedding(tgt_in))              # (T, B, E)
            out, _ = self.decoder(emb, state.rnn)                    # (T, B, H)
            if self.attention is None:
                return self.output(self.drop(out)), None
            ctx, weights = self.attention(out, state.memory, state.mask, state.projected)
            vec = torch.tanh(self.combine(torch.cat([out, ctx], -1)))  # (T, B, H)
            return self.output(self.drop(vec)), weights
        steps, maps = [], []
        tokens = tgt_in[0]
        for t in range(tgt_in.shape[0]):
            logits, state, weights = self.decode_step(tokens, state)
            steps.append(logits)
            maps.append(weights)
            if t + 1 < tgt_in.shape[0]:
                if teacher_forcing >= 1.0:
                    tokens = tgt_in[t + 1]
                else:
                    own = logits.detach().argmax(-1)                 # (B,)
                    keep = torch.rand(tokens.shape[0], generator=generator) < teacher_forcing
                    tokens = torch.where(keep.to(own.device), tgt_in[t + 1], own)
        weights_all = torch.stack(maps) if maps[0] is not None else None
        return torch.stack(steps), weights_all

    def loss(self, src: Tensor, src_len: Tensor, tgt_in: Tensor, tgt_out: Tensor,
             teacher_forcing: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Cross-entropy in nats, averaged over the non-padding target tokens."""
        logits, _ = self(src, src_len, tgt_in, teacher_forcing, generator)  # (T, B, V)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(),
                               ignore_index=self.pad_id)
