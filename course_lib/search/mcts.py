r"""Monte-Carlo tree search over B trees at once, as tensors.

A tree search does not map onto a GPU the way a matrix product does: each simulation
walks down a different path, expands one node and backs one value up. The way to make
it map is to search *many trees at once*: every step of a simulation (choose an edge at
each tree's current node, expand each tree's leaf, back each tree's value up) becomes one
batched tensor operation over the B trees, and the network evaluates the B new leaves in
one call. This is how DeepMind's mctx searches on accelerators; this module follows its
layout (a tree is a set of ``[B, S, ...]`` arrays, ``search`` is one loop of
select → expand → backup) in PyTorch.

Conventions (for one tree; every array has a leading batch dimension ``B``):

* Nodes are numbered ``0 .. S-1`` with ``S = num_simulations + 1``: the root is node 0,
  simulation ``k`` creates node ``k + 1``. ``children_index[s, a]`` is the node reached by
  action ``a`` from node ``s`` or ``-1`` while that edge is unexpanded.
* A node's *value* is from the point of view of the player **to move** at that node.
  An edge ``(s, a)`` carries a reward ``r(s, a)`` for the player who moved and a
  discount ``γ(s, a)``; the action value is

  .. math::  Q(s, a) = r(s, a) + \gamma(s, a)\, V(s'),\qquad V(s') = W(s') / N(s').

  A single-agent task (MuZero on CartPole) uses ``γ(s, a) = γ``. A two-player zero-sum
  game with alternating moves uses ``γ(s, a) = -1``: the next node's value is the
  *opponent's*, so it enters with a flipped sign — the sign flip of negamax.
* Terminal nodes (a game won or drawn) have value 0 and are never expanded; a
  simulation that reaches one backs up its edge's reward again.

One simulation is three phases, each a function of its own: :func:`select` walks every
tree from its root to a leaf by the selection rule, :func:`expand` calls the model once
for the B leaves and writes the new nodes, :func:`backup` propagates their values up the
paths. :func:`simulate` is their composition and :func:`search` runs it
``num_simulations`` times.

Two ways to choose the edges: AlphaZero/MuZero's PUCT rule (:func:`puct_scores`, the
default) and Gumbel MuZero's (Danihelka et al., 2022; ``selection="gumbel"``), which
samples the root's candidate moves without replacement with the Gumbel-top-k trick,
narrows them by sequential halving, and picks inner edges deterministically from an
improved policy (:func:`gumbel_readout`). Gumbel search improves the policy even with a
handful of simulations, where PUCT's visit counts say little.

An agent calls a *policy* rather than :func:`search`: :func:`puct_policy` and
:func:`gumbel_policy` add the root noise their self-play needs, search, and return a
:class:`PolicyOutput` (the move to play, the policy target to train on, the tree);
:func:`make_policy` picks one of them from a ``selection`` setting once, so a training
loop never branches on it.

The step function (``recurrent_fn``) decides what the tree searches over: the true rules
of a game (AlphaZero; see :func:`rules_recurrent_fn`) or a learned model (MuZero: the
dynamics network returns the next latent state and reward, the prediction network the
prior and value).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Callable, NamedTuple

import torch

__all__ = ["RootOutput", "RecurrentOutput", "Tree", "Edges", "Path", "PolicyOutput", "init_tree", "select", "expand",
           "backup", "simulate", "search", "puct_scores", "backup_values", "visit_policy", "sample_action",
           "dirichlet_noise", "root_value", "rules_root", "rules_recurrent_fn", "rules_search", "gumbel_noise",
           "considered_visits", "completed_q", "gumbel_readout", "search_move", "puct_policy", "gumbel_policy",
           "make_policy"]

# Columns of the packed edge statistics Tree.edge_stats [B, S + 1, A, 4]. Outside this module
# read them by name: Tree.children_prior, children_visits, children_q, children_legal.
_PRIOR, _VISITS, _Q, _LEGAL = range(4)


class RootOutput(NamedTuple):
    """What the search starts from: the network's output at the B roots.

    ``prior_logits [B, A]``, ``value [B]`` (for the player to move at the root) and
    ``embedding [B, ...]`` (a game state or a latent state: whatever ``recurrent_fn`` takes).
    """
    prior_logits: torch.Tensor
    value: torch.Tensor
    embedding: torch.Tensor


class RecurrentOutput(NamedTuple):
    """One step of the model from ``(embedding, action)``, for B trees.

    ``reward [B]`` for the player who moved, ``discount [B]`` (γ, or -1 between the
    players of a zero-sum game), the new node's ``prior_logits [B, A]`` and ``value [B]``,
    its ``embedding``; ``terminal [B]`` bool and ``legal [B, A]`` bool where the true
    rules know them (None: never terminal, every action legal — a learned model).
    """
    reward: torch.Tensor
    discount: torch.Tensor
    prior_logits: torch.Tensor
    value: torch.Tensor
    embedding: torch.Tensor
    terminal: torch.Tensor | None = None
    legal: torch.Tensor | None = None


RecurrentFn = Callable[[torch.Tensor, torch.Tensor], RecurrentOutput]


class Edges(NamedTuple):
    """The edges ``(s, a)`` of some nodes ``s``, one ``[..., A]`` array per statistic.

    ``prior`` :math:`P(s, a)`, ``visits`` :math:`N(s, a)`, ``q`` :math:`Q(s, a)` (meaningful
    where visited), ``legal`` bool. :meth:`Tree.edges` gathers them for a batch of nodes.
    """
    prior: torch.Tensor
    visits: torch.Tensor
    q: torch.Tensor
    legal: torch.Tensor


def _edges(stats: torch.Tensor) -> Edges:
    """Names for the columns of packed edge statistics ``[..., A, 4]`` (views, and a bool mask)."""
    return Edges(stats[..., _PRIOR], stats[..., _VISITS], stats[..., _Q], stats[..., _LEGAL] > 0)


@dataclass
class Tree:
    """B search trees of ``S = num_simulations + 1`` nodes as batched arrays.

    Per node ``[B, S + 1]`` (slot ``S`` is a scratch node that absorbs the writes of
    trees with nothing to write, so no operation needs a mask): ``node_visits`` N(s),
    ``value_sum`` W(s), ``raw_value`` (the network's value when the node was expanded),
    ``reward`` and ``discount`` of the edge into the node, ``parent``, ``action`` (from the
    parent), ``terminal``, ``depth``; ``embedding [B, S + 1, ...]``.

    Per edge ``[B, S + 1, A]``: ``children_index`` (the child node, -1 while unexpanded) and,
    read by name, ``children_prior`` P(s, a), ``children_visits`` N(s, a), ``children_q``
    Q(s, a) and ``children_legal`` (bool). These four are stored packed in one array,
    ``edge_stats [B, S + 1, A, 4]``, so that selection gathers a node's edges in one
    operation per step; :meth:`edges` returns them by name for a batch of nodes.

    Per tree ``[B]``: ``min_q``/``max_q``, the range of Q seen so far (for min–max
    normalisation), and ``last_path`` ``[B, D]``, the nodes of the latest simulation
    (root first, padded with ``S``) for the tree explorer. Gumbel search only:
    ``gumbel [B, A]``, the root's Gumbel noise, and ``max_considered``, how many root moves
    sequential halving starts from (0: PUCT search).
    """
    node_visits: torch.Tensor
    value_sum: torch.Tensor
    raw_value: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    parent: torch.Tensor
    action: torch.Tensor
    terminal: torch.Tensor
    depth: torch.Tensor
    embedding: torch.Tensor
    children_index: torch.Tensor
    edge_stats: torch.Tensor
    min_q: torch.Tensor
    max_q: torch.Tensor
    last_path: torch.Tensor
    gumbel: torch.Tensor
    num_simulations: int = 0
    max_considered: int = 0

    @property
    def batch_size(self) -> int:
        return self.node_visits.shape[0]

    @property
    def num_actions(self) -> int:
        return self.children_index.shape[-1]

    @property
    def scratch(self) -> int:
        """Index of the scratch node (``S``)."""
        return self.node_visits.shape[1] - 1

    @functools.cached_property
    def batch_range(self) -> torch.Tensor:
        """``[B]`` 0 .. B-1, the tree index of batched gathers (made once: every phase uses it)."""
        return torch.arange(self.batch_size, device=self.node_visits.device)

    @property
    def children_prior(self) -> torch.Tensor:
        """``[B, S + 1, A]`` P(s, a), the prior of every edge (a view of ``edge_stats``)."""
        return self.edge_stats[..., _PRIOR]

    @property
    def children_visits(self) -> torch.Tensor:
        """``[B, S + 1, A]`` N(s, a), the visit count of every edge (a view of ``edge_stats``)."""
        return self.edge_stats[..., _VISITS]

    @property
    def children_q(self) -> torch.Tensor:
        """``[B, S + 1, A]`` Q(s, a) = r(s, a) + γ(s, a) V(s'), meaningful where visited (a view of ``edge_stats``)."""
        return self.edge_stats[..., _Q]

    @property
    def children_legal(self) -> torch.Tensor:
        """``[B, S + 1, A]`` bool: whether action a is legal at node s."""
        return self.edge_stats[..., _LEGAL] > 0

    def edges(self, b: torch.Tensor | int | slice, node: torch.Tensor | int) -> Edges:
        """The edges of nodes ``node`` of trees ``b`` (indices as for ``children_index[b, node]``), by name."""
        return _edges(self.edge_stats[b, node])

    def node_value(self) -> torch.Tensor:
        """``[B, S + 1]`` mean value W/N (0 where unvisited)."""
        return self.value_sum / self.node_visits.clamp(min=1)

    def index(self, b: int) -> "Tree":
        """Tree ``b`` alone, as a batch of one (views, for inspecting one search)."""
        return Tree(**{f.name: (value[b:b + 1] if isinstance(value, torch.Tensor) else value)
                       for f in fields(self) for value in [getattr(self, f.name)]})


# --------------------------------------------------------------------------- selection
def puct_scores(prior: torch.Tensor, visits: torch.Tensor, q: torch.Tensor, legal: torch.Tensor,
                parent_visits: torch.Tensor, c1: float = 1.25, c2: float = 19652.0) -> torch.Tensor:
    r"""The PUCT score of every edge of B nodes (AlphaZero / MuZero's selection rule).

    .. math::
        a^* = \arg\max_a \; Q(s,a) + P(s,a)\,\frac{\sqrt{N(s)}}{1 + N(s,a)}
              \Big(c_1 + \log\frac{N(s) + c_2 + 1}{c_2}\Big)

    The first term exploits what the search has found, the second explores where the
    prior is high and the edge has few visits; it shrinks as :math:`N(s,a)` grows.
    :math:`c_2` is large, so for small searches the bracket is :math:`\approx c_1`
    (AlphaZero's :math:`c_{\text{puct}}`).

    Args:
      prior: ``[B, A]`` :math:`P(s, a)`.
      visits: ``[B, A]`` :math:`N(s, a)`.
      q: ``[B, A]`` :math:`Q(s, a)`, already normalised if wanted, the value for unvisited edges filled in.
      legal: ``[B, A]`` bool or 0/1; illegal edges score :math:`-\infty`.
      parent_visits: ``[B]`` :math:`N(s)`.

    Returns:
      ``[B, A]`` scores.
    """
    n = parent_visits.unsqueeze(-1)
    c = c1 + torch.log((n + c2 + 1.0) / c2)
    scores = q + c * prior * n.sqrt() / (1.0 + visits)
    return scores.masked_fill(~legal if legal.dtype == torch.bool else legal <= 0, -math.inf)


def _normalised_q(edges: Edges, min_q: torch.Tensor, max_q: torch.Tensor, qtransform: str,
                  unvisited_q: float) -> torch.Tensor:
    """``[B, A]`` Q of ``edges`` as the PUCT rule sees it (see :func:`search`)."""
    q, visited = edges.q, edges.visits > 0
    if qtransform == "minmax":
        span = (max_q - min_q).unsqueeze(-1)
        q = torch.where(span > 0, (q - min_q.unsqueeze(-1)) / span.clamp(min=1e-8), q.new_zeros(()))
    return torch.where(visited, q, q.new_full((), unvisited_q))


# ------------------------------------------------------------------------------ backup
def backup_values(leaf_value: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    r"""The value each node on a simulated path receives, for B paths at once.

    For a path :math:`s_0 \xrightarrow{a_0} s_1 \cdots \xrightarrow{a_{L-1}} s_L` whose leaf has
    value :math:`v`, node :math:`s_k` is credited with the discounted return from it:

    .. math::  G_L = v, \qquad G_k = r_{k+1} + \gamma_{k+1}\, G_{k+1}

    where :math:`r_{k+1}, \gamma_{k+1}` are the reward and discount of the edge into
    :math:`s_{k+1}`. With :math:`\gamma = -1` between the two players of a zero-sum game
    this is the negamax sign flip: a position good for the player to move at
    :math:`s_{k+1}` is bad for the one who moved into it.

    Computed without a loop over depth: with :math:`c_k = \prod_{i=1}^{k} \gamma_i`,
    :math:`c_k G_k = \sum_{j>k} c_{j-1} r_j + c_L v`, a reversed cumulative sum.
    Discounts must be nonzero (a terminal state is marked by its value 0 instead).

    Args:
      leaf_value: ``[B]`` :math:`v`, the value of the last node of each path.
      rewards: ``[B, D]`` :math:`r_1 .. r_D`, edge rewards along the path, 0 past the leaf.
      discounts: ``[B, D]`` :math:`\gamma_1 .. \gamma_D`, 1 past the leaf.

    Returns:
      ``[B, D + 1]`` :math:`G_0 .. G_D` (past the leaf: :math:`v` times the discounts' product, unused).
    """
    if rewards.shape != discounts.shape or rewards.dim() != 2 or leaf_value.shape != rewards.shape[:1]:
        raise ValueError(f"need leaf_value [B], rewards and discounts [B, D]; got {tuple(leaf_value.shape)}, "
                         f"{tuple(rewards.shape)}, {tuple(discounts.shape)}")
    ones = discounts.new_ones(discounts.shape[0], 1)
    c = torch.cat([ones, discounts.cumprod(dim=1)], dim=1)                    # c_0 .. c_D
    # Terms c_{j-1} r_j for j = 1..D, then the leaf's c_L v at the end of the path:
    # past the leaf r = 0 and γ = 1, so c stays c_L and the leaf value can sit in the last slot.
    terms = torch.cat([c[:, :-1] * rewards, (c[:, -1] * leaf_value).unsqueeze(1)], dim=1)
    # Slot s holds the term of edge j = s + 1 (and slot D the leaf's), so c_k G_k sums slots s >= k.
    tail = terms.flip(1).cumsum(1).flip(1)
    return tail / c


# -------------------------------------------------------------------------------- search
def init_tree(root: RootOutput, num_simulations: int, root_legal: torch.Tensor | None = None,
              root_noise: torch.Tensor | None = None, noise_fraction: float = 0.25,
              gumbel: torch.Tensor | None = None, max_considered: int = 0) -> Tree:
    r"""B trees holding only their roots (visited once, with the network's value).

    The root's prior is :math:`\mathrm{softmax}` of ``prior_logits`` over the legal actions;
    with ``root_noise`` :math:`\eta` (e.g. :func:`dirichlet_noise`) it becomes
    :math:`(1-\varepsilon)\,P + \varepsilon\,\eta` with :math:`\varepsilon` = ``noise_fraction``
    (AlphaZero's exploration in self-play: every legal move keeps some chance to be tried).
    ``max_considered > 0`` makes the trees Gumbel searches (see :func:`search`), with root
    noise ``gumbel [B, A]`` (None: zeros, a deterministic search).
    """
    logits, value, embedding = root
    if logits.dim() != 2 or value.shape != logits.shape[:1] or embedding.shape[0] != logits.shape[0]:
        raise ValueError(f"root needs prior_logits [B, A], value [B], embedding [B, ...]; got "
                         f"{tuple(logits.shape)}, {tuple(value.shape)}, {tuple(embedding.shape)}")
    if num_simulations < 1:
        raise ValueError(f"num_simulations must be >= 1; got {num_simulations}")
    if max_considered < 0:
        raise ValueError(f"max_considered must be >= 0 (0: PUCT search); got {max_considered}")
    batch, actions = logits.shape
    if gumbel is not None and gumbel.shape != logits.shape:
        raise ValueError(f"gumbel must be [B, A] = {tuple(logits.shape)}; got {tuple(gumbel.shape)}")
    device, dtype = logits.device, torch.float32
    legal = (torch.ones_like(logits, dtype=torch.bool) if root_legal is None else root_legal.to(torch.bool))
    if legal.shape != logits.shape:
        raise ValueError(f"root_legal must be [B, A] = {tuple(logits.shape)}; got {tuple(legal.shape)}")
    if not legal.any(dim=1).all():
        bad = (~legal.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"roots {bad} have no legal action (a finished game cannot be searched)")
    nodes = num_simulations + 2                    # S real nodes and the scratch node
    zeros = torch.zeros(batch, nodes, device=device, dtype=dtype)
    tree = Tree(
        node_visits=zeros.clone(), value_sum=zeros.clone(), raw_value=zeros.clone(), reward=zeros.clone(),
        discount=torch.ones_like(zeros),
        parent=torch.full((batch, nodes), -1, device=device, dtype=torch.long),
        action=torch.zeros(batch, nodes, device=device, dtype=torch.long),
        terminal=torch.zeros(batch, nodes, device=device, dtype=torch.bool),
        depth=torch.zeros(batch, nodes, device=device, dtype=torch.long),
        embedding=embedding.new_zeros((batch, nodes, *embedding.shape[1:])),
        children_index=torch.full((batch, nodes, actions), -1, device=device, dtype=torch.long),
        edge_stats=torch.zeros(batch, nodes, actions, 4, device=device, dtype=dtype),
        min_q=torch.full((batch,), math.inf, device=device, dtype=dtype),
        max_q=torch.full((batch,), -math.inf, device=device, dtype=dtype),
        last_path=torch.zeros(batch, 1, device=device, dtype=torch.long),
        gumbel=(torch.zeros(batch, actions, device=device, dtype=dtype) if gumbel is None else gumbel.to(dtype)),
        max_considered=max_considered,
    )
    prior = torch.softmax(logits.float().masked_fill(~legal, -math.inf), dim=-1)
    if root_noise is not None:
        if root_noise.shape != logits.shape:
            raise ValueError(f"root_noise must be [B, A] = {tuple(logits.shape)}; got {tuple(root_noise.shape)}")
        prior = (1 - noise_fraction) * prior + noise_fraction * root_noise.to(dtype) * legal
    tree.edge_stats[:, 0, :, _PRIOR] = prior
    tree.edge_stats[:, 0, :, _LEGAL] = legal.to(dtype)
    tree.node_visits[:, 0] = 1
    tree.value_sum[:, 0] = value.to(dtype)
    tree.raw_value[:, 0] = value.to(dtype)
    tree.embedding[:, 0] = embedding
    return tree


class Path(NamedTuple):
    """What :func:`select` found in each of B trees: where to expand, and the path to back up.

    ``nodes [B, D + 1]``: the path, root first; where it ends on an unexpanded edge its last
    entry is the node :func:`expand` is about to create; padded with the scratch node.
    ``parent [B]`` and ``action [B]``: the edge to expand; ``expand [B]`` bool: whether there
    is one (False: the path ended on a terminal node, and nothing is expanded); ``leaf [B]``:
    the node whose value :func:`backup` propagates (the new node, or the terminal one).
    """
    nodes: torch.Tensor
    parent: torch.Tensor
    action: torch.Tensor
    expand: torch.Tensor
    leaf: torch.Tensor


def select(tree: Tree, *, c1: float = 1.25, c2: float = 19652.0, qtransform: str = "none",
           unvisited_q: float = 0.0, c_visit: float = 50.0, c_scale: float = 0.1) -> Path:
    """Walk each of the B trees from its root to a leaf by the selection rule (the tree is not changed).

    At every node the rule picks one edge: :func:`puct_scores`' best edge, with Q as
    ``qtransform`` and ``unvisited_q`` say; for a Gumbel tree (``tree.max_considered > 0``)
    sequential halving at the root and the improved policy's deterministic choice below it
    (:func:`gumbel_readout`). The walk follows the edge while it leads to an expanded,
    non-terminal node: one batched step per depth for all trees, until every tree has stopped
    on an unexpanded edge (which :func:`expand` will create) or on a terminal node. See
    :func:`search` for the arguments.
    """
    scratch = tree.scratch
    new = tree.num_simulations + 1                  # the node this simulation creates
    if new >= scratch:
        raise ValueError(f"the tree is full: it was made for {scratch - 1} simulations")
    b = tree.batch_range
    node = torch.zeros_like(b)
    active = torch.ones(tree.batch_size, dtype=torch.bool, device=b.device)
    expanding = torch.zeros_like(active)
    parent = torch.zeros_like(node)
    action = torch.zeros_like(node)
    path = [node]
    for depth in range(new):
        if tree.max_considered and depth == 0:
            a = _gumbel_root_action(tree, c_visit, c_scale)
        elif tree.max_considered:
            a = _gumbel_inner_action(tree.edges(b, node), tree.raw_value[b, node], c_visit, c_scale)
        else:
            edges = tree.edges(b, node)
            q = _normalised_q(edges, tree.min_q, tree.max_q, qtransform, unvisited_q)
            a = puct_scores(edges.prior, edges.visits, q, edges.legal, tree.node_visits[b, node], c1, c2).argmax(-1)
        child = tree.children_index[b, node, a]
        stop_here = active & (child < 0)                                        # unexpanded edge: expand it
        moved = active & (child >= 0)
        expanding |= stop_here
        parent = torch.where(stop_here, node, parent)
        action = torch.where(stop_here, a, action)
        node = torch.where(moved, child, node)
        path.append(torch.where(moved, child, torch.where(stop_here, new, scratch)))
        active = moved & ~tree.terminal[b, node]
        if not bool(active.any()):
            break
    return Path(torch.stack(path, dim=1), parent, action, expanding, torch.where(expanding, new, node))


def expand(tree: Tree, recurrent_fn: RecurrentFn, path: Path) -> Tree:
    """Create the node each of the B trees' ``path`` ends on (in place): one call of the model for all B.

    The new node is ``tree.num_simulations + 1``, made from ``recurrent_fn(embedding(parent),
    action)``: the reward and discount of the edge into it, its prior (softmax over the legal
    actions), value and state; a terminal node's value is 0. A tree whose path ended on a
    terminal node (``path.expand`` False) writes into that slot too, but leaves it unlinked:
    the model is called for all B trees at once either way.
    """
    b, scratch = tree.batch_range, tree.scratch
    new = tree.num_simulations + 1
    parent, action, expanding = path.parent, path.action, path.expand
    out = recurrent_fn(tree.embedding[b, parent], action)
    terminal = (out.terminal if out.terminal is not None else torch.zeros_like(expanding)) & expanding
    tree.embedding[:, new] = out.embedding
    tree.reward[:, new] = out.reward.to(tree.reward.dtype)
    tree.discount[:, new] = out.discount.to(tree.discount.dtype)
    tree.raw_value[:, new] = torch.where(terminal, 0.0, out.value.to(tree.raw_value.dtype))
    tree.terminal[:, new] = terminal
    tree.parent[:, new] = parent
    tree.action[:, new] = action
    tree.depth[:, new] = tree.depth[b, parent] + 1
    legal = out.legal if out.legal is not None else torch.ones_like(out.prior_logits, dtype=torch.bool)
    tree.edge_stats[:, new, :, _PRIOR] = torch.softmax(
        out.prior_logits.float().masked_fill(~legal, -math.inf), dim=-1).nan_to_num_(0.0)
    tree.edge_stats[:, new, :, _LEGAL] = legal.to(tree.edge_stats.dtype)
    tree.children_index[b, torch.where(expanding, parent, scratch), action] = new
    tree.num_simulations = new
    return tree


def backup(tree: Tree, path: Path) -> Tree:
    r"""Propagate the value of each path's leaf up to its root (in place).

    Every node :math:`s_k` on the path gets one more visit and the return :math:`G_k` of
    :func:`backup_values` (:math:`N \mathrel{+}= 1`, :math:`W \mathrel{+}= G_k`); every edge
    on it its new visit count :math:`N(s_k, a_k) = N(s_{k+1})` and action value
    :math:`Q = r + \gamma\, W(s_{k+1}) / N(s_{k+1})`; the range of Q seen (``min_q``,
    ``max_q``) widens to include them, and the path becomes ``tree.last_path``.
    """
    b, scratch = tree.batch_range, tree.scratch
    nodes = path.nodes                                                          # [B, D + 1], scratch-padded
    # Scratch entries are padding with r = 0, γ = 1 (the scratch node is never written).
    g = backup_values(tree.raw_value[b, path.leaf], tree.reward.gather(1, nodes[:, 1:]),
                      tree.discount.gather(1, nodes[:, 1:]))
    tree.node_visits.scatter_add_(1, nodes, torch.ones_like(g))
    tree.value_sum.scatter_add_(1, nodes, g)
    children = nodes[:, 1:]
    real = children != scratch
    parents = torch.where(real, nodes[:, :-1], scratch)
    visits = tree.node_visits.gather(1, children)
    q = tree.reward.gather(1, children) + tree.discount.gather(1, children) * (
        tree.value_sum.gather(1, children) / visits.clamp(min=1))
    # Both statistics of each edge (parent, action) in one indexed write per column.
    flat = (b.unsqueeze(1) * (scratch + 1) + parents) * tree.num_actions + tree.action.gather(1, children)
    packed = tree.edge_stats.view(-1, 4)
    packed[flat, _VISITS] = visits
    packed[flat, _Q] = q
    tree.min_q = torch.minimum(tree.min_q, q.masked_fill(~real, math.inf).amin(dim=1))
    tree.max_q = torch.maximum(tree.max_q, q.masked_fill(~real, -math.inf).amax(dim=1))
    tree.last_path = nodes
    return tree


def simulate(tree: Tree, recurrent_fn: RecurrentFn, *, c1: float = 1.25, c2: float = 19652.0,
             qtransform: str = "none", unvisited_q: float = 0.0, c_visit: float = 50.0,
             c_scale: float = 0.1) -> Tree:
    """One simulation in each of the B trees (in place): :func:`select`, :func:`expand`, :func:`backup`.

    See :func:`search` for the arguments.
    """
    path = select(tree, c1=c1, c2=c2, qtransform=qtransform, unvisited_q=unvisited_q, c_visit=c_visit,
                  c_scale=c_scale)
    expand(tree, recurrent_fn, path)
    return backup(tree, path)


def search(root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int, *,
           root_legal: torch.Tensor | None = None, root_noise: torch.Tensor | None = None,
           noise_fraction: float = 0.25, c1: float = 1.25, c2: float = 19652.0, qtransform: str = "none",
           unvisited_q: float = 0.0, selection: str = "puct", gumbel: torch.Tensor | None = None,
           max_considered: int = 16, c_visit: float = 50.0, c_scale: float = 0.1) -> Tree:
    r"""Search B trees with ``num_simulations`` simulations each; returns the trees.

    Args:
      root: network output at the roots (:class:`RootOutput`).
      recurrent_fn: ``(embedding [B, ...], action [B]) -> RecurrentOutput``; the true rules
        (:func:`rules_recurrent_fn`) or a learned model.
      num_simulations: simulations per tree (each expands at most one node).
      root_legal: ``[B, A]`` bool legal moves at the roots (None: all).
      root_noise: ``[B, A]`` exploration noise mixed into the root prior (:func:`dirichlet_noise`).
      noise_fraction: its weight ε.
      c1, c2: the PUCT constants of :func:`puct_scores`.
      qtransform: ``"none"`` uses Q as it is (values in [-1, 1], board games);
        ``"minmax"`` rescales Q to [0, 1] by the smallest and largest Q seen in the tree so
        far (MuZero, for rewards of any scale).
      unvisited_q: Q an unvisited edge is scored with (after the transform). 0 is neutral
        for board games; pessimistic values make the search deepen before it widens.
      selection: ``"puct"`` (AlphaZero, MuZero) or ``"gumbel"`` (Gumbel MuZero; ``c1``,
        ``c2``, ``qtransform`` and ``unvisited_q`` are then unused: Q is completed and
        rescaled per node by :func:`completed_q`).
      gumbel: ``[B, A]`` Gumbel noise of the root (:func:`gumbel_noise`) for a Gumbel search;
        None: zeros (no exploration: evaluation).
      max_considered: root moves a Gumbel search starts sequential halving from, ``m``.
      c_visit, c_scale: the monotone transform :math:`\sigma` of :func:`completed_q`.

    Returns:
      The :class:`Tree`; :func:`visit_policy` and :func:`root_value` read the result, and
      :func:`gumbel_readout` the move and policy target of a Gumbel search.
    """
    if qtransform not in ("none", "minmax"):
        raise ValueError(f"qtransform must be 'none' or 'minmax'; got {qtransform!r}")
    if selection not in ("puct", "gumbel"):
        raise ValueError(f"selection must be 'puct' or 'gumbel'; got {selection!r}")
    if selection == "gumbel" and max_considered < 1:
        raise ValueError(f"a Gumbel search needs max_considered >= 1; got {max_considered}")
    tree = init_tree(root, num_simulations, root_legal, root_noise, noise_fraction,
                     gumbel=gumbel if selection == "gumbel" else None,
                     max_considered=max_considered if selection == "gumbel" else 0)
    for _ in range(num_simulations):
        simulate(tree, recurrent_fn, c1=c1, c2=c2, qtransform=qtransform, unvisited_q=unvisited_q,
                 c_visit=c_visit, c_scale=c_scale)
    return tree


# ------------------------------------------------------------------------ Gumbel search
def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    r"""Standard Gumbel samples :math:`g = -\log(-\log U)`, :math:`U \sim \mathcal U(0, 1)`.

    :math:`\arg\max_a (g_a + \text{logits}_a)` is a sample of :math:`\mathrm{softmax}(\text{logits})`,
    and the top :math:`m` of :math:`g + \text{logits}` are :math:`m` samples without replacement
    (the Gumbel-top-k trick), which is how a Gumbel search picks the root moves it considers.
    """
    u = torch.rand(shape, generator=generator, device=device).clamp_(min=1e-20)
    return -torch.log(-torch.log(u))


@functools.lru_cache(maxsize=256)
def considered_visits(max_considered: int, num_simulations: int) -> tuple[int, ...]:
    r"""Sequential halving's schedule: the visit count the root move of simulation ``k`` must have.

    ``n`` simulations are spent on ``m`` root moves in :math:`\lceil \log_2 m \rceil` phases.
    Each phase gives each of the :math:`m'` moves still in the race
    :math:`\max\big(1, \lfloor n / (m' \lceil \log_2 m \rceil) \rfloor\big)` more visits, one
    round at a time, then halves :math:`m'` (to no fewer than 2). Simulation ``k`` plays the
    best-scoring root move whose visit count is exactly ``schedule[k]``, so the moves that stop
    receiving visits are the ones the halving dropped. With one move (``m <= 1``) it gets
    every simulation.

    Example: ``considered_visits(4, 10) == (0, 0, 0, 0, 1, 1, 2, 2, 3, 3)``: four moves one
    visit each, then the better two three more visits each (the last round cut short).
    """
    if max_considered <= 1:
        return tuple(range(num_simulations))
    phases = math.ceil(math.log2(max_considered))
    schedule: list[int] = []
    count, remaining = 0, max_considered
    while len(schedule) < num_simulations:
        for _ in range(max(1, num_simulations // (phases * remaining))):
            schedule.extend([count] * remaining)
            count += 1
        remaining = max(2, remaining // 2)
    return tuple(schedule[:num_simulations])


def completed_q(edges: Edges, raw_value: torch.Tensor, c_visit: float = 50.0,
                c_scale: float = 0.1) -> torch.Tensor:
    r""":math:`\sigma(\hat q)` of every edge of B nodes: Gumbel MuZero's completed, rescaled action values.

    Unvisited edges get the *mixed value*, the network's value :math:`\hat v` of the node
    blended with the prior-weighted Q of the visited edges,

    .. math::
        v_{\text{mix}} = \frac{1}{1 + \sum_b N(b)}\Big(\hat v + \sum_b N(b)\,
        \frac{\sum_{b: N(b) > 0} \pi(b)\, q(b)}{\sum_{b: N(b) > 0} \pi(b)}\Big),

    the completed values are rescaled to [0, 1] by their min and max over the legal edges,
    and the monotone transform :math:`\sigma(\hat q) = (c_{\text{visit}} + \max_b N(b))\,
    c_{\text{scale}}\, \hat q` lets Q outweigh the prior more as the visits grow.

    Args:
      edges: the nodes' :class:`Edges` (prior, visits, Q, legal), each ``[B, A]``.
      raw_value: ``[B]`` :math:`\hat v`, the network's value of each node.

    Returns:
      ``[B, A]`` :math:`\sigma(\hat q)` (0 on illegal edges).
    """
    prior, visits, q, legal = edges
    visited = visits > 0
    total = visits.sum(-1)
    visited_prior = (prior * visited).sum(-1)
    mean_q = (prior * q * visited).sum(-1) / visited_prior.clamp(min=1e-12)
    v_mix = (raw_value + total * mean_q) / (1 + total)
    completed = torch.where(visited, q, v_mix.unsqueeze(-1))
    low = completed.masked_fill(~legal, math.inf).amin(-1, keepdim=True)
    high = completed.masked_fill(~legal, -math.inf).amax(-1, keepdim=True)
    rescaled = ((completed - low) / (high - low).clamp(min=1e-8)).masked_fill(~legal, 0.0)
    return (c_visit + visits.amax(-1, keepdim=True)) * c_scale * rescaled


def _log_prior(edges: Edges) -> torch.Tensor:
    """``[B, A]`` log P, floored at -1e9 on legal edges (a vanishing prior stays comparable), -inf elsewhere."""
    logits = edges.prior.clamp(min=1e-30).log().clamp(min=-1e9)
    return logits.masked_fill(~edges.legal, -math.inf)


def _considered_argmax(tree: Tree, root: Edges, visit_target: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    r"""The root move maximising :math:`g + \log P + \sigma(\hat q)` among the legal ones with ``visit_target`` visits."""
    score = tree.gumbel + _log_prior(root) + sigma
    candidate = root.legal & (root.visits == visit_target.unsqueeze(-1))
    candidate = torch.where(candidate.any(-1, keepdim=True), candidate, root.legal)  # (the schedule always has one)
    return score.masked_fill(~candidate, -math.inf).argmax(-1)


def _gumbel_root_action(tree: Tree, c_visit: float, c_scale: float) -> torch.Tensor:
    """``[B]`` the root move of the next simulation of B Gumbel trees (sequential halving)."""
    root = tree.edges(slice(None), 0)
    considered = root.legal.sum(-1).clamp(max=tree.max_considered)                 # m per tree
    planned, done = tree.scratch - 1, tree.num_simulations
    column = torch.tensor([considered_visits(m, planned)[done] for m in range(tree.max_considered + 1)],
                          device=root.visits.device, dtype=root.visits.dtype)
    sigma = completed_q(root, tree.raw_value[:, 0], c_visit, c_scale)
    return _considered_argmax(tree, root, column[considered], sigma)


def _gumbel_inner_action(edges: Edges, raw_value: torch.Tensor, c_visit: float, c_scale: float) -> torch.Tensor:
    r"""``[B]`` Gumbel MuZero's deterministic choice below the root.

    .. math::  a^* = \arg\max_a \Big(\pi'(a) - \frac{N(a)}{1 + \sum_b N(b)}\Big),
               \qquad \pi' = \mathrm{softmax}\big(\log P + \sigma(\hat q)\big)

    visits each edge in proportion to the improved policy :math:`\pi'`.
    """
    improved = torch.softmax(_log_prior(edges) + completed_q(edges, raw_value, c_visit, c_scale), dim=-1)
    score = improved - edges.visits / (1 + edges.visits.sum(-1, keepdim=True))
    return score.masked_fill(~edges.legal, -math.inf).argmax(-1)


def gumbel_readout(tree: Tree, c_visit: float = 50.0, c_scale: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The move and the policy target of B finished Gumbel searches: ``(action [B], policy [B, A])``.

    The move is the most visited of the considered ones with the highest
    :math:`g + \log P + \sigma(\hat q)` (the survivor of sequential halving); the policy
    target is the improved policy :math:`\pi' = \mathrm{softmax}(\log P + \sigma(\hat q))`
    over the legal moves, which uses the Q of every visited move rather than visit counts.
    """
    root = tree.edges(slice(None), 0)
    sigma = completed_q(root, tree.raw_value[:, 0], c_visit, c_scale)
    visits = root.visits.masked_fill(~root.legal, -1.0)
    return _considered_argmax(tree, root, visits.amax(-1), sigma), torch.softmax(_log_prior(root) + sigma, dim=-1)


# ------------------------------------------------------------------------- read-outs
def search_move(tree: Tree) -> torch.Tensor:
    """``[B]`` the move a search without noise plays: the most visited one, or for a Gumbel
    tree (``tree.max_considered > 0``) the survivor of sequential halving (:func:`gumbel_readout`)."""
    return gumbel_readout(tree)[0] if tree.max_considered else visit_policy(tree, 0).argmax(-1)


def root_value(tree: Tree) -> torch.Tensor:
    """``[B]`` the search's value of each root, W/N over all its simulations."""
    return tree.value_sum[:, 0] / tree.node_visits[:, 0]


def visit_policy(tree: Tree, temperature: float = 1.0) -> torch.Tensor:
    r"""``[B, A]`` the search policy :math:`\pi(a) \propto N(s_0, a)^{1/\tau}` at the roots.

    ``temperature`` :math:`\tau = 1` gives the visit distribution AlphaZero trains its policy
    on; :math:`\tau \to 0` puts all mass on the most visited move (``temperature=0``:
    exactly, ties to the lowest index).
    """
    visits = tree.children_visits[:, 0]
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    if temperature == 0:
        return torch.nn.functional.one_hot(visits.argmax(dim=-1), visits.shape[-1]).to(visits.dtype)
    logits = visits.log() / temperature                                         # log 0 = -inf: never chosen
    return torch.softmax(logits, dim=-1)


def sample_action(policy: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B]`` one action per row of ``policy [B, A]``."""
    return torch.multinomial(policy, 1, generator=generator).squeeze(1)


def dirichlet_noise(legal: torch.Tensor, alpha: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""``[B, A]`` :math:`\eta \sim \mathrm{Dir}(\alpha)` over each row's legal actions (0 elsewhere).

    Drawn as normalised Gamma(α) variables. Small α (0.3 for chess-sized, ~1 for 7–9 moves)
    concentrates the noise on a few moves.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0; got {alpha}")
    if generator is None:
        g = torch._standard_gamma(torch.full(legal.shape, float(alpha), device=legal.device))
    else:  # Gamma(α) = Gamma(α + 1) · U^(1/α); Gamma(α + 1) by Marsaglia–Tsang with the given generator
        g = _gamma(torch.full(legal.shape, float(alpha), device=legal.device), generator)
    g = g * legal
    return g / g.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def _gamma(alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gamma(alpha) samples drawn from ``generator`` (Marsaglia & Tsang, 2000)."""
    a = alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d).sqrt()
    out = torch.zeros_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        x = torch.randn(a.shape, generator=generator, device=a.device)
        u = torch.rand(a.shape, generator=generator, device=a.device)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (u.clamp(min=1e-30).log() < 0.5 * x * x + d - d * v + d * v.clamp(min=1e-30).log())
        take = todo & ok
        out = torch.where(take, d * v, out)
        todo &= ~ok
    u = torch.rand(a.shape, generator=generator, device=a.device)
    return out * u.clamp(min=1e-30) ** (1.0 / alpha)


# ------------------------------------------------------------------------------ policies
class PolicyOutput(NamedTuple):
    """What a policy returns for B roots: the ``action [B]`` to play, the ``policy_target [B, A]``
    the network's policy learns from, and the searched ``tree`` (for values and inspection)."""
    action: torch.Tensor
    policy_target: torch.Tensor
    tree: Tree


def puct_policy(root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int, *,
                root_legal: torch.Tensor | None = None, dirichlet_alpha: float | None = None,
                noise_fraction: float = 0.25, c1: float = 1.25, c2: float = 19652.0, qtransform: str = "none",
                unvisited_q: float = 0.0, temperature: float = 1.0, explore: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> PolicyOutput:
    r"""AlphaZero's and MuZero's policy: a PUCT search; train on the visit counts, play a move drawn from them.

    With ``dirichlet_alpha``, the root prior is mixed with Dirichlet noise
    (:func:`dirichlet_noise`, weight ``noise_fraction``) before the search, so that self-play
    keeps trying every legal move; None: no noise (evaluation).

    The policy target is the visit distribution :math:`\pi(a) = N(s_0, a) / \sum_b N(s_0, b)`.
    The move is drawn from :math:`\pi(a) \propto N(s_0, a)^{1/\tau}`, :math:`\tau` =
    ``temperature`` (0: the most visited move, without a draw). ``explore [B]`` bool limits
    the draw to the roots where it is True, the others play the most visited move: AlphaZero's
    opening rule is ``explore = move_number < temperature_moves`` with :math:`\tau = 1`.

    ``root_legal`` and the search constants are those of :func:`search`; ``generator`` draws the
    noise and the move (None: torch's global generator).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    legal = torch.ones_like(root.prior_logits, dtype=torch.bool) if root_legal is None else root_legal
    if explore is not None and explore.shape != legal.shape[:1]:
        raise ValueError(f"explore must be [B] = [{legal.shape[0]}]; got {tuple(explore.shape)}")
    noise = None if dirichlet_alpha is None else dirichlet_noise(legal, dirichlet_alpha, generator)
    tree = search(root, recurrent_fn, num_simulations, root_legal=root_legal, root_noise=noise,
                  noise_fraction=noise_fraction, c1=c1, c2=c2, qtransform=qtransform, unvisited_q=unvisited_q)
    target = visit_policy(tree, 1.0)
    if temperature == 0:
        action = tree.children_visits[:, 0].argmax(-1)
    else:
        probs = target if temperature == 1.0 else visit_policy(tree, temperature)
        if explore is not None:
            probs = torch.where(explore.unsqueeze(-1), probs, visit_policy(tree, 0))
        action = sample_action(probs, generator)
    return PolicyOutput(action, target, tree)


def gumbel_policy(root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int, *,
                  root_legal: torch.Tensor | None = None, max_considered: int = 16, gumbel_scale: float = 1.0,
                  c_visit: float = 50.0, c_scale: float = 0.1,
                  generator: torch.Generator | None = None) -> PolicyOutput:
    r"""Gumbel MuZero's policy: a Gumbel search; play the survivor of sequential halving, train on the improved policy.

    The root's Gumbel noise is ``gumbel_scale`` times :func:`gumbel_noise` (0: none, the search
    is deterministic: evaluation). With noise, the choice of the ``max_considered`` root moves
    is a sample without replacement from the prior, which is all the exploration the
    policy needs: no Dirichlet noise and no temperature. The move and the target (the
    improved policy :math:`\mathrm{softmax}(\log P + \sigma(\hat q))`) are
    :func:`gumbel_readout`'s.

    ``root_legal``, ``c_visit`` and ``c_scale`` are those of :func:`search`; ``generator`` draws
    the noise (None: torch's global generator).
    """
    if gumbel_scale < 0:
        raise ValueError(f"gumbel_scale must be >= 0; got {gumbel_scale}")
    gumbel = None
    if gumbel_scale > 0:
        gumbel = gumbel_noise(tuple(root.prior_logits.shape), generator, device=root.prior_logits.device)
        if gumbel_scale != 1.0:
            gumbel = gumbel_scale * gumbel
    tree = search(root, recurrent_fn, num_simulations, root_legal=root_legal, selection="gumbel", gumbel=gumbel,
                  max_considered=max_considered, c_visit=c_visit, c_scale=c_scale)
    action, target = gumbel_readout(tree, c_visit, c_scale)
    return PolicyOutput(action, target, tree)


PolicyFn = Callable[..., PolicyOutput]


def make_policy(selection: str, num_simulations: int, *, c1: float = 1.25, c2: float = 19652.0,
                qtransform: str = "none", unvisited_q: float = 0.0, dirichlet_alpha: float | None = None,
                noise_fraction: float = 0.25, max_considered: int = 16, gumbel_scale: float = 1.0,
                c_visit: float = 50.0, c_scale: float = 0.1,
                generator: torch.Generator | None = None) -> PolicyFn:
    """The policy a ``selection`` setting names, with its settings bound, for a training loop to call.

    Returns ``policy_fn(root, recurrent_fn, root_legal=None, *, temperature=1.0, explore=None)
    -> PolicyOutput``: :func:`puct_policy` for ``"puct"`` (with ``c1``, ``c2``, ``qtransform``,
    ``unvisited_q``, ``dirichlet_alpha``, ``noise_fraction``) or :func:`gumbel_policy` for
    ``"gumbel"`` (with ``max_considered``, ``gumbel_scale``, ``c_visit``, ``c_scale``). A
    setting the chosen policy has no use for is ignored, and so are ``temperature`` and
    ``explore`` by a Gumbel policy (its move is sequential halving's survivor), so that one
    loop serves both selections. For evaluation: ``dirichlet_alpha=None``, ``gumbel_scale=0``
    and ``temperature=0``.
    """
    if selection == "puct":
        def policy(root: RootOutput, recurrent_fn: RecurrentFn, root_legal: torch.Tensor | None = None, *,
                   temperature: float = 1.0, explore: torch.Tensor | None = None) -> PolicyOutput:
            return puct_policy(root, recurrent_fn, num_simulations, root_legal=root_legal,
                               dirichlet_alpha=dirichlet_alpha, noise_fraction=noise_fraction, c1=c1, c2=c2,
                               qtransform=qtransform, unvisited_q=unvisited_q, temperature=temperature,
                               explore=explore, generator=generator)
    elif selection == "gumbel":
        def policy(root: RootOutput, recurrent_fn: RecurrentFn, root_legal: torch.Tensor | None = None, *,
                   temperature: float = 1.0, explore: torch.Tensor | None = None) -> PolicyOutput:
            return gumbel_policy(root, recurrent_fn, num_simulations, root_legal=root_legal,
                                 max_considered=max_considered, gumbel_scale=gumbel_scale, c_visit=c_visit,
                                 c_scale=c_scale, generator=generator)
    else:
        raise ValueError(f"selection must be 'puct' or 'gumbel'; got {selection!r}")
    return policy


# ------------------------------------------------------------- searching the true rules
Evaluator = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def rules_root(game, evaluate: Evaluator, states: torch.Tensor) -> tuple[RootOutput, torch.Tensor]:
    """The roots for searching ``states [B, ...]`` of ``game`` with its true rules, and their legal moves.

    ``evaluate(states) -> (prior_logits [B, A], value [B])`` is the network (or a stand-in).
    """
    logits, value = evaluate(states)
    return RootOutput(logits, value, states), game.legal(states)


def rules_search(game, evaluate: Evaluator, states: torch.Tensor, num_simulations: int, **search_kwargs) -> Tree:
    """Search ``states [B, ...]`` of ``game`` with its true rules and ``evaluate``; ``search_kwargs`` go to :func:`search`."""
    root, legal = rules_root(game, evaluate, states)
    return search(root, rules_recurrent_fn(game, evaluate), num_simulations, root_legal=legal, **search_kwargs)


def rules_recurrent_fn(game, evaluate: Evaluator) -> RecurrentFn:
    """A ``recurrent_fn`` that steps ``game``'s true rules (AlphaZero) and evaluates the new positions.

    The edge reward is +1 for the player who just won; the discount is -1 (the next node
    belongs to the opponent); a won or drawn position is terminal with value 0.
    """
    def step(states: torch.Tensor, action: torch.Tensor) -> RecurrentOutput:
        nxt, reward, done = game.step(states, action)
        logits, value = evaluate(nxt)
        return RecurrentOutput(reward=reward, discount=torch.full_like(reward, -1.0), prior_logits=logits,
                               value=torch.where(done, 0.0, value), embedding=nxt, terminal=done,
                               legal=game.legal(nxt))
    return step
