r"""Multi-step arithmetic with worked steps: the chapter's task family, generated in code.

A problem is a sum of signed terms, some of them products with a one-digit factor::

    Q:37+48-19*2+6=?

and its *trace* writes every intermediate result, then the answer::

    19*2=38;37+48=85;85-38=47;47+6=53;answer:53

Products come first (precedence), then the signed terms are combined one at a time. With
``order="random"`` (the default) the terms are combined in a random order, so one problem has
many correct traces (``48+6=54;54+37=91;91-38=53;...``): the "many reasoning paths to one answer"
that self-consistency votes over. ``order="left"`` always goes left to right.

The difficulty knob is :class:`ArithmeticTask`: ``terms`` (how many operands: ``terms - 1``
combining steps, plus one per product), ``digits`` (operand size) and ``products`` (the chance
that a term after the first is a product). Problems are drawn from a seeded :class:`random.Random`,
so a seed gives the same problems on every machine; :func:`held_out_problems` are drawn with a
fixed seed and the training stream (:meth:`ArithmeticTask.training_batch`) skips every question
in that set, so training and held-out problems are disjoint.

The character vocabulary (:data:`CHARS`) is fixed by the family, whatever the difficulty, so
one :func:`tokenizer` covers every problem: ``<pad>``, ``<bos>``, ``<eos>`` and the characters
``0-9 + - * = ? ; : Q a n s w e r`` and newline.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

from ..language import CharTokenizer

__all__ = ["CHARS", "SPECIALS", "HELD_OUT_SEED", "Problem", "ArithmeticTask", "tokenizer", "held_out_problems",
           "check_trace", "ANSWER_PREFIX"]

CHARS = "0123456789+-*=?;:\nQanswer"
SPECIALS = ("<pad>", "<bos>", "<eos>")
ANSWER_PREFIX = "answer:"
HELD_OUT_SEED = 1_000_003          # the held-out set's seed: fixed, never a training seed


@dataclass(frozen=True)
class Problem:
    """One problem: ``question`` (``"Q:37+48-19*2=?\\n"``, the prompt), one correct ``trace``
    (steps and ``answer:N``, without the end token) and the integer ``answer``."""

    question: str
    trace: str
    answer: int

    @property
    def text(self) -> str:
        return self.question + self.trace


def _fmt_step(a: int, op: str, b: int, result: int) -> str:
    return f"{a}{op}{b}={result};"


@dataclass(frozen=True)
class ArithmeticTask:
    """The difficulty knob. ``terms`` operands of ``digits`` digits each (no leading zeros); each
    term after the first is subtracted with probability ``minus`` and, with probability ``products``,
    is a product ``a*d`` with a one-digit ``d`` in 2..9. ``order``: how the trace combines the terms,
    ``"random"`` (many correct traces per problem) or ``"left"`` (one)."""

    terms: int = 4
    digits: int = 2
    products: float = 0.25
    minus: float = 0.4
    order: str = "random"

    def __post_init__(self) -> None:
        if self.terms < 2 or self.digits < 1 or not 0 <= self.products <= 1 or not 0 <= self.minus <= 1:
            raise ValueError(f"ArithmeticTask needs terms >= 2, digits >= 1, 0 <= products, minus <= 1; got "
                             f"terms={self.terms}, digits={self.digits}, products={self.products}, minus={self.minus}")
        if self.order not in ("random", "left"):
            raise ValueError(f"ArithmeticTask.order = {self.order!r}; accepted: random, left")

    @property
    def max_steps(self) -> int:
        """The most steps a trace can have: one per product and ``terms - 1`` combinations."""
        return 2 * (self.terms - 1)

    def max_length(self) -> int:
        """A bound on the tokens of ``<bos> + question + trace + <eos>`` (sizes the position table)."""
        n = self.digits + 1                                          # an operand, or a product of one
        big = len(str(self.terms * (10 ** self.digits) * 9)) + 1    # any intermediate, with its sign
        question = 2 + self.terms * (self.digits + 2) + 3
        steps = (self.terms - 1) * (self.digits + 4 + n) + (self.terms - 1) * (3 * big + 3)
        return 1 + question + steps + len(ANSWER_PREFIX) + big + 1

    def sample(self, rng: random.Random) -> Problem:
        """One problem and a correct trace (in ``order``), drawn with ``rng``."""
        lo, hi = 10 ** (self.digits - 1), 10 ** self.digits - 1
        question, steps, signed = "Q:", [], []                       # signed: (sign, value) of each term
        for i in range(self.terms):
            a = rng.randint(lo, hi)
            sign = -1 if i > 0 and rng.random() < self.minus else 1
            if i > 0:
                question += "-" if sign < 0 else "+"
            if i > 0 and rng.random() < self.products:
                d = rng.randint(2, 9)
                question += f"{a}*{d}"
                steps.append(_fmt_step(a, "*", d, a * d))
                a *= d
            else:
                question += str(a)
            signed.append((sign, a))
        question += "=?\n"
        order = list(range(self.terms))
        if self.order == "random":
            rng.shuffle(order)
        # The running total starts from the first term of the order, negated if it is subtracted.
        sign, value = signed[order[0]]
        total = sign * value
        for j in order[1:]:
            sign, value = signed[j]
            new = total + sign * value
            steps.append(_fmt_step(total, "+" if sign > 0 else "-", value, new))
            total = new
        return Problem(question, "".join(steps) + f"{ANSWER_PREFIX}{total}", total)

    def problems(self, n: int, seed: int, exclude: Iterable[str] = ()) -> list[Problem]:
        """``n`` problems from ``random.Random(seed)``, skipping questions in ``exclude``."""
        rng, skip, out = random.Random(seed), set(exclude), []
        while len(out) < n:
            p = self.sample(rng)
            if p.question not in skip:
                out.append(p)
        return out


def held_out_problems(task: ArithmeticTask, n: int = 200) -> list[Problem]:
    """The held-out problems: the first ``n`` distinct questions of ``task`` with the fixed
    :data:`HELD_OUT_SEED` (training streams skip every one of them)."""
    rng, seen, out = random.Random(HELD_OUT_SEED), set(), []
    while len(out) < n:
        p = task.sample(rng)
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out


def tokenizer() -> CharTokenizer:
    """The family's character tokenizer: ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``, then :data:`CHARS`."""
    return CharTokenizer(CHARS, SPECIALS)


def check_trace(question: str, trace: str) -> list[bool]:
    """Whether each written step ``a op b = c`` of ``trace`` is arithmetically right (a calculator
    over the steps; the question is not consulted). Malformed steps count as wrong."""
    del question
    ok = []
    for step in trace.split(";"):
        if not step or step.startswith(ANSWER_PREFIX):
            continue
        try:
            lhs, rhs = step.split("=")
            body = lhs[1:]
            for op in "*+-":                       # the operator after the first (possibly negative) number
                if op in body:
                    i = body.index(op) + 1
                    a, b = int(lhs[:i]), int(lhs[i + 1:])
                    value = {"*": a * b, "+": a + b, "-": a - b}[op]
                    break
            else:
                raise ValueError(step)
            ok.append(value == int(rhs))
        except ValueError:
            ok.append(False)
    return ok
