"""Binary Tree-LSTM and binarize: the level-batched forward against a per-node recursive
reference (values and gradients), float64 gradcheck, and errors for bad trees."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from rnnkit.layers.tree import BinaryTreeLSTM, ChildSumTreeLSTM, Tree, TreeBatch, binarize

I, H = 3, 5


def _random_tree(rng: random.Random, depth: int, max_kids: int) -> Tree:
    if depth == 0 or rng.random() < 0.3:
        return Tree(rng.randrange(8))
    return Tree(rng.randrange(8), [_random_tree(rng, depth - 1, max_kids)
                                   for _ in range(rng.randint(1, max_kids))])


def _forest(seed: int, n: int, max_kids: int) -> list[Tree]:
    rng = random.Random(seed)
    return [_random_tree(rng, rng.randint(0, 4), max_kids) for _ in range(n)]


def _binary_reference(m: BinaryTreeLSTM, emb: torch.Tensor, node: Tree):
    """One Python call per node, straight from the equations (children first)."""
    zero = emb.new_zeros(H)
    kids = [_binary_reference(m, emb, k) for k in node.children]
    (h_l, c_l), (h_r, c_r) = (kids + [(zero, zero)] * 2)[:2]
    gates = (m.weight_ih @ emb[node.label] + m.bias + m.weight_hh_left @ h_l
             + m.weight_hh_right @ h_r)
    i, f_l, f_r, o, u = gates.split(H)
    c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_l) * c_l + torch.sigmoid(f_r) * c_r
    return torch.sigmoid(o) * torch.tanh(c), c


def _child_sum_reference(m: ChildSumTreeLSTM, emb: torch.Tensor, node: Tree):
    x = emb[node.label]
    kids = [_child_sum_reference(m, emb, k) for k in node.children]
    h_sum = sum((h for h, _ in kids), emb.new_zeros(H))
    i, o, u = (m.weight_iou @ x + m.bias_iou + m.weight_hiou @ h_sum).split(H)
    c = torch.sigmoid(i) * torch.tanh(u)
    for h_k, c_k in kids:
        c = c + torch.sigmoid(m.weight_f @ x + m.bias_f + m.weight_hf @ h_k) * c_k
    return torch.sigmoid(o) * torch.tanh(c), c


@pytest.mark.parametrize("Model, reference, max_kids", [
    (BinaryTreeLSTM, _binary_reference, 2), (ChildSumTreeLSTM, _child_sum_reference, 4)])
def test_level_batching_equals_per_node_recursion(Model, reference, max_kids):
    torch.manual_seed(0)
    model = Model(I, H).double()
    forest = _forest(1, 12, max_kids)
    emb = torch.randn(8, I, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(len(forest), 2 * H, dtype=torch.float64)
    batch = TreeBatch.from_trees(forest)
    assert len(batch.levels) < batch.labels.numel() / 2  # batched: far fewer steps than nodes
    h, c = model(emb[batch.labels], batch)
    fast = torch.cat([h[batch.roots], c[batch.roots]], 1)
    slow = torch.stack([torch.cat(reference(model, emb, t)) for t in forest])
    torch.testing.assert_close(fast, slow)
    params = [emb, *model.parameters()]
    g_fast = torch.autograd.grad((fast * probe).sum(), params)
    g_slow = torch.autograd.grad((slow * probe).sum(), params)
    for name, a, b in zip(["emb", *dict(model.named_parameters())], g_fast, g_slow,
                          strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"gradient of {name}: {m}")


def test_left_and_right_children_are_told_apart():
    model = BinaryTreeLSTM(I, H).double()
    emb = torch.randn(8, I, dtype=torch.float64)
    a = TreeBatch.from_trees([Tree(0, [Tree(1), Tree(2)])])
    b = TreeBatch.from_trees([Tree(0, [Tree(2), Tree(1)])])
    ha = model(emb[a.labels], a)[0][a.roots]
    hb = model(emb[b.labels], b)[0][b.roots]
    assert (ha - hb).abs().max() > 1e-4


def test_gradcheck_binary():
    model = BinaryTreeLSTM(I, H).double()
    batch = TreeBatch.from_trees([binarize(t) for t in _forest(2, 3, 3)])
    x = torch.randn(len(batch.labels), I, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5 * H, H, dtype=torch.float64, requires_grad=True)

    def fn(x, w):  # the input and the right child's recurrent matrix
        return torch.func.functional_call(model, {"weight_hh_right": w}, (x, batch))

    assert torch.autograd.gradcheck(fn, (x, w))


def _evaluate(tree: Tree) -> int:
    if not tree.children:
        return tree.label
    values = [_evaluate(c) for c in tree.children]
    return {10: max, 11: min, 12: lambda v: sum(v) % 10}[tree.label](values)


@pytest.mark.parametrize("scheme", ["left", "balanced"])
def test_binarize_keeps_values_and_leaf_order(scheme):
    from rnnkit.lab import list_ops

    def leaves(t: Tree) -> list[int]:
        return [t.label] if not t.children else [x for k in t.children for x in leaves(k)]

    def arity(t: Tree) -> int:
        return max([len(t.children), *(arity(k) for k in t.children)])

    for tree, value in list_ops(200, max_depth=4, max_args=6, generator=random.Random(0)):
        b = binarize(tree, scheme)
        assert arity(b) <= 2 and leaves(b) == leaves(tree) and _evaluate(b) == value
    five = Tree(10, [Tree(i) for i in range(5)])
    assert binarize(five, "left") == Tree(10, [Tree(10, [Tree(10, [Tree(10, [
        Tree(0), Tree(1)]), Tree(2)]), Tree(3)]), Tree(4)])
    assert binarize(five, "balanced", inner_label=99) == Tree(10, [
        Tree(99, [Tree(99, [Tree(0), Tree(1)]), Tree(2)]), Tree(99, [Tree(3), Tree(4)])])
    assert binarize(Tree(1, [Tree(2)])) == Tree(1, [Tree(2)])  # unary stays, child on the left


def test_binary_model_refuses_a_node_with_three_children():
    batch = TreeBatch.from_trees([Tree(0, [Tree(1)]), Tree(7, [Tree(1), Tree(2), Tree(3)])])
    with pytest.raises(ValueError, match=r"at most 2 children, but node 5 \(label 7\) has 3; "
                                         "binarize"):
        BinaryTreeLSTM(I, H)(torch.randn(len(batch.labels), I), batch)


def test_bad_trees_are_refused():
    with pytest.raises(ValueError, match="non-empty sequence"):
        TreeBatch.from_trees([])
    with pytest.raises(ValueError, match="non-empty sequence"):
        TreeBatch.from_trees(Tree(1))
    with pytest.raises(TypeError, match=r"a child of label 1 must be a Tree, got int"):
        TreeBatch.from_trees([Tree(1, [3])])
    with pytest.raises(TypeError, match=r"label must be an int, got 'a'"):
        TreeBatch.from_trees([Tree("a")])
    loop = Tree(1)
    loop.children.append(Tree(2, [loop]))
    with pytest.raises(ValueError, match="contains itself"):
        TreeBatch.from_trees([loop])
    with pytest.raises(ValueError, match="scheme must be"):
        binarize(Tree(1), "right")
    batch = TreeBatch.from_trees([Tree(0, [Tree(1)])])
    with pytest.raises(ValueError, match=r"x must be \(nodes=2, I=3\), got \(2, 4\)"):
        BinaryTreeLSTM(I, H)(torch.randn(2, 4), batch)


def test_deep_chain_needs_no_recursion():
    node = Tree(0)
    for _ in range(3000):  # deeper than Python's default recursion limit
        node = Tree(1, [node])
    batch = TreeBatch.from_trees([node])
    assert len(batch.levels) == 3001
    h, _ = BinaryTreeLSTM(2, 3)(torch.randn(3001, 2), batch)
    assert torch.isfinite(h).all()


def test_shapes():
    batch = TreeBatch.from_trees([binarize(t) for t in _forest(3, 4, 4)])
    h, c = BinaryTreeLSTM(I, H)(torch.randn(len(batch.labels), I), batch)
    assert h.shape == c.shape == (len(batch.labels), H)
    loss = F.mse_loss(h[batch.roots], torch.zeros(4, H))
    loss.backward()
