"""Pictures of what the algorithms do, live in a kernel and explorable in the book.

* :mod:`~course_lib.viz.page`: the static explorable page every visualisation ships for the book
  (precomputed frames, sliders, clickable parts; no kernel, no network).
* :mod:`~course_lib.viz.live`: one output holding a live widget and its static page.
* :mod:`~course_lib.viz.figures`: a matplotlib drawing behind sliders, live and as PNG frames.
* :mod:`~course_lib.viz.tree`, :mod:`~course_lib.viz.tree_explorer`: the MCTS tree and its explorer.
* :mod:`~course_lib.viz.attention`: the attention-map explorer (tokens x layers, heads, ViT patches).
* :mod:`~course_lib.viz.votes`: the votes-per-K explorer of self-consistency.
* :mod:`~course_lib.viz.boards`: board positions as SVG.
* :mod:`~course_lib.viz.curves`: learning curves (static and live).
* :mod:`~course_lib.viz.diagrams`, :mod:`~course_lib.viz.tables`: block diagrams; win/draw/loss tables.

Example:
  >>> from course_lib.games import make_game
  >>> from course_lib.viz import TreeExplorer
  >>> game = make_game("tictactoe")
  >>> uniform = lambda s: (torch.zeros(s.shape[0], 9), torch.zeros(s.shape[0]))  # doctest: +SKIP
  >>> TreeExplorer(game, uniform, game.initial(1), num_simulations=20).show_static()  # doctest: +SKIP
"""
from .attention import (AttentionExplorerWidget, attention_explorer, attention_flow, attention_page,
                        attention_rollout, check_attention_weights, cls_attention_maps, cls_rollout_maps,
                        head_layer_grid, tokens_layers_svg, vit_attention_html)
from .boards import board_svg, boards_html, player_names, show_boards
from .curves import LiveCurve, plot_learning_curve, smooth
from .diagrams import arrow, box
from .figures import figure_explorer, figure_html, figure_page, image_html
from .live import LiveAndStatic, show_explorer
from .page import Frame, Slider, explorable_page, frame_index, grid_values, read_page
from .tables import both_sides, wdl, wdl_table
from .tree import layout, render_panel, render_svg, tree_snapshot
from .votes import votes_explorer, votes_figure
from .tree_explorer import TreeExplorer, TreeExplorerWidget, static_html

__all__ = ["AttentionExplorerWidget", "Frame", "LiveAndStatic", "LiveCurve", "Slider", "TreeExplorer",
           "TreeExplorerWidget", "arrow", "attention_explorer", "attention_flow", "attention_page",
           "attention_rollout", "board_svg", "boards_html", "both_sides", "box", "check_attention_weights",
           "cls_attention_maps", "cls_rollout_maps", "explorable_page", "figure_explorer", "figure_html",
           "figure_page", "frame_index", "grid_values", "head_layer_grid", "image_html", "layout", "player_names",
           "plot_learning_curve", "read_page", "render_panel", "render_svg", "show_boards", "show_explorer",
           "smooth", "static_html", "tokens_layers_svg", "tree_snapshot", "vit_attention_html", "votes_explorer",
           "votes_figure", "wdl", "wdl_table"]
