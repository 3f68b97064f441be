"""course_lib.grading: the checks every hidden test of the assignments runs, tried as a cheating student would.

Each "student" function is compiled from source under its own file name, as a notebook cell would be, so that
the grader tells it from the test (this file), exactly as it tells a solution cell from the hidden test cell.
Every test gets a fresh record (as a kernel would at start) and leaves torch, numpy, math and course_lib as it
found them. The whole round through nbgrader, with generated cheating submissions, is in test_nbgrader.py.
"""
from __future__ import annotations

import builtins
import functools
import math
import sys
import textwrap
import threading
import types

import numpy as np
import pytest
import torch

import course_lib.returns
from course_lib import grading

GAE = "course_lib.returns.gae_advantages"


@pytest.fixture(autouse=True)
def fresh_record(monkeypatch):
    """A record as the kernel takes it at start; the watch closed after each test."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    previous = grading._RECORD
    grading._RECORD = grading._Record(early=True)
    yield grading._RECORD
    grading._close_watch()
    grading._RECORD = previous


def student(source: str, name: str = "gae_advantages", **namespace):
    """Defines `name` from `source` as a notebook cell would (own file name, a __main__-like namespace)."""
    globals_ = {"__name__": "__main__", "torch": torch, "np": np, "math": math, **namespace}
    exec(compile(textwrap.dedent(source), f"<student cell {name}>", "exec"), globals_)
    return globals_[name]


HONEST_GAE = """
def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    not_terminated = (~terminated).to(rewards.dtype)
    not_done = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages
"""


def rollout(seed=0, T=6, B=3):
    gen = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(T, B, generator=gen) for _ in range(3))
    term = torch.rand(T, B, generator=gen) < 0.3
    trunc = torch.rand(T, B, generator=gen) < 0.2
    return r, v, nv, term, trunc, 0.9, 0.8


def graded(function):
    """What a hidden test does: own_work, compare with the reference, own_work again. Raises AssertionError."""
    grading.own_work(function)
    reference = grading.reference(GAE)
    inputs = rollout()
    grading.assert_close(function(*inputs), reference(*inputs))
    grading.own_work(function)


# --------------------------------------------------------------------------- honest work gets full marks


def test_honest_torch_solution_passes():
    graded(student(HONEST_GAE))


def test_honest_solution_with_numpy_helpers_classes_and_the_library_nearby_passes():
    # The notebook itself imports course_lib (its visible tests do); an honest cell may keep it at hand to
    # compare with, and may use numpy, helper functions, classes, closures and defaults of its own.
    source = """
    import course_lib.returns as library_returns
    from course_lib.returns import gae_advantages as library_gae

    class Discount:
        def __init__(self, gamma):
            self.gamma = gamma
        def __call__(self, x):
            return self.gamma * x

    def backwards(deltas, decay, not_done, running=None):
        out = np.zeros(deltas.shape)
        acc = np.zeros(deltas.shape[1]) if running is None else running
        for t in reversed(range(deltas.shape[0])):
            acc = deltas[t] + decay * not_done[t] * acc
            out[t] = acc
        return out

    def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam, _helper=backwards):
        discount = Discount(gamma)
        not_terminated = (~terminated).to(rewards.dtype)
        deltas = rewards + discount(not_terminated * next_values) - values
        not_done = (~(terminated | truncated)).numpy().astype(np.float64)
        out = _helper(deltas.double().numpy(), gamma * lam, not_done)
        return torch.from_numpy(out).to(rewards.dtype)
    """
    graded(student(source))


def test_the_test_itself_may_call_the_library():
    reference = grading.reference(GAE)
    grading.own_work(student(HONEST_GAE))
    course_lib.returns.td_errors(*rollout()[:4], 0.9)  # a hidden test building its inputs with the library
    reference(*rollout())
    grading.own_work(student(HONEST_GAE))


# --------------------------------------------------------------------------- the library's reference, in any guise

IS_THE_LIBRARY = {
    "imported": "from course_lib.returns import gae_advantages",
    "renamed": "from course_lib.returns import gae_advantages as my_gae\ngae_advantages = my_gae",
    "code copied": ("import types, course_lib.returns as r\n"
                    "gae_advantages = types.FunctionType(r.gae_advantages.__code__, r.__dict__, 'gae_advantages')"),
    "the grader's reference": ("from course_lib.grading import reference\n"
                               "gae_advantages = reference('course_lib.returns.gae_advantages')"),
}

WRAPS_THE_LIBRARY = {
    "module alias": """
        import course_lib.returns as r
        def gae_advantages(*args, **kwargs):
            return r.gae_advantages(*args, **kwargs)
        """,
    "package import": """
        from course_lib import returns
        def gae_advantages(*args):
            return returns.gae_advantages(*args)
        """,
    "import inside": """
        def gae_advantages(*args):
            from course_lib.returns import gae_advantages as reference
            return reference(*args)
        """,
    "importlib": """
        import importlib
        def gae_advantages(*args):
            return importlib.import_module("course_lib.returns").gae_advantages(*args)
        """,
    "__import__ and getattr": """
        def gae_advantages(*args):
            return getattr(__import__("course_lib.returns", fromlist=["x"]), "gae_advantages")(*args)
        """,
    "lambda": "import course_lib.returns as r\ngae_advantages = lambda *args: r.gae_advantages(*args)",
    "functools.partial": "import functools, course_lib.returns as r\ngae_advantages = functools.partial(r.gae_advantages)",
    "functools.wraps": """
        import functools, course_lib.returns as r
        @functools.wraps(r.gae_advantages)
        def gae_advantages(*args):
            return 0
        """,
    "closure": """
        def make():
            from course_lib.returns import gae_advantages as reference
            def gae_advantages(*args):
                return reference(*args)
            return gae_advantages
        gae_advantages = make()
        """,
    "default argument": """
        import course_lib.returns as r
        def gae_advantages(*args, _f=r.gae_advantages):
            return _f(*args)
        """,
    "callable object": """
        import course_lib.returns as r
        class Solver:
            def __init__(self):
                self.f = r.gae_advantages
            def __call__(self, *args):
                return self.f(*args)
        gae_advantages = Solver()
        """,
    "container": """
        import course_lib.returns as r
        HELPERS = {"gae": [r.gae_advantages]}
        def gae_advantages(*args):
            return HELPERS["gae"][0](*args)
        """,
    "through another function": """
        import course_lib.returns as r
        def helper(*args):
            return r.gae_advantages(*args)
        def gae_advantages(*args):
            return helper(*args)
        """,
    "lru_cache": """
        import functools, course_lib.returns as r
        gae_advantages = functools.lru_cache(maxsize=None)(r.gae_advantages)
        """,
}


@pytest.mark.parametrize("how", list(IS_THE_LIBRARY))
def test_a_solution_that_is_the_library_scores_zero(how):
    function = student(IS_THE_LIBRARY[how])
    with pytest.raises(AssertionError, match=r"is the course library's .*so this test scores 0") as error:
        graded(function)
    assert "\n" not in str(error.value), "the feedback gives one line"


@pytest.mark.parametrize("how", list(WRAPS_THE_LIBRARY))
def test_a_solution_that_wraps_the_library_scores_zero(how):
    function = student(WRAPS_THE_LIBRARY[how])
    with pytest.raises(AssertionError, match=r"uses the course library \(.*course_lib.*so this test scores 0") as error:
        graded(function)
    assert "\n" not in str(error.value)


HIDDEN_AT_RUN_TIME = {
    "importlib with a name built at run time": """
        import importlib
        def gae_advantages(*args):
            module = importlib.import_module("".join(["course", "_lib"]) + ".returns")
            return getattr(module, "gae_" + "advantages")(*args)
        """,
    "sys.modules": """
        import sys
        def gae_advantages(*args):
            return getattr(sys.modules["".join(["course", "_lib.returns"])], "gae_advantages")(*args)
        """,
    "the exception caught": """
        import sys
        def gae_advantages(*args):
            try:
                return sys.modules["".join(["course", "_lib.returns"])].gae_advantages(*args)
            except AssertionError:
                return torch.zeros_like(args[0])
        """,
    "a thread": """
        import sys, threading
        def gae_advantages(*args):
            out = []
            worker = threading.Thread(target=lambda: out.append(
                sys.modules["".join(["course", "_lib.returns"])].gae_advantages(*args)))
            worker.start()
            worker.join()
            return out[0] if out else torch.zeros_like(args[0])
        """,
}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread's failed call
@pytest.mark.parametrize("how", list(HIDDEN_AT_RUN_TIME))
def test_a_call_into_the_library_is_caught_while_the_test_runs(how):
    function = student(HIDDEN_AT_RUN_TIME[how])
    grading.own_work(function)  # nothing to see in its names
    with pytest.raises(AssertionError, match=r"called the course library \(.*\N{RIGHTWARDS ARROW} course_lib\.returns\.gae_advantages"):
        inputs = rollout()
        grading.assert_close(function(*inputs), grading.reference(GAE)(*inputs))
        grading.own_work(function)


# --------------------------------------------------------------------------- a notebook that moves the yardstick


def _patched(target, name, value):
    original = getattr(target, name)
    setattr(target, name, value)
    return lambda: setattr(target, name, original)


PATCHES = {
    "the reference replaced by the student's": lambda: _patched(course_lib.returns, "gae_advantages",
                                                                student(HONEST_GAE)),
    "a helper of the reference": lambda: _patched(course_lib.returns, "_masks", lambda *a: (1, 1)),
    "torch.testing.assert_close": lambda: _patched(torch.testing, "assert_close", lambda *a, **k: None),
    "torch.allclose": lambda: _patched(torch, "allclose", lambda *a, **k: True),
    "torch.Tensor.__eq__": lambda: _patched(torch.Tensor, "__eq__", lambda self, other: True),
    "numpy.testing.assert_allclose": lambda: _patched(np.testing, "assert_allclose", lambda *a, **k: None),
    "math.isclose": lambda: _patched(math, "isclose", lambda *a, **k: True),
    # (one that still answers truly: pytest itself needs isinstance)
    "builtins.isinstance": lambda: _patched(builtins, "isinstance", functools.partial(builtins.isinstance)),
    "the grader's record": lambda: _patched(grading, "reference", lambda name: None),
}


def _swap_code():
    function = torch.testing._comparison.assert_close
    original = function.__code__
    function.__code__ = (lambda *args, **kwargs: None).__code__
    return lambda: setattr(function, "__code__", original)


def _kwdefault():
    import course_lib.search.mcts

    function = course_lib.search.mcts.search  # one with keyword-only defaults
    key = next(iter(function.__kwdefaults__))
    original = function.__kwdefaults__[key]
    function.__kwdefaults__[key] = 123.0
    return lambda: function.__kwdefaults__.__setitem__(key, original)


def _torch_function_mode():
    class AlwaysEqual(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    mode = AlwaysEqual()
    mode.__enter__()
    return lambda: mode.__exit__(None, None, None)


def _settrace():
    sys.settrace(lambda *a: None)
    return lambda: sys.settrace(None)


PATCHES.update({"the code of torch.testing's assert_close": _swap_code, "a keyword default": _kwdefault,
                "a TorchFunctionMode left on": _torch_function_mode, "sys.settrace": _settrace})


@pytest.mark.parametrize("how", list(PATCHES))
def test_a_notebook_that_changes_the_library_or_the_helpers_scores_zero(how):
    undo = PATCHES[how]()
    try:
        with pytest.raises(AssertionError, match=r"the notebook changed .*so this test scores 0") as error:
            graded(student(HONEST_GAE))
    finally:
        undo()
    assert "\n" not in str(error.value)


def test_a_patch_made_during_the_call_is_caught_by_the_next_comparison():
    # The student's function patches assert_close when it runs and would put it back afterwards.
    source = """
    import torch.testing
    def gae_advantages(*args):
        torch.testing.assert_close = lambda *a, **k: None
        return torch.zeros_like(args[0])
    """
    original = torch.testing.assert_close
    function = student(source)
    grading.own_work(function)
    try:
        with pytest.raises(AssertionError, match=r"changed torch\.testing\.assert_close"):
            grading.assert_close(function(*rollout()), grading.reference(GAE)(*rollout()))
    finally:
        torch.testing.assert_close = original


INPUTS_CHANGED = {
    "in place": "args[0].zero_(); args[1].zero_(); args[2].zero_()",
    "through .data": "args[0].data.zero_(); args[1].data.zero_(); args[2].data.zero_()",
    "through numpy": "args[0].numpy()[...] = 0; args[1].numpy()[...] = 0; args[2].numpy()[...] = 0",
}


@pytest.mark.parametrize("how", list(INPUTS_CHANGED))
def test_a_solution_that_zeroes_its_inputs_cannot_make_the_reference_agree(how):
    # All zeros in, all zeros out: had the reference seen the zeroed inputs, it would have agreed.
    source = f"""
    def gae_advantages(*args):
        {INPUTS_CHANGED[how]}
        return torch.zeros_like(args[0])
    """
    function = student(source)
    grading.own_work(function)
    inputs = rollout()
    with pytest.raises(AssertionError, match="changed tensors it was given, in place"):
        grading.assert_close(function(*inputs), grading.reference(GAE)(*inputs))


def test_inputs_the_test_changes_itself_or_gives_only_to_the_reference_are_fine():
    function = student(HONEST_GAE)
    grading.own_work(function)
    inputs = rollout()
    result = function(*inputs)
    fresh = [x.clone() for x in inputs[:5]]
    fresh[0] += 1.0  # a new tensor, never given to the student's code
    grading.assert_close(result, grading.reference(GAE)(*inputs))
    grading.reference(GAE)(*fresh, 0.9, 0.8)


def test_switching_the_watch_off_is_caught():
    function = student(HONEST_GAE)
    grading.own_work(function)
    previous = sys.getprofile()
    sys.setprofile(None)
    try:
        with pytest.raises(AssertionError, match=r"changed sys\.setprofile"):
            grading.own_work(function)
    finally:
        sys.setprofile(previous)


def test_a_tensor_subclass_cannot_answer_the_comparison():
    class Agreeable(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True

    result = torch.zeros(3).as_subclass(Agreeable)
    with pytest.raises(AssertionError, match=r"a subclass of torch\.Tensor"):
        grading.assert_close(result, torch.ones(3))


def test_assert_close_still_compares():
    grading.assert_close(torch.ones(3), torch.ones(3))
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        grading.assert_close(torch.zeros(3), torch.ones(3))


# --------------------------------------------------------------------------- the record itself


def test_references_are_the_library_functions_as_recorded():
    reference = grading.reference(GAE)
    inputs = rollout()
    torch.testing.assert_close(reference(*inputs), course_lib.returns.gae_advantages(*inputs))
    assert reference.__doc__ == course_lib.returns.gae_advantages.__doc__
    with pytest.raises(ValueError, match="course_lib name"):
        grading.reference("torch.zeros")
    with pytest.raises(ValueError, match="has no function 'no_such_function'"):
        grading.reference("course_lib.returns.no_such_function")


def test_a_reference_outside_the_recorded_modules_is_refused_with_a_hint(monkeypatch):
    with pytest.raises(ValueError, match="REFERENCE_MODULES"):
        grading.reference("course_lib.no_such_module.f")


def test_autograde_without_the_early_record_fails_every_test(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    grading._RECORD = None
    with pytest.raises(AssertionError, match="was not loaded when the kernel started"):
        grading.own_work(student(HONEST_GAE))


def test_the_watch_is_closed_and_forgets_at_the_end_of_a_cell():
    grading.own_work(student(HONEST_GAE))
    assert sys.getprofile() is grading._RECORD.watch and threading.getprofile() is grading._RECORD.watch
    grading._close_watch()  # what IPython's post_run_cell does
    assert sys.getprofile() is None and grading._RECORD.watch.calls == []
    course_lib.returns.td_errors(*rollout()[:4], 0.9)  # after the cell: not watched
    grading.own_work(student(HONEST_GAE))


def test_checks_are_cheap_enough_to_run_on_every_comparison():
    import time

    record = grading._RECORD
    start = time.perf_counter()
    for _ in range(20):
        assert record.changes() == []
    per_check = (time.perf_counter() - start) / 20
    # A hidden test cell makes a few dozen comparisons; on a busy 2-core machine one check took ~4 ms.
    assert per_check < 0.05, f"one check of the record took {per_check * 1000:.1f} ms"


def test_module_level_types_are_what_the_docstring_promises():
    assert set(grading.REFERENCE_MODULES) <= set(grading._RECORD.modules)
    assert all(isinstance(getattr(grading, name), (types.FunctionType, tuple)) for name in grading.__all__)
