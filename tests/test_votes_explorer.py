"""The votes-per-K explorer: one frame per problem and K, the vote of the first K answers in each."""
import matplotlib
import pytest

from course_lib.viz import read_page, votes_explorer, votes_figure

matplotlib.use("Agg")


def test_figure_counts_the_first_k_answers_and_names_the_vote():
    answers = [12, 47, 47, None, 12, 12]
    fig = votes_figure(answers, 3, correct=47)
    assert "voted 47" in fig.axes[0].get_title() and "right" in fig.axes[0].get_title()
    heights = sorted(bar.get_height() for bar in fig.axes[0].patches)
    assert heights == [1, 2]
    fig = votes_figure(answers, 6, correct=47)
    assert "voted 12" in fig.axes[0].get_title() and "wrong" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["12", "47", "no answer"]
    with pytest.raises(ValueError, match="k must be"):
        votes_figure(answers, 7)


def test_explorer_has_a_frame_per_problem_and_k_and_a_live_widget():
    answers = {"p1": [1, 2, 2, 2, 1], "p2": [None, 5, 5, 3, 3]}
    shown = votes_explorer(answers, {"p1": 2, "p2": 3}, ks=(1, 3, 5))
    page = read_page(shown.html)
    assert [s.name for s in page["sliders"]] == ["problem", "K"]
    assert len(page["frames"]) == 6
    assert shown.widget is not None
    with pytest.raises(ValueError, match="ks must lie"):
        votes_explorer(answers, ks=(1, 6))
