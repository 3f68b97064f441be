"""course_lib.language: the tokenizer, the autoregressive factorisation, BERT's corruption statistics and
GPT training on the offline corpus."""
import math

import pytest
import torch

from course_lib.language import (CharTokenizer, all_sequences, bert_mask, next_token_loss, python_docs_corpus,
                                 sample_text, sequence_log_prob, train_gpt)
from course_lib.nets.transformer import GPT, TransformerConfig


def test_tokenizer_round_trip_and_errors():
    tok = CharTokenizer.from_text("hello world", specials=("<bos>", "[MASK]"))
    assert tok.vocab[:2] == ["<bos>", "[MASK]"] and len(tok) == 2 + len(set("hello world"))
    ids = tok.encode("world hello")
    assert tok.decode(ids) == "world hello"
    assert tok.decode([tok.id("<bos>")] + ids.tolist()) == "world hello"
    assert tok.decode([tok.id("<bos>")], skip_specials=False) == "<bos>"
    with pytest.raises(ValueError, match="'z' is not in"):
        tok.encode("zebra")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.id("[CLS]")


def test_corpus_ships_with_python():
    text = python_docs_corpus()
    assert len(text) > 300_000 and "assert" in text and "  " not in text
    assert python_docs_corpus(1000) == text[:1000]


def test_factorisation_one_pass_equals_step_by_step_and_sums_to_one():
    torch.manual_seed(0)
    model = GPT(TransformerConfig(d_model=16, n_heads=2, n_layers=2, max_len=8), vocab_size=4).eval()
    seqs = all_sequences(range(4), 4)                                     # every sequence: 4^4
    assert seqs.shape == (256, 4) and len({tuple(s) for s in seqs.tolist()}) == 256
    log_p, factors = sequence_log_prob(model, seqs, bos=0)
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(factors.sum(-1), log_p)
    seq = seqs[123]
    prefix, step_log_p = torch.tensor([[0]]), 0.0                        # the chain rule, one token at a time
    with torch.no_grad():
        for x in seq.tolist():
            step_log_p += model(prefix)[0, -1].log_softmax(-1)[x].item()
            prefix = torch.cat((prefix, torch.tensor([[x]])), 1)
    assert math.isclose(step_log_p, log_p[123].item(), abs_tol=1e-5)
    with pytest.raises(ValueError, match="long"):
        sequence_log_prob(model, seqs.float(), bos=0)


def test_bert_mask_follows_the_15_80_10_10_recipe():
    vocab, mask_id = 50, 3
    tokens = torch.randint(4, vocab, (400_000,), generator=torch.Generator().manual_seed(0))
    protected = torch.zeros_like(tokens, dtype=torch.bool)
    protected[::10] = True                                               # e.g. [CLS]/[SEP]/padding
    inputs, targets, selected = bert_mask(tokens, mask_id=mask_id, vocab_size=vocab, replace=range(4, vocab),
                                          protected=protected, generator=torch.Generator().manual_seed(1))
    free = ~protected
    n = selected.sum().item()
    assert abs(n / free.sum().item() - 0.15) < 0.003
    assert not selected[protected].any()
    as_mask = (inputs == mask_id)[selected].float().mean().item()
    unchanged = (inputs == tokens)[selected].float().mean().item()
    changed = ((inputs != tokens) & (inputs != mask_id))[selected].float().mean().item()
    assert abs(as_mask - 0.8) < 0.01
    # a random replacement equals the original 1 time in 46: "unchanged" is 10 % + 10 %/46
    assert abs(unchanged - (0.1 + 0.1 / 46)) < 0.006 and abs(changed - 0.1 * 45 / 46) < 0.006
    assert torch.equal(inputs[~selected], tokens[~selected])             # nothing else is touched
    assert torch.equal(targets[selected], tokens[selected]) and torch.all(targets[~selected] == -100)
    replaced = inputs[selected & (inputs != tokens) & (inputs != mask_id)]
    assert replaced.min() >= 4 and replaced.max() < vocab                # drawn from `replace` only
    counts = torch.bincount(replaced - 4, minlength=46).float()
    assert counts.min() > 0.7 * counts.mean()                            # uniformly
    with pytest.raises(ValueError, match="mask_id"):
        bert_mask(tokens, mask_id=60, vocab_size=vocab)


def test_gpt_learns_a_repeating_text_and_samples_it(tmp_path):
    text = "abcde fghij " * 200
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GPT(TransformerConfig(d_model=32, n_heads=2, n_layers=2, max_len=32), len(tok))
    rows = []
    history = train_gpt(model, tok.encode(text), steps=120, batch_size=16, seq_len=24, learning_rate=3e-3,
                        progress=False, log_every=20, callback=rows.append)
    assert history == rows and history[-1]["step"] == 120
    assert history[-1]["loss"] < 0.2 < history[0]["loss"]
    assert sample_text(model, tok, "abc", 9, temperature=0) == "abcde fghij "
    windows = tok.encode(text)[:25 * 4].view(4, 25)
    assert next_token_loss(model, windows).item() < 0.2
    with pytest.raises(ValueError, match="longer than seq_len"):
        train_gpt(model, tok.encode("abc"), steps=1, seq_len=24)
