"""Tree-structured (recursive) networks: Child-Sum Tree-LSTM and a recursive tanh net."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Tree", "TreeBatch", "ChildSumTreeLSTM", "TreeRNN"]


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

    @classmethod
    def from_trees(cls, trees: Sequence[Tree]) -> TreeBatch:
        labels: list[int] = []
        children: list[list[int]] = []
        height: list[int] = []

        def visit(node: Tree) -> int:
            kids = [visit(c) for c in node.children]
            labels.append(node.label)
            children.append(kids)
            height.append(1 + max((height[k] for k in kids), default=-1))
            return len(labels) - 1

        roots = [visit(t) for t in trees]
        by_level: list[list[int]] = [[] for _ in range(max(height) + 1)]
        for node, lvl in enumerate(height):
            by_level[lvl].append(node)
        child_index, child_owner = [], []
        for nodes in by_level:
            idx = [k for n in nodes for k in children[n]]
            owner = [pos for pos, n in enumerate(nodes) for _ in children[n]]
            child_index.append(torch.tensor(idx, dtype=torch.long))
            child_owner.append(torch.tensor(owner, dtype=torch.long))
        return cls(torch.tensor(labels), [torch.tensor(n) for n in by_level], child_index,
                   child_owner, torch.tensor(roots))


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
