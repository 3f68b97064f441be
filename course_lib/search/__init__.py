"""Batched Monte-Carlo tree search (AlphaZero, MuZero)."""
from .mcts import (RecurrentOutput, RootOutput, Tree, backup_values, completed_q, considered_visits, dirichlet_noise,
                   gumbel_noise, gumbel_policy, init_tree, puct_scores, root_value, rules_recurrent_fn, rules_root,
                   rules_search, sample_action, search, search_move, simulate, visit_policy)

__all__ = ["RecurrentOutput", "RootOutput", "Tree", "backup_values", "completed_q", "considered_visits",
           "dirichlet_noise", "gumbel_noise", "gumbel_policy", "init_tree", "puct_scores", "root_value",
           "rules_recurrent_fn", "rules_root", "rules_search", "sample_action", "search", "search_move", "simulate",
           "visit_policy"]
