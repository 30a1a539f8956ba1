"""Baselines the classifier is measured against: bag-of-words (bag of n-grams) logistic
regression (texts) and 1-nearest-neighbour dynamic time warping (series)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data.vocab import Vocabulary

__all__ = ["BagOfWords", "dtw_distance", "dtw_matrix", "nn1_dtw"]


class BagOfWords:
    """Multinomial logistic regression on token and n-gram counts: `p(y | x) = softmax(W n(x)
    + b)`, `n(x)` the count of each feature in the text, fitted by full-batch L-BFGS on the mean
    cross-entropy plus `l2 / 2 * ||W||^2`.

    The features are the vocabulary's tokens and, with `ngrams=N > 1`, every run of 2..N
    consecutive known tokens seen at least `min_count` times in the texts `fit` is given
    (a bag of n-grams; n-grams first seen later are not counted).

    Args:
        vocab: the tokens counted (unknown tokens are not counted, nor n-grams holding one).
        num_classes: C.
        l2: the weight penalty.
        ngrams: the longest n-gram counted (1: tokens alone).
        min_count: n-grams (n >= 2) seen fewer times in the fitted texts are not features.

    Example:
        >>> v = Vocabulary(["<unk>", "good", "bad", "film"], "word")
        >>> bow = BagOfWords(v, 2).fit(["good film", "bad film", "good", "bad"], [1, 0, 1, 0])
        >>> bow.predict(["a good film", "bad"]).tolist()
        [1, 0]
    """

    def __init__(self, vocab: Vocabulary, num_classes: int, l2: float = 1e-4,
                 ngrams: int = 1, min_count: int = 1) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        if ngrams < 1 or min_count < 1:
            raise ValueError(f"ngrams and min_count must be >= 1, got ngrams={ngrams}, "
                             f"min_count={min_count}")
        if len(vocab) ** ngrams >= 2**63:
            raise ValueError(f"ngrams={ngrams} over {len(vocab)} tokens overflows the int64 "
                             f"n-gram keys; use fewer n")
        self.vocab, self.l2, self.ngrams, self.min_count = vocab, l2, ngrams, min_count
        self.grams: list[Tensor] = []  # sorted keys of the n-grams kept, n = 2..ngrams
        self._reset(num_classes)

    @property
    def num_features(self) -> int:
        return len(self.vocab) + sum(len(g) for g in self.grams)

    def _reset(self, num_classes: int) -> None:
        self.weight = torch.zeros(self.num_features, num_classes, dtype=torch.float64)  # (F, C)
        self.bias = torch.zeros(num_classes, dtype=torch.float64)

    def _gram_keys(self, ids: Tensor, n: int) -> Tensor:
        """One int64 key per n-gram of known tokens in `ids`: sum_k ids[t + k] V^(n-1-k)."""
        V = len(self.vocab)
        if len(ids) < n:
            return ids.new_zeros(0)
        windows = ids.unfold(0, n, 1)  # (T - n + 1, n)
        keys = torch.zeros(len(windows), dtype=torch.long)
        for k in range(n):
            keys = keys * V + windows[:, k]
        return keys[(windows != 0).all(1)]

    def _features(self, text: str) -> Tensor:
        """The feature id of every token and kept n-gram of `text` (repeats kept)."""
        ids = self.vocab.encode(text)
        out, offset = [ids[ids != 0]], len(self.vocab)
        for n, kept in enumerate(self.grams, start=2):
            keys = self._gram_keys(ids, n)
            pos = torch.searchsorted(kept, keys).clamp(max=max(len(kept) - 1, 0))
            found = kept[pos] == keys if len(kept) else torch.zeros_like(keys, dtype=bool)
            out.append(pos[found] + offset)
            offset += len(kept)
        return torch.cat(out)

    def _bags(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """n(x) as (text row, feature id, count) triples, one per distinct feature of a text."""
        F_ = self.num_features
        keys = [r * F_ + self._features(t) for r, t in enumerate(texts)]
        keys = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long)
        keys, counts = torch.unique(keys, return_counts=True)
        return keys // F_, keys % F_, counts.double()

    def _logits(self, bags: tuple[Tensor, Tensor, Tensor], n: int, W: Tensor, b: Tensor
                ) -> Tensor:
        rows, ids, counts = bags
        scores = torch.zeros(n, W.shape[1], dtype=W.dtype)  # (N, C)
        return scores.index_add_(0, rows, W[ids] * counts[:, None]) + b  # sum_v n_v W[v]

    def counts(self, texts: Sequence[str]) -> Tensor:
        """n(x) for each text, (N, F) dense (tokens first, then the kept n-grams)."""
        rows, ids, counts = self._bags(texts)
        out = torch.zeros(len(texts), self.num_features, dtype=torch.float64)
        out[rows, ids] = counts
        return out

    def logits(self, texts: Sequence[str]) -> Tensor:
        """(N, C) class scores `W^T n(x) + b`."""
        return self._logits(self._bags(texts), len(texts), self.weight, self.bias)

    def _keep_grams(self, texts: Sequence[str]) -> None:
        """The n-grams (2..ngrams) seen at least `min_count` times in `texts`."""
        self.grams = []
        encoded = [self.vocab.encode(t) for t in texts]
        for n in range(2, self.ngrams + 1):
            keys = [self._gram_keys(ids, n) for ids in encoded]
            keys, seen = torch.unique(torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long),
                                      return_counts=True)  # sorted
            self.grams.append(keys[seen >= self.min_count])

    def fit(self, texts: Sequence[str], targets: Sequence[int], max_iter: int = 100
            ) -> BagOfWords:
        """Choose the n-grams, then minimise the penalised mean cross-entropy on (texts,
        class indices)."""
        if len(texts) != len(targets) or not texts:
            raise ValueError(f"need as many targets as texts (at least one), got "
                             f"{len(texts)} texts and {len(targets)} targets")
        self._keep_grams(texts)
        self._reset(self.weight.shape[1])
        bags, N = self._bags(texts), len(texts)
        rows, ids, counts = bags
        y = torch.as_tensor(list(targets), dtype=torch.long)
        Y = F.one_hot(y, self.weight.shape[1]).double()  # (N, C)
        W = self.weight.clone().requires_grad_(True)
        b = self.bias.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([W, b], max_iter=max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            # The gradient written out: dL/dlogits = (softmax - onehot) / N,
            # dL/dW[v] = sum over texts of n_v(x) dL/dlogits(x) + l2 W[v], dL/db = sum dL/dlogits.
            with torch.no_grad():
                logits = self._logits(bags, N, W, b)  # (N, C)
                loss = F.cross_entropy(logits, y) + self.l2 / 2 * (W * W).sum()
                g = (torch.softmax(logits, -1) - Y) / N  # (N, C)
                W.grad = torch.zeros_like(W).index_add_(0, ids, g[rows] * counts[:, None]) \
                    + self.l2 * W
                b.grad = g.sum(0)
            return loss

        opt.step(closure)
        self.weight, self.bias = W.detach(), b.detach()
        return self

    def predict(self, texts: Sequence[str]) -> Tensor:
        """(N,) the most probable class of each text."""
        return self.logits(texts).argmax(-1)


def _as_series(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"a series must be a non-empty (T,) or (T, C) array, got {x.shape}")
    return np.nan_to_num(x, nan=0.0)


def dtw_matrix(queries: Sequence[np.ndarray], refs: Sequence[np.ndarray],
               window: int | None = None, block: int = 2_000_000) -> np.ndarray:
    """DTW distances between every query and every reference series, (Nq, Nr).

    The local cost of matching step i of a with step j of b is the squared Euclidean distance
    `||a_i - b_j||^2` over the channels (multivariate "dependent" DTW); the distance is the
    least total cost of a warping path from (0, 0) to (T_a - 1, T_b - 1) moving by (1, 0),
    (0, 1) or (1, 1):

        D[i, j] = cost(i, j) + min(D[i-1, j], D[i, j-1], D[i-1, j-1])

    Series may differ in length; NaN values count as 0. `window` (Sakoe-Chiba band): only
    cells with |i - j| <= window (None: no band). Queries are processed in blocks so that one
    (queries, refs, T) slab holds about `block` numbers; pairs are vectorised, steps looped.
    """
    qs = [_as_series(q) for q in queries]
    rs = [_as_series(r) for r in refs]
    if not qs or not rs:
        return np.zeros((len(qs), len(rs)))
    C = qs[0].shape[1]
    if any(s.shape[1] != C for s in qs + rs):
        raise ValueError(f"every series must have the same channels; got "
                         f"{sorted({s.shape[1] for s in qs + rs})}")
    Tr = max(r.shape[0] for r in rs)
    R = np.zeros((len(rs), Tr, C))  # (Nr, Tr, C), zero padded
    for n, r in enumerate(rs):
        R[n, : r.shape[0]] = r
    r_last = np.array([r.shape[0] - 1 for r in rs])
    out = np.empty((len(qs), len(rs)))
    step = max(1, block // (len(rs) * Tr * C))
    for start in range(0, len(qs), step):
        out[start:start + step] = _dtw_block(qs[start:start + step], R, r_last, window)
    return out


def _dtw_block(qs: list[np.ndarray], R: np.ndarray, r_last: np.ndarray,
               window: int | None) -> np.ndarray:
    Nr, Tr, C = R.shape
    Tq = max(q.shape[0] for q in qs)
    Q = np.zeros((len(qs), Tq, C))  # (Nq, Tq, C)
    for n, q in enumerate(qs):
        Q[n, : q.shape[0]] = q
    q_last = np.array([q.shape[0] - 1 for q in qs])
    result = np.full((len(qs), Nr), np.inf)
    cols = np.arange(Tr)
    prev = np.full((len(qs), Nr, Tr), np.inf)  # D[i-1, :] for every pair
    for i in range(Tq):
        cost = ((Q[:, None, None, i, :] - R[None, :, :, :]) ** 2).sum(-1)  # (Nq, Nr, Tr)
        if window is not None:
            cost[:, :, np.abs(cols - i) > window] = np.inf
        cur = np.empty_like(cost)
        # From above (i-1, j) or diagonally (i-1, j-1): known for every j at once.
        diag_up = prev.copy()
        diag_up[:, :, 1:] = np.minimum(prev[:, :, 1:], prev[:, :, :-1])
        if i == 0:
            diag_up[:, :, 0] = 0.0  # the path starts at (0, 0)
        cur[:, :, 0] = cost[:, :, 0] + diag_up[:, :, 0]
        for j in range(1, Tr):  # from the left (i, j-1): sequential along the row
            cur[:, :, j] = cost[:, :, j] + np.minimum(diag_up[:, :, j], cur[:, :, j - 1])
        done = q_last == i
        if done.any():
            result[done] = cur[done][:, np.arange(Nr), r_last]
        prev = cur
    return result


def dtw_distance(a: np.ndarray, b: np.ndarray, window: int | None = None) -> float:
    """The DTW distance of two (T,) or (T, C) series (see `dtw_matrix`).

    Example:
        >>> dtw_distance([0.0, 1.0, 2.0], [0.0, 0.0, 1.0, 2.0])
        0.0
        >>> dtw_distance([0.0, 1.0], [0.0, 3.0])
        4.0
    """
    return float(dtw_matrix([np.asarray(a)], [np.asarray(b)], window)[0, 0])


def nn1_dtw(train: Sequence[np.ndarray], train_labels: Sequence[str],
            test: Sequence[np.ndarray], window: int | None = None) -> list[str]:
    """The label of each test series' nearest training series under DTW (ties: the first)."""
    if len(train) != len(train_labels) or not train:
        raise ValueError(f"need one label per training series (at least one), got "
                         f"{len(train)} series and {len(train_labels)} labels")
    nearest = dtw_matrix(test, train, window).argmin(axis=1)
    return [train_labels[int(k)] for k in nearest]
