"""Self-consistency's four steps and the vote curve, on paths whose answers the test chooses."""
import torch

from course_lib.nets.transformer import GPT, TransformerConfig
from course_lib.reasoning import self_consistency as sc
from course_lib.reasoning.tasks import tokenizer

# Two problems (right answers 5 and 7); six sampled paths each, per sampling seed.
PATHS = {0: [["answer:5", "answer:3", "answer:3", "junk", "answer:5", "answer:5"],
             ["answer:7", "1+1=2;", "answer:8", "answer:8", "answer:7", "answer:7"]],
         1: [["answer:3", "answer:5", "answer:5", "answer:5", "answer:5", "answer:1"],
             ["answer:2", "answer:2", "answer:2", "answer:7", "answer:7", "answer:7"]]}


def fake_sample(model, tok, questions, k, *, seed, **kw):
    return [row[:k] for row in PATHS[seed]]


def test_vote_curve_is_the_majority_of_the_first_k_answers(monkeypatch):
    monkeypatch.setattr(sc, "sample_paths", fake_sample)
    monkeypatch.setattr(sc, "greedy_paths", lambda model, tok, questions: ["answer:5", "answer:x"])
    result = sc.vote_curve(None, None, ["q1", "q2"], [5, 7], ks=(1, 2, 3, 6), seeds=(0, 1))
    assert result["greedy"] == 0.5                                   # a malformed greedy path is wrong
    # seed 0: K=1 both right; K=2: 5 vs 3 tie -> 5 (first); 7 alone (no answer ignored) -> both right;
    # K=3: 3 beats 5 (wrong), 7 vs 8 tie -> 7 (right); K=6: 5 and 7 (3 votes each) right.
    assert result["curves"][0] == {1: 1.0, 2: 1.0, 3: 0.5, 6: 1.0}
    # seed 1: K=1 both wrong; K=2: 3 vs 5 tie -> 3, 2 -> wrong; K=3: 5, 2; K=6: 5, 2 vs 7 tie -> 2.
    assert result["curves"][1] == {1: 0.0, 2: 0.0, 3: 0.5, 6: 0.5}
    assert result["mean"] == {1: 0.5, 2: 0.5, 3: 0.5, 6: 0.75} and result["min"][6] == 0.5
    assert result["path_accuracy"] == [6 / 12, 7 / 12]


def test_self_consistency_votes_on_the_sampled_paths(monkeypatch):
    monkeypatch.setattr(sc, "sample_paths", fake_sample)
    votes, paths = sc.self_consistency(None, None, ["q1", "q2"], 6, seed=1)
    assert [v.answer for v in votes] == [5, 2] and paths == PATHS[1]
    assert votes[0].tally == {3: 1, 5: 4, 1: 1}


def test_runs_on_a_real_model_end_to_end():
    torch.manual_seed(0)
    tok = tokenizer()
    model = GPT(TransformerConfig(d_model=16, n_heads=2, n_layers=1, max_len=96), len(tok)).eval()
    result = sc.vote_curve(model, tok, ["Q:1+2=?\n"], [3], ks=(1, 2), seeds=(0,))
    assert 0 <= result["greedy"] <= 1 and set(result["curves"][0]) == {1, 2}
