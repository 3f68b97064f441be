"""The reasoning chapter's task family, decoding helpers and the `reasoner` training command."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

from course_lib.agents import load_agent
from course_lib.agents.reasoner import ReasonerConfig, make_batch, train
from course_lib.nets.transformer import GPT, TransformerConfig
from course_lib.reasoning.decoding import encode_prompt, greedy_paths, sample_paths
from course_lib.reasoning.tasks import (CHARS, ArithmeticTask, check_trace, held_out_problems, tokenizer)


# ------------------------------------------------------------------------------------ the task family
def test_generator_is_deterministic_and_seeds_differ():
    task = ArithmeticTask()
    assert task.problems(50, seed=3) == task.problems(50, seed=3)
    assert task.problems(50, seed=3) != task.problems(50, seed=4)
    assert held_out_problems(task, 30) == held_out_problems(task, 30)


@pytest.mark.parametrize("task", [ArithmeticTask(), ArithmeticTask(terms=6, digits=3, products=0.5),
                                  ArithmeticTask(terms=3, order="left", minus=1.0)])
def test_every_written_step_is_right_and_the_answer_is_the_questions_value(task):
    for p in task.problems(300, seed=0):
        steps = check_trace(p.question, p.trace)
        assert steps and all(steps), p.text
        expression = p.question[2:p.question.index("=")]
        assert eval(expression) == p.answer, p.text                      # noqa: S307 (digits and + - * only)
        assert p.trace.endswith(f"answer:{p.answer}")
        # the last step's result is the answer
        assert int(p.trace.split(";")[-2].split("=")[1]) == p.answer


def test_check_trace_catches_a_wrong_step_and_a_malformed_one():
    assert check_trace("", "12+30=42;42-50=-8;answer:-8") == [True, True]
    assert check_trace("", "12+30=43;42-50=-8;answer:-8") == [False, True]
    assert check_trace("", "12+30=;4*=8;answer:8") == [False, False]


def test_difficulty_knob_sets_the_number_of_steps():
    def steps(task):
        return [len(check_trace(p.question, p.trace)) for p in task.problems(200, seed=1)]

    assert set(steps(ArithmeticTask(terms=2, products=0.0))) == {1}
    assert set(steps(ArithmeticTask(terms=5, products=0.0))) == {4}
    with_products = steps(ArithmeticTask(terms=5, products=1.0))
    assert set(with_products) == {8} and ArithmeticTask(terms=5).max_steps == 8


def test_random_order_starts_anywhere_and_left_order_at_the_first_operand():
    def starts_with_first(task):
        out = []
        for p in task.problems(100, seed=0):
            first = p.question[2:].split("+")[0].split("-")[0]
            out.append(p.trace.startswith(first + "+") or p.trace.startswith(first + "-"))
        return out

    assert all(starts_with_first(ArithmeticTask(terms=4, products=0.0, order="left")))
    assert sum(starts_with_first(ArithmeticTask(terms=4, products=0.0, order="random"))) < 60


def test_held_out_and_training_questions_are_disjoint():
    cfg = ReasonerConfig(terms=2, digits=1, products=0.0)      # a tiny space, so collisions would happen
    task = cfg.task
    held = {p.question for p in held_out_problems(task, 20)}
    train_qs = {p.question for p in task.problems(500, seed=0, exclude=held)}
    assert held and not held & train_qs


def test_tokenizer_covers_every_character_and_round_trips():
    tok = tokenizer()
    assert tok.specials == ("<pad>", "<bos>", "<eos>") and len(tok) == 3 + len(CHARS)
    for task in (ArithmeticTask(), ArithmeticTask(terms=7, digits=4, products=1.0, minus=1.0)):
        for p in task.problems(200, seed=2):
            assert tok.decode(tok.encode(p.text)) == p.text
            assert 1 + len(p.text) + 1 <= task.max_length()


def test_make_batch_masks_the_question_and_the_padding():
    problems = ArithmeticTask().problems(3, seed=0)
    inputs, targets = make_batch(problems, mask_question=True)
    tok = tokenizer()
    for b, p in enumerate(problems):
        kept = targets[b][targets[b] != -100]
        assert tok.decode(kept, skip_specials=False) == p.trace + "<eos>"
        assert inputs[b, 0] == tok.id("<bos>")
    _, full = make_batch(problems, mask_question=False)
    assert tok.decode(full[0][full[0] != -100], skip_specials=False) == problems[0].text + "<eos>"


# ------------------------------------------------------------------------------------ decoding
def test_generate_stop_token_pads_finished_rows_and_stops_early():
    torch.manual_seed(0)
    model = GPT(TransformerConfig(d_model=16, n_heads=2, n_layers=1, max_len=64), vocab_size=3)
    idx = torch.zeros(8, 1, dtype=torch.long)
    plain = model.generate(idx, 40, temperature=2.0, generator=torch.Generator().manual_seed(1))
    assert plain.shape == (8, 41)                                      # the default decodes every token
    stopped = model.generate(idx, 40, temperature=2.0, generator=torch.Generator().manual_seed(1), stop_token=2)
    assert stopped.shape[1] < 41                                       # every row ended before 40 tokens
    for row, ref in zip(stopped[:, 1:].tolist(), plain[:, 1:].tolist()):
        end = row.index(2)
        assert set(row[end:]) == {2}                                   # padding after the end
        assert row[:end + 1] == ref[:end + 1]                          # same samples up to the end


def test_sample_paths_shapes_determinism_and_greedy():
    torch.manual_seed(0)
    tok = tokenizer()
    model = GPT(TransformerConfig(d_model=16, n_heads=2, n_layers=1, max_len=40), len(tok))
    prompts = ["Q:1+2=?\n", "Q:12+34=?\n", "Q:3+4=?\n"]
    paths = sample_paths(model, tok, prompts, 5, temperature=1.0, seed=3, max_new_tokens=10)
    assert [len(p) for p in paths] == [5, 5, 5] and all(len(t) <= 10 for row in paths for t in row)
    assert paths == sample_paths(model, tok, prompts, 5, temperature=1.0, seed=3, max_new_tokens=10)
    assert paths != sample_paths(model, tok, prompts, 5, temperature=1.0, seed=4, max_new_tokens=10)
    greedy = greedy_paths(model, tok, prompts, max_new_tokens=10)
    alone = [greedy_paths(model, tok, [p], max_new_tokens=10)[0] for p in prompts]
    assert greedy == alone                                           # batching changes nothing
    assert encode_prompt(tok, "Q:")[0] == tok.id("<bos>")
    with pytest.raises(ValueError, match="k >= 1"):
        sample_paths(model, tok, prompts, 0)


# ------------------------------------------------------------------------------------ training
def _cli(*args, check=False):
    proc = subprocess.run([sys.executable, "-m", "course_lib", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_quick_run_resume_and_load_agent(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", "reasoner", "--preset", "quick", "--seed", "1", "--device", "cpu", "--out", out, check=True)
    assert proc.stdout.startswith("reasoner seed 1: greedy accuracy "), proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "reasoner" and summary["eval_problems"] == 20 and summary["updates"] == 60
    assert 0 <= summary["greedy_accuracy"] <= 1 and summary["train_seconds"] > 0
    agent = load_agent(out)
    assert isinstance(agent.model, GPT) and agent.steps == 60
    assert "already holds a run; pass --resume" in _cli("train", "reasoner", "--preset", "quick", "--out", out).stderr
    _cli("train", "reasoner", "--resume", "--out", out, "--quiet", check=True)
    assert json.loads((out / "summary.json").read_text())["resumes"] == 1
    err = _cli("train", "reasoner", "--order", "sideways", "--out", tmp_path / "bad").stderr.strip()
    assert len(err.splitlines()) == 1 and "random" in err and "left" in err


def test_interrupted_run_resumes_identically(tmp_path):
    # (no deterministic=True: it imports torch._inductor, a minute here; one CPU thread is deterministic already)
    cfg = ReasonerConfig.from_dict({"steps": 40, "checkpoint_every": 10, "log_every": 10, "device": "cpu"},
                                   preset="quick")
    whole = train(cfg, tmp_path / "whole", progress=False)

    class Stop(Exception):
        pass

    def stop_at_30(row):
        if row.get("step") == 30 and "loss" in row:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "split", progress=False, callback=stop_at_30)
    resumed = train(cfg, tmp_path / "split", resume=True, progress=False)
    assert resumed["resumes"] == 1 and resumed["updates"] == whole["updates"] == 40
    assert resumed["greedy_accuracy"] == whole["greedy_accuracy"]
    a, b = load_agent(tmp_path / "whole").model, load_agent(tmp_path / "split").model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
