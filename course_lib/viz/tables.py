"""Win/draw/loss results of board-game evaluations as text.

The results are those of :func:`~course_lib.games.evaluate_players`:
``{"as_first": {"wins", "draws", "losses"}, "as_second": {...}}``, counted from the side of the
player being evaluated.

Example::

    >>> result = {"as_first": {"wins": 3, "draws": 1, "losses": 0}, "as_second": {"wins": 1, "draws": 2, "losses": 1}}
    >>> wdl(result["as_first"])
    '3/1/0'
    >>> print(wdl_table({"vs random": result}))
                 as first  as second   (wins/draws/losses)
      vs random     3/1/0      1/2/1
"""
from __future__ import annotations

from typing import Mapping

__all__ = ["both_sides", "wdl", "wdl_table"]


def wdl(result: Mapping[str, int]) -> str:
    """``"wins/draws/losses"`` of one side of an evaluation."""
    missing = {"wins", "draws", "losses"} - set(result)
    if missing:
        raise ValueError(f"a result needs wins, draws and losses; {sorted(missing)} missing from {dict(result)}")
    return f"{result['wins']}/{result['draws']}/{result['losses']}"


def _check(result: Mapping) -> None:
    if not isinstance(result, Mapping) or not {"as_first", "as_second"} <= set(result):
        raise ValueError(f"expected an evaluate_players result with 'as_first' and 'as_second'; got {result!r}")


def both_sides(result: Mapping[str, Mapping[str, int]]) -> str:
    """``"w/d/l as first, w/d/l as second (W/D/L)"``: both sides of an evaluation in one phrase."""
    _check(result)
    return f"{wdl(result['as_first'])} as first, {wdl(result['as_second'])} as second (W/D/L)"


def wdl_table(rows: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
    """A text table, one row per ``{label: evaluate_players result}``: wins/draws/losses as first and as second."""
    if not rows:
        raise ValueError("wdl_table needs at least one row")
    for result in rows.values():
        _check(result)
    width = max(len(label) for label in rows) + 2
    lines = [f"{'':{width}}{'as first':>10}{'as second':>11}   (wins/draws/losses)"]
    lines += [f"  {label:{width - 2}}{wdl(r['as_first']):>10}{wdl(r['as_second']):>11}" for label, r in rows.items()]
    return "\n".join(lines)
