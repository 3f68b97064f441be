"""Block diagrams in matplotlib: rounded boxes and labelled arrows, for the chapters' pipeline pictures.

Example::

    fig, ax = plt.subplots(figsize=(6, 2))
    box(ax, 0, 0, 2, 1, "actor", "#dbe9f6")
    box(ax, 4, 0, 2, 1, "learner", "#fde3c8")
    arrow(ax, (2.05, 0.5), (3.95, 0.5), "unrolls")
    ax.set(xlim=(-0.2, 6.2), ylim=(-0.3, 1.3)); ax.axis("off")
"""
from __future__ import annotations

__all__ = ["arrow", "box"]


def box(ax, x: float, y: float, w: float, h: float, text: str, color: str, *, fontsize: float = 9):
    """A rounded box with its lower-left corner at ``(x, y)``, ``w`` by ``h`` data units, ``text`` centred.

    Returns the patch. ``text`` may hold ``$...$`` mathtext and newlines.
    """
    from matplotlib.patches import FancyBboxPatch

    patch = ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03,rounding_size=0.1",
                                        facecolor=color, edgecolor="black", linewidth=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    return patch


def arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str | None = None, color: str = "black",
          rad: float = 0.0, dashed: bool = False, text_offset: tuple[float, float] = (0, 0.12), *,
          fontsize: float = 8):
    """An arrow from ``start`` to ``end`` (data coordinates), bent by ``rad`` (0: straight), with an optional label.

    The label sits at the arrow's midpoint moved by ``text_offset``, in the arrow's colour.
    Returns the patch.
    """
    from matplotlib.patches import FancyArrowPatch

    patch = ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, linewidth=1.2, color=color,
                                         connectionstyle=f"arc3,rad={rad}", linestyle="--" if dashed else "-",
                                         shrinkA=2, shrinkB=2))
    if text:
        ax.text((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1], text,
                ha="center", va="bottom", fontsize=fontsize, color=color)
    return patch
