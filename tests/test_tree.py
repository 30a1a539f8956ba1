"""Tree-structured nets: level batching, the Tree-LSTM equations, order invariance, gradients."""

from __future__ import annotations

import pytest
import torch

from rnnkit.lab import list_ops
from rnnkit.layers.tree import ChildSumTreeLSTM, Tree, TreeBatch, TreeRNN

I, H = 3, 4


def _forest() -> list[Tree]:
    return [Tree(0, [Tree(1), Tree(2, [Tree(3), Tree(4)])]), Tree(5), Tree(6, [Tree(7)])]


def test_tree_batch_orders_children_before_parents():
    batch = TreeBatch.from_trees(_forest())
    assert len(batch.labels) == 8 and batch.labels[batch.roots].tolist() == [0, 5, 6]
    level_of = {int(n): lvl for lvl, nodes in enumerate(batch.levels) for n in nodes}
    edges = set()
    for lvl, (nodes, kids, owner) in enumerate(zip(batch.levels, batch.child_index,
                                                   batch.child_owner, strict=True)):
        for k, o in zip(kids.tolist(), owner.tolist(), strict=True):
            assert level_of[k] < lvl
            edges.add((int(batch.labels[nodes[o]]), int(batch.labels[k])))
    assert edges == {(0, 1), (0, 2), (2, 3), (2, 4), (6, 7)}
    assert [len(n) for n in batch.levels] == [5, 2, 1]  # leaves; (2: 3,4), (6: 7); root 0


def test_tree_lstm_node_equations():
    """The root of Tree(0, [leaf a, leaf b]) computed by hand."""
    cell = ChildSumTreeLSTM(I, H).double()
    batch = TreeBatch.from_trees([Tree(0, [Tree(1), Tree(2)])])
    x = torch.randn(3, I, dtype=torch.float64)
    h, c = cell(x, batch)
    Wi, Ui, bi = cell.weight_iou, cell.weight_hiou, cell.bias_iou

    def leaf(xn):
        i, o, u = (xn @ Wi.T + bi).chunk(3)
        c = torch.sigmoid(i) * torch.tanh(u)
        return torch.sigmoid(o) * torch.tanh(c), c

    (ha, ca), (hb, cb) = leaf(x[0]), leaf(x[1])  # children are nodes 0 and 1, the root is 2
    i, o, u = (x[2] @ Wi.T + bi + (ha + hb) @ Ui.T).chunk(3)
    fa = torch.sigmoid(x[2] @ cell.weight_f.T + cell.bias_f + ha @ cell.weight_hf.T)
    fb = torch.sigmoid(x[2] @ cell.weight_f.T + cell.bias_f + hb @ cell.weight_hf.T)
    c_root = torch.sigmoid(i) * torch.tanh(u) + fa * ca + fb * cb
    torch.testing.assert_close(c[2], c_root)
    torch.testing.assert_close(h[2], torch.sigmoid(o) * torch.tanh(c_root))


@pytest.mark.parametrize("Model", [ChildSumTreeLSTM, TreeRNN])
def test_batch_equals_one_tree_at_a_time(Model):
    model = Model(I, H).double()
    emb = torch.randn(8, I, dtype=torch.float64)
    forest = _forest()
    batch = TreeBatch.from_trees(forest)
    out = model(emb[batch.labels], batch)
    h = out[0] if isinstance(out, tuple) else out
    for tree, root in zip(forest, batch.roots.tolist(), strict=True):
        single = TreeBatch.from_trees([tree])
        alone = model(emb[single.labels], single)
        alone = alone[0] if isinstance(alone, tuple) else alone
        torch.testing.assert_close(h[root], alone[single.roots[0]])


def test_child_order_does_not_matter():
    model = ChildSumTreeLSTM(I, H).double()
    emb = torch.randn(8, I, dtype=torch.float64)
    a = TreeBatch.from_trees([Tree(0, [Tree(1), Tree(2, [Tree(3)])])])
    b = TreeBatch.from_trees([Tree(0, [Tree(2, [Tree(3)]), Tree(1)])])
    ha = model(emb[a.labels], a)[0][a.roots]
    hb = model(emb[b.labels], b)[0][b.roots]
    torch.testing.assert_close(ha, hb)


@pytest.mark.parametrize("Model", [ChildSumTreeLSTM, TreeRNN])
def test_gradcheck(Model):
    model = Model(I, H).double()
    batch = TreeBatch.from_trees(_forest())
    x = torch.randn(8, I, dtype=torch.float64, requires_grad=True)

    def fn(x):
        out = model(x, batch)
        return out if isinstance(out, tuple) else (out,)

    assert torch.autograd.gradcheck(fn, (x,))


def test_list_ops_values():
    for tree, value in list_ops(50, max_depth=3, generator=torch.Generator().manual_seed(1)):
        assert value == _evaluate(tree)


def _evaluate(tree: Tree) -> int:
    if not tree.children:
        return tree.label
    values = [_evaluate(c) for c in tree.children]
    return {10: max, 11: min, 12: lambda v: sum(v) % 10}[tree.label](values)


def test_wrong_input_shape():
    batch = TreeBatch.from_trees(_forest())
    with pytest.raises(ValueError, match=r"x must be \(nodes=8, I=3\)"):
        TreeRNN(I, H)(torch.randn(7, I), batch)


def test_tree_lstm_learns_max_of_digits():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = list_ops(600, max_depth=1, max_args=3, ops=("MAX",), generator=g)
    emb = torch.nn.Embedding(13, 16)
    tree = ChildSumTreeLSTM(16, 32)
    head = torch.nn.Linear(32, 10)
    params = [*emb.parameters(), *tree.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)

    def logits(items):
        batch = TreeBatch.from_trees([t for t, _ in items])
        return head(tree(emb(batch.labels), batch)[0][batch.roots])

    train, test = data[:500], data[500:]
    for _ in range(4):
        for i in range(0, len(train), 25):
            items = train[i:i + 25]
            loss = torch.nn.functional.cross_entropy(logits(items),
                                                     torch.tensor([v for _, v in items]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        accuracy = (logits(test).argmax(-1) == torch.tensor([v for _, v in test])).float().mean()
    assert accuracy > 0.8  # always answering 9 scores about 0.25
