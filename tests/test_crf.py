"""CRF: log partition and Viterbi against enumeration of every tag sequence, the gold score
against its definition, masks, and a float64 gradient check of the NLL."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnkit.models.crf import CRF


def _crf(C, seed):
    torch.manual_seed(seed)
    crf = CRF(C).double()
    with torch.no_grad():  # random, not the zero init, so start / end matter
        crf.start.normal_()
        crf.end.normal_()
        crf.transitions.normal_()
    return crf


def _path_score(crf, e, path):
    """The score of one tag path written out from the definition; e (n, C)."""
    s = crf.start[path[0]] + e[0, path[0]]
    for t in range(1, len(path)):
        s = s + crf.transitions[path[t - 1], path[t]] + e[t, path[t]]
    return s + crf.end[path[-1]]


def _brute(crf, e):
    """(log Z, best path, best score) over all C^n paths of one sentence e (n, C)."""
    n, C = e.shape
    paths = list(itertools.product(range(C), repeat=n))
    scores = torch.stack([_path_score(crf, e, p) for p in paths])
    best = int(scores.argmax())
    return torch.logsumexp(scores, 0), list(paths[best]), scores[best]


def _batch(lengths, C, seed):
    g = torch.Generator().manual_seed(seed)
    T, B = max(lengths), len(lengths)
    e = torch.randn(T, B, C, generator=g, dtype=torch.float64)
    mask = torch.arange(T).unsqueeze(1) < torch.tensor(lengths).unsqueeze(0)
    return e, mask


@pytest.mark.parametrize("C,lengths", [(3, [1]), (3, [4, 1, 2]), (2, [5, 3]),
                                       (4, [3, 3, 1, 2])])
def test_log_partition_and_viterbi_match_enumeration(C, lengths):
    crf = _crf(C, seed=len(lengths) + C)
    e, mask = _batch(lengths, C, seed=C)
    e[~mask] = 1e3  # padding must not leak into any result
    logz = crf.log_partition(e, mask)
    paths = crf.decode(e, mask)
    for b, n in enumerate(lengths):
        want_z, want_path, want_best = _brute(crf, e[:n, b])
        torch.testing.assert_close(logz[b], want_z)
        assert paths[b] == want_path
        torch.testing.assert_close(_path_score(crf, e[:n, b], paths[b]), want_best)


def test_score_and_nll_are_a_distribution():
    C, lengths = 3, [3, 1, 2]
    crf = _crf(C, seed=7)
    e, mask = _batch(lengths, C, seed=3)
    # every path of sentence 0 (length 3): probabilities exp(-nll) sum to 1
    total = 0.0
    for p in itertools.product(range(C), repeat=3):
        tags = torch.zeros(3, 3, dtype=torch.long)
        tags[:, 0] = torch.tensor(p)
        tags[0, 1], tags[:2, 2] = 2, torch.tensor([1, 0])
        s = crf.score(e, tags, mask)
        torch.testing.assert_close(s[0], _path_score(crf, e[:3, 0], list(p)))
        torch.testing.assert_close(s[1], _path_score(crf, e[:1, 1], [2]))
        torch.testing.assert_close(s[2], _path_score(crf, e[:2, 2], [1, 0]))
        total += float(torch.exp(-crf.nll(e, tags, mask)[0]).detach())
    assert total == pytest.approx(1.0, abs=1e-10)


class _NLL(torch.nn.Module):
    """A module whose forward is the CRF's NLL, for torch.func.functional_call."""

    def __init__(self, crf):
        super().__init__()
        self.crf = crf

    def forward(self, e, tags, mask):
        return self.crf.nll(e, tags, mask)


def test_nll_gradcheck_float64():
    """Gradients of the NLL with respect to the emissions and all three parameter tensors."""
    from torch.func import functional_call

    C, lengths = 3, [4, 2, 1]
    module = _NLL(_crf(C, seed=11))
    e, mask = _batch(lengths, C, seed=5)
    tags = torch.randint(0, C, (4, 3), generator=torch.Generator().manual_seed(1))
    names = ["crf.start", "crf.end", "crf.transitions"]
    params = [dict(module.named_parameters())[n].detach().clone().requires_grad_(True)
              for n in names]

    def nll(e, *ps):
        return functional_call(module, dict(zip(names, ps, strict=True)), (e, tags, mask))

    assert torch.autograd.gradcheck(nll, (e.requires_grad_(True), *params))


def test_errors_name_the_problem():
    crf = CRF(3)
    with pytest.raises(ValueError, match=r"emissions must be \(T, B, 3\)"):
        crf.log_partition(torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match="at least one valid step"):
        crf.decode(torch.randn(2, 2, 3), torch.tensor([[1, 0], [1, 1]]).bool())
