"""Batched Monte-Carlo tree search (AlphaZero, MuZero): select / expand / backup, and the PUCT and Gumbel policies."""
from .mcts import (Edges, Path, PolicyOutput, RecurrentOutput, RootOutput, Tree, backup, backup_values, completed_q,
                   considered_visits, dirichlet_noise, expand, gumbel_noise, gumbel_policy, gumbel_readout, init_tree,
                   make_policy, puct_policy, puct_scores, root_value, rules_recurrent_fn, rules_root, rules_search,
                   sample_action, search, search_move, select, simulate, visit_policy)

__all__ = ["Edges", "Path", "PolicyOutput", "RecurrentOutput", "RootOutput", "Tree", "backup", "backup_values",
           "completed_q", "considered_visits", "dirichlet_noise", "expand", "gumbel_noise", "gumbel_policy",
           "gumbel_readout", "init_tree", "make_policy", "puct_policy", "puct_scores", "root_value",
           "rules_recurrent_fn", "rules_root", "rules_search", "sample_action", "search", "search_move", "select",
           "simulate", "visit_policy"]
