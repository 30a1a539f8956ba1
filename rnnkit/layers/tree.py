"""Tree-structured (recursive) networks: Child-Sum and binary (N-ary, N = 2) Tree-LSTMs, a
recursive tanh net, and `binarize` for n-ary trees."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Tree", "TreeBatch", "ChildSumTreeLSTM", "BinaryTreeLSTM", "TreeRNN", "binarize"]


@dataclass
class Tree:
    """A node with a label (an int token) and any number of children."""

    label: int
    children: list[Tree] = field(default_factory=list)

    def size(self) -> int:
        return 1 + sum(c.size() for c in self.children)


@dataclass
class TreeBatch:
    """A forest flattened for level-by-level batching.

    Nodes are numbered so that children come before parents. `levels[l]` holds the nodes whose
    longest path down to a leaf has l edges; every child of a node at level l is at a lower
    level, so one pass over the levels computes all nodes with one batched step per level.
    """

    labels: Tensor  # (N,) int64 node labels
    levels: list[Tensor]  # per level: (n_l,) node indices
    child_index: list[Tensor]  # per level: (E_l,) indices of the children of that level's nodes
    child_owner: list[Tensor]  # per level: (E_l,) position of each child's parent in the level
    roots: Tensor  # (num_trees,) root node indices
    child_rank: list[Tensor] = field(default_factory=list)  # per level: (E_l,) 0 = first child

    @classmethod
    def from_trees(cls, trees: Sequence[Tree]) -> TreeBatch:
        """Flatten `trees` (a non-empty sequence of `Tree`); iterative, so any depth works.

        Raises ValueError for an empty forest or a tree that contains itself, TypeError for a
        node that is not a `Tree` or a label that is not an int.
        """
        if isinstance(trees, Tree) or not len(trees):
            raise ValueError("from_trees needs a non-empty sequence of Tree, got "
                             + (repr(trees) if isinstance(trees, Tree) else "an empty one"))
        labels: list[int] = []
        children: list[list[int]] = []
        height: list[int] = []
        roots: list[int] = []
        for t, tree in enumerate(trees):
            # post-order by an explicit stack: (node, its children's indices so far)
            stack: list[tuple[Tree, list[int]]] = [(_checked(tree, f"trees[{t}]"), [])]
            on_path = {id(tree)}
            while stack:
                node, done = stack[-1]
                if len(done) < len(node.children):
                    kid = _checked(node.children[len(done)], f"a child of label {node.label}")
                    if id(kid) in on_path:
                        raise ValueError(f"trees[{t}] contains itself (node label {kid.label} "
                                         "is its own descendant); a tree must be acyclic")
                    on_path.add(id(kid))
                    stack.append((kid, []))
                    continue
                stack.pop()
                on_path.discard(id(node))
                labels.append(node.label)
                children.append(done)
                height.append(1 + max((height[k] for k in done), default=-1))
                index = len(labels) - 1
                if stack:
                    stack[-1][1].append(index)
                else:
                    roots.append(index)
        by_level: list[list[int]] = [[] for _ in range(max(height) + 1)]
        for node, lvl in enumerate(height):
            by_level[lvl].append(node)
        child_index, child_owner, child_rank = [], [], []
        for nodes in by_level:
            child_index.append(torch.tensor([k for n in nodes for k in children[n]],
                                            dtype=torch.long))
            child_owner.append(torch.tensor([pos for pos, n in enumerate(nodes)
                                             for _ in children[n]], dtype=torch.long))
            child_rank.append(torch.tensor([r for n in nodes for r in range(len(children[n]))],
                                           dtype=torch.long))
        return cls(torch.tensor(labels, dtype=torch.long),
                   [torch.tensor(n, dtype=torch.long) for n in by_level], child_index,
                   child_owner, torch.tensor(roots, dtype=torch.long), child_rank)


def _checked(node: object, what: str) -> Tree:
    if not isinstance(node, Tree):
        raise TypeError(f"{what} must be a Tree, got {type(node).__name__}")
    if isinstance(node.label, bool) or not isinstance(node.label, numbers.Integral):
        raise TypeError(f"{what}: a Tree label must be an int, got {node.label!r}")
    return node


def binarize(tree: Tree, scheme: str = "left", inner_label: int | None = None) -> Tree:
    """The binary tree of an n-ary one, for `BinaryTreeLSTM`.

    Convention: a node with at most two children is kept as it is (a single child stays the
    left one). A node with children c1..cn, n > 2, becomes a chain of n - 1 binary nodes:
    `scheme="left"` groups from the left, ((c1 c2) c3) ... cn, the order a left-to-right
    reader meets them; `scheme="balanced"` splits the children in halves recursively (the first
    half gets the extra child), so the chain adds ceil(log2 n) - 1 levels instead of n - 2.
    The new inner nodes carry the original node's label, so for an associative operator
    (ListOps' MAX, MIN, SUM_MOD) the binary tree computes the same value; pass `inner_label`
    to mark them with a label of their own instead. The input tree is not modified.

    Example:
        >>> binarize(Tree(9, [Tree(1), Tree(2), Tree(3)])) == Tree(9, [Tree(9, [Tree(1),
        ...     Tree(2)]), Tree(3)])
        True
    """
    if scheme not in ("left", "balanced"):
        raise ValueError(f"scheme must be 'left' or 'balanced', got {scheme!r}")
    _checked(tree, "tree")
    kids = [binarize(_checked(c, f"a child of label {tree.label}"), scheme, inner_label)
            for c in tree.children]
    if len(kids) <= 2:
        return Tree(tree.label, kids)
    inner = tree.label if inner_label is None else inner_label

    def group(part: list[Tree], label: int) -> Tree:
        if len(part) == 1:
            return part[0]
        if scheme == "left":
            return Tree(label, [group(part[:-1], inner), part[-1]])
        half = (len(part) + 1) // 2
        return Tree(label, [group(part[:half], inner), group(part[half:], inner)])

    return group(kids, tree.label)


class _TreeModule(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check(self, x: Tensor, batch: TreeBatch) -> None:
        if x.dim() != 2 or x.shape != (len(batch.labels), self.input_size):
            raise ValueError(f"x must be (nodes={len(batch.labels)}, I={self.input_size}), got "
                             f"{tuple(x.shape)}")


class ChildSumTreeLSTM(_TreeModule):
    """Child-Sum Tree-LSTM (Tai, Socher & Manning 2015): an LSTM whose "previous step" is the
    set of a node's children, each with its own forget gate.

    h~ = sum_k h_k
    i, o, u = sigmoid(W_i x + U_i h~ + b_i), sigmoid(...), tanh(W_u x + U_u h~ + b_u)
    f_k = sigmoid(W_f x + U_f h_k + b_f)                   (one per child k)
    c = i * u + sum_k f_k * c_k
    h = o * tanh(c)

    Leaves have no children (h~ = 0, no forget term). The sum makes a node's state independent
    of the order of its children.

    Shape: x (N, I) one input per node (in `batch.labels` order) -> h, c (N, H).

    Example:
        >>> import torch
        >>> batch = TreeBatch.from_trees([Tree(0, [Tree(1), Tree(2, [Tree(3)])])])
        >>> h, c = ChildSumTreeLSTM(4, 5)(torch.eye(4)[batch.labels], batch)
        >>> tuple(h[batch.roots].shape)
        (1, 5)
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self.weight_iou = nn.Parameter(torch.empty(3 * H, input_size))
        self.weight_hiou = nn.Parameter(torch.empty(3 * H, H))
        self.bias_iou = nn.Parameter(torch.empty(3 * H))
        self.weight_f = nn.Parameter(torch.empty(H, input_size))
        self.weight_hf = nn.Parameter(torch.empty(H, H))
        self.bias_f = nn.Parameter(torch.empty(H))
        self.reset_parameters()

    def forward(self, x: Tensor, batch: TreeBatch) -> tuple[Tensor, Tensor]:
        self._check(x, batch)
        N, H = x.shape[0], self.hidden_size
        h_all = x.new_zeros(N, H)
        c_all = x.new_zeros(N, H)
        for nodes, kids, owner in zip(batch.levels, batch.child_index, batch.child_owner,
                                      strict=True):
            xn = x[nodes]  # (n, I)
            h_kids, c_kids = h_all[kids], c_all[kids]  # (E, H)
            h_sum = xn.new_zeros(len(nodes), H).index_add(0, owner, h_kids)  # (n, H)
            iou = F.linear(xn, self.weight_iou, self.bias_iou) + F.linear(h_sum, self.weight_hiou)
            i, o, u = iou.chunk(3, dim=-1)  # 3 x (n, H)
            f = torch.sigmoid(F.linear(xn, self.weight_f, self.bias_f)[owner]
                              + F.linear(h_kids, self.weight_hf))  # (E, H)
            fc = xn.new_zeros(len(nodes), H).index_add(0, owner, f * c_kids)  # (n, H)
            c = torch.sigmoid(i) * torch.tanh(u) + fc
            h = torch.sigmoid(o) * torch.tanh(c)
            h_all = h_all.index_copy(0, nodes, h)
            c_all = c_all.index_copy(0, nodes, c)
        return h_all, c_all


class BinaryTreeLSTM(_TreeModule):
    """Binary Tree-LSTM: Tai, Socher & Manning's N-ary Tree-LSTM (2015) with N = 2. Each
    child position has its own recurrent matrices, so the left and the right child are told
    apart, and each child has its own forget gate that sees both children.

    gates = W x + U_left h_left + U_right h_right + b            (5H: i, f_left, f_right, o, u)
    i, f_left, f_right, o = sigmoid(...), u = tanh(...)
    c = i * u + f_left * c_left + f_right * c_right
    h = o * tanh(c)

    A missing child (a leaf has none, a unary node has no right child) contributes h = c = 0.
    A node with more than two children is an error: turn n-ary trees into binary ones with
    `binarize` first. Nodes are computed level by level, as in `ChildSumTreeLSTM`.

    Parameters: `weight_ih` (5H, I), `weight_hh_left` and `weight_hh_right` (5H, H), `bias`
    (5H), gate order i, f_left, f_right, o, u.

    Shape: x (N, I) one input per node (in `batch.labels` order) -> h, c (N, H).

    Example:
        >>> import torch
        >>> batch = TreeBatch.from_trees([binarize(Tree(0, [Tree(1), Tree(2), Tree(3)]))])
        >>> h, c = BinaryTreeLSTM(4, 5)(torch.eye(4)[batch.labels], batch)
        >>> tuple(h[batch.roots].shape)
        (1, 5)
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(5 * H, input_size))
        self.weight_hh_left = nn.Parameter(torch.empty(5 * H, H))
        self.weight_hh_right = nn.Parameter(torch.empty(5 * H, H))
        self.bias = nn.Parameter(torch.empty(5 * H))
        self.reset_parameters()

    def forward(self, x: Tensor, batch: TreeBatch) -> tuple[Tensor, Tensor]:
        self._check(x, batch)
        if len(batch.child_rank) != len(batch.levels):
            raise ValueError("batch has no child_rank; build it with TreeBatch.from_trees")
        N, H = x.shape[0], self.hidden_size
        w_hh = torch.cat([self.weight_hh_left, self.weight_hh_right], dim=1)  # (5H, 2H)
        x_proj = F.linear(x, self.weight_ih, self.bias)  # (N, 5H), every node at once
        h_all = x.new_zeros(N, H)
        c_all = x.new_zeros(N, H)
        for nodes, kids, owner, rank in zip(batch.levels, batch.child_index, batch.child_owner,
                                            batch.child_rank, strict=True):
            n = len(nodes)
            if len(rank) and int(rank.max()) > 1:
                parent = owner[int((rank > 1).nonzero()[0])]
                node = int(nodes[parent])
                raise ValueError(
                    f"BinaryTreeLSTM takes nodes with at most 2 children, but node {node} "
                    f"(label {int(batch.labels[node])}) has {int((owner == parent).sum())}; "
                    "binarize the trees first (rnnkit.layers.tree.binarize)")
            slot = owner * 2 + rank  # (E,) left child -> 2p, right child -> 2p + 1
            h_lr = x.new_zeros(2 * n, H).index_copy(0, slot, h_all[kids]).view(n, 2 * H)
            c_lr = x.new_zeros(2 * n, H).index_copy(0, slot, c_all[kids]).view(n, 2, H)
            gates = x_proj[nodes] + F.linear(h_lr, w_hh)  # (n, 5H)
            i, f_left, f_right, o, u = gates.chunk(5, dim=-1)  # 5 x (n, H)
            c = (torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_left) * c_lr[:, 0]
                 + torch.sigmoid(f_right) * c_lr[:, 1])
            h = torch.sigmoid(o) * torch.tanh(c)
            h_all = h_all.index_copy(0, nodes, h)
            c_all = c_all.index_copy(0, nodes, c)
        return h_all, c_all


class TreeRNN(_TreeModule):
    """Recursive neural network with child sums: h = tanh(W x + U sum_k h_k + b).

    The tree counterpart of the vanilla RNN (Socher et al.'s recursive nets compose children
    the same way, with a sum instead of a concatenation so any arity works).

    Shape: x (N, I) -> h (N, H).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def forward(self, x: Tensor, batch: TreeBatch) -> Tensor:
        self._check(x, batch)
        h_all = x.new_zeros(x.shape[0], self.hidden_size)
        for nodes, kids, owner in zip(batch.levels, batch.child_index, batch.child_owner,
                                      strict=True):
            h_sum = x.new_zeros(len(nodes), self.hidden_size).index_add(0, owner, h_all[kids])
            h = torch.tanh(F.linear(x[nodes], self.weight_ih, self.bias)
                           + F.linear(h_sum, self.weight_hh))
            h_all = h_all.index_copy(0, nodes, h)
        return h_all
