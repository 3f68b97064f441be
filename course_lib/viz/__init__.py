"""Pictures of what the algorithms do: the MCTS tree explorer (live widget and static page).

Example:
  >>> from course_lib.games import make_game
  >>> from course_lib.viz import TreeExplorer
  >>> game = make_game("tictactoe")
  >>> uniform = lambda s: (torch.zeros(s.shape[0], 9), torch.zeros(s.shape[0]))  # doctest: +SKIP
  >>> TreeExplorer(game, uniform, game.initial(1), num_simulations=20).show_static()  # doctest: +SKIP
"""
from .tree_explorer import (TreeExplorer, TreeExplorerWidget, board_svg, layout, player_names, render_panel,
                            render_svg, static_html, tree_snapshot)

__all__ = ["TreeExplorer", "TreeExplorerWidget", "board_svg", "layout", "player_names", "render_panel",
           "render_svg", "static_html", "tree_snapshot"]
