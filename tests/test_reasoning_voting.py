"""Answer extraction on adversarial strings, and the three aggregations of self-consistency."""
import pytest

from course_lib.reasoning import consensus_vote, extract_answer, majority_vote, weighted_vote


@pytest.mark.parametrize("path,expected", [
    ("37+48=85; 85-38=47; answer: 47", 47),
    ("answer:47\n", 47),
    ("... answer: -3<eos>", -3),
    ("answer: +7", 7),
    ("answer:\t 8  ", 8),
    ("answer: 1.5", 1.5),
    ("answer: 7.", 7),
    ("answer: 4\nanswer: 5", 4),                       # the first answer line counts
    ("answer: 5<eos>answer: 6 and some junk", 5),
    ("1+1=2; answer: 2\n3+3=7 (rambling after the answer)", 2),
])
def test_extracts_the_number_on_the_first_answer_line(path, expected):
    got = extract_answer(path)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("path", [
    "",                                   # nothing
    "37+48=85; 85-38=47",                 # no marker
    "answer:",                            # cut off
    "answer: ",
    "answer: x",
    "answer: 12x",                        # trailing garbage on the line
    "answer: 3 or 4",
    "answer: - 5",                        # a bare sign
    "answer: 7..",
    "answer: 0x1F",
    "answer: 1,000",
    "answer: 99999999999999999999",       # more digits than any answer
    "answer: ٣",                          # a non-ASCII digit
    "Answer: 5",                          # the marker is lower-case
    "answer: 12abc\nanswer: 13",          # the first answer line is malformed: no falling back to a later one
])
def test_malformed_paths_have_no_answer(path):
    assert extract_answer(path) is None


def test_extract_refuses_non_strings():
    with pytest.raises(TypeError, match="str"):
        extract_answer(47)


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_sample():
    vote = majority_vote([5, None, 7, 5, 7, None])
    assert vote.answer == 5 and vote.support == 2 and vote.share == 0.5 and vote.tally == {5: 2, 7: 2}
    assert majority_vote([7, 5, 5, 7]).answer == 7
    assert majority_vote([3, 4, 4]).answer == 4
    empty = majority_vote([None, None])
    assert empty.answer is None and empty.share == 0.0
    with pytest.raises(ValueError, match="finite"):
        majority_vote([1, float("nan")])


def test_weighted_vote_lets_a_confident_minority_win():
    answers = [10, 10, 10, 12, 12]
    assert majority_vote(answers).answer == 10
    vote = weighted_vote(answers, [0.1, 0.1, 0.1, 0.9, 0.8])
    assert vote.answer == 12 and vote.support == pytest.approx(1.7) and vote.share == pytest.approx(1.7 / 2.0)
    assert weighted_vote([1, None, 2], [0.2, 5.0, 0.3]).answer == 2       # a path without answer has no say
    with pytest.raises(ValueError, match="one weight per answer"):
        weighted_vote([1, 2], [1.0])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_vote([1, 2], [1.0, -1.0])


def test_consensus_merges_answers_within_tolerance_and_flags_a_weak_majority():
    vote, agreed = consensus_vote([0.5, 0.4999999999, 0.7, None])
    assert vote.answer == 0.5 and vote.support == 2 and agreed
    vote, agreed = consensus_vote([1, 2, 3, 1], min_share=0.6)
    assert vote.answer == 1 and vote.share == 0.5 and not agreed
    vote, agreed = consensus_vote([100, 101, 102], rel_tol=0.02)           # one cluster within 2 %
    assert vote.support == 3 and agreed
    assert consensus_vote([None])[1] is False
