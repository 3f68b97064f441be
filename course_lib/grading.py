"""Autograding that a student cannot game: the work must be the student's, and the yardstick must not move.

``course_lib`` is installed wherever students work (it is the course), and it holds the reference of every
function an assignment asks for. So the hidden tests of ``assignments/source/*`` check, besides what a
function computes, that it is not the library's, and they compare with values the student's code cannot
alter. Each test cell of an assignment starts and ends with the same two lines of hidden tests::

    ### BEGIN HIDDEN TESTS
    from course_lib.grading import assert_close, own_work, reference
    own_work(gae_advantages)
    ### END HIDDEN TESTS
    ... the visible tests ...
    ### BEGIN HIDDEN TESTS
    _reference_gae = reference("course_lib.returns.gae_advantages")
    assert_close(gae_advantages(r, v, nv, term, trunc, 0.9, 0.95), _reference_gae(r, v, nv, term, trunc, 0.9, 0.95))
    own_work(gae_advantages)
    ### END HIDDEN TESTS

A failed check raises ``AssertionError`` with one line saying why, so the cell scores 0 and the feedback
shows the line.

How it works:

1. Before any cell runs, the kernel loads this module as an IPython extension (``assignments/nbgrader_config.py``
   starts every kernel with ``--IPKernelApp.extensions=course_lib.grading``). It imports the modules that hold
   the references (:data:`REFERENCE_MODULES`) and records, while nothing of the student's has run, every
   attribute of ``course_lib``'s modules and of the modules the comparisons rest on (:data:`HELPER_MODULES`:
   torch, torch.testing, numpy, numpy.testing, math, the builtins, ...), of the classes defined there, the
   code, defaults and closures of their Python functions, and torch's function-mode stacks.
2. :func:`own_work` fails when the function is course_lib's code, or reaches course_lib through anything it
   refers to (its global names, closures, defaults, wrapped functions, partials, methods, containers, and
   the modules it imports or names in strings), or when the notebook has changed anything recorded in 1.
   From then to the end of the cell a profiler watches calls: a call into course_lib that comes neither from
   the test cell nor from the library itself fails the test as well. That catches what no walk over names
   can see (``importlib``, ``__import__``, ``sys.modules``, names assembled at run time).
3. :func:`reference` hands out the library's function as recorded in 1: replacing
   ``course_lib.returns.gae_advantages`` changes nothing, and is noticed. Each call checks 1 again, and
   refuses tensors that the test gave the student's function and that have changed since (a solution that
   zeroes its inputs and returns zeros would otherwise have the reference agree).
4. :func:`assert_close` is ``torch.testing.assert_close`` as recorded in 1; it refuses tensor subclasses
   (whose ``__torch_function__`` could answer any comparison) and checks 1 again before comparing.

What it cannot do: code in a notebook runs in the same process, with the same powers, as the tests. A
submission written to defeat this module itself (rewriting its state, compiling the library's code under
another file name, overriding torch's C++ kernels) can succeed; that code is in the notebook for a reader to
see, and ``assignments/nbgrader_plugins.py`` fails every test of a notebook whose own cells name this module.
Copying the library's published source by hand is plagiarism: a similarity check finds it, a unit test cannot.
"""
from __future__ import annotations

import builtins
import dis
import functools
import importlib
import operator
import os
import re
import sys
import threading
import types
from collections import deque
from itertools import repeat
from typing import Any, Callable, Iterator

__all__ = ["REFERENCE_MODULES", "HELPER_MODULES", "assert_close", "own_work", "reference",
           "load_ipython_extension"]

# The modules that hold the functions assignments ask for. They are imported before the student's code runs;
# a hidden test asking for a reference elsewhere fails with a message saying to add its module here.
REFERENCE_MODULES = (
    "course_lib.returns",
    "course_lib.search",
    "course_lib.agents.ppo",
    "course_lib.agents.sac",
    "course_lib.agents.muzero",
    "course_lib.nets.transformer",
    "course_lib.vision.vit",
)

# The modules comparisons and references rest on (the ones a student would patch to make any comparison
# pass). "a|b": the first of the two that imports (numpy 2 moved its core to numpy._core).
HELPER_MODULES = (
    "builtins", "math", "cmath", "operator", "functools",
    "torch", "torch._tensor", "torch.testing", "torch.testing._comparison", "torch.nn.functional",
    "torch.linalg", "torch.special",
    "numpy", "numpy.testing", "numpy.testing._private.utils", "numpy._core.numeric|numpy.core.numeric",
    "numpy.linalg",
)

_PACKAGE = "course_lib"
_HERE = os.path.dirname(os.path.abspath(__file__))
# Code of the library is recognised by its file; both spellings, in case the package sits behind a symlink.
_LIBRARY_DIRS = tuple({_HERE + os.sep, os.path.realpath(_HERE) + os.sep})
_LIBRARY_NAME = re.compile(r"course_lib(\.[A-Za-z_]\w*)*")
_MISSING = object()
# Where Python, its standard library and installed packages (torch, numpy, IPython) live: code from there is
# not the student's. (Code from anywhere else, a notebook cell or exec'd text, is.)
_INSTALLED = tuple({os.path.join(path, "") for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}
                    for path in (prefix, os.path.realpath(prefix))} | {"<frozen "})
# Builtins the kernel itself replaces while a cell runs (ipykernel forwards input() to the notebook).
_KERNEL_BUILTINS = frozenset({"input", "raw_input"})
_MAX_LISTED = 4          # changed names listed in one message before "and N more"
_WALK_BUDGET = 20_000    # objects the walk of own_work visits at most
_CONTAINER_ITEMS = 1_000  # items looked at per list, dict or set


def _in_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS)


def _is_library_module_name(name: Any) -> bool:
    return isinstance(name, str) and (name == _PACKAGE or name.startswith(_PACKAGE + "."))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


# --------------------------------------------------------------------------- the record taken before the student's code


def _called_library(calls: list[str]) -> str:
    return (f"the code under test called the course library ({_listed(list(dict.fromkeys(calls)))}): the solution "
            f"must be your own code, not course_lib's, so this test scores 0.")


class _Watch:
    """sys.setprofile hook: notes calls into course_lib made from outside the library and the test cell, whether
    the student's code ran, and the tensors the test hands the student's functions (as they were)."""

    def __init__(self, tensor_class: type) -> None:
        self.active = False
        self.dirty = True   # whether the student's code may have run since the last full check
        self.test_file: str | None = None
        self.calls: list[str] = []
        self.previous: tuple[Any, Any] = (None, None)
        self.tensor_class = tensor_class
        self.inputs: dict[int, tuple[Any, Any]] = {}  # id -> (tensor given to the student's code, a copy of it then)

    def _note_inputs(self, frame: types.FrameType) -> None:
        """Copies the tensors among the arguments of a student's function the test calls (one level of nesting)."""
        for value in list(frame.f_locals.values()):
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else (value,)
            for item in list(items)[:_CONTAINER_ITEMS]:
                if isinstance(item, self.tensor_class) and id(item) not in self.inputs:
                    self.inputs[id(item)] = (item, item.detach().clone())

    def changed_inputs(self, values: Any, same: Callable[[Any, Any], bool]) -> bool:
        """Whether any of these tensors was given to the student's code and is no longer what it was then."""
        for value in values:
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else (value,)
            for item in items:
                seen = self.inputs.get(id(item))
                if seen is not None and seen[0] is item and not same(item, seen[1]):
                    return True
        return False

    def __call__(self, frame: types.FrameType, event: str, arg: Any,
                 _library: tuple = _LIBRARY_DIRS, _installed: tuple = _INSTALLED) -> None:
        # (the two directories are bound here so that the hook still works while Python shuts down)
        if event != "call":
            return
        code = frame.f_code
        filename = code.co_filename
        if not filename.startswith(_library):
            # Code that is neither the library's, nor the test's, nor Python's or an installed package's is the
            # student's: until the next full check, the yardstick may have moved. When the test calls it, the
            # tensors it gets are noted, so that a reference cannot be handed inputs the solution changed.
            if filename != self.test_file and not filename.startswith(_installed):
                self.dirty = True
                caller = frame.f_back
                if caller is not None and caller.f_code.co_filename == self.test_file:
                    self._note_inputs(frame)
            return
        if code.co_name == "<module>":
            return  # a library module being imported (by whoever asked for it)
        caller = frame.f_back
        if caller is None:
            return
        caller_file = caller.f_code.co_filename
        if caller_file.startswith(_library) or caller_file == self.test_file:
            return
        if code is _close_watch.__code__ and caller.f_code.co_name == "trigger":
            return  # IPython closing the watch at the end of the cell
        module = frame.f_globals.get("__name__", "?")
        self.calls.append(f"{caller.f_code.co_name} \N{RIGHTWARDS ARROW} {module}.{getattr(code, 'co_qualname', code.co_name)}")
        # Raising here fails the call itself, so the message reaches the test even when the cheat's output would
        # have failed it for another reason first. (Python then drops this hook; the next check notices that too,
        # and the call noted above fails it if the student's code caught the error.)
        raise AssertionError(_called_library(self.calls))

    def open(self, test_file: str) -> None:
        if not self.active:
            self.calls.clear()
            self.previous = (sys.getprofile(), threading.getprofile())
            sys.setprofile(self)
            threading.setprofile(self)
            self.active = True
            self.dirty = False  # own_work has just checked everything
        self.test_file = test_file

    def close(self) -> None:
        if self.active:
            sys.setprofile(self.previous[0])
            threading.setprofile(self.previous[1])
            self.active = False
        self.dirty = True
        self.inputs.clear()
        self.calls.clear()  # the cell is over (and the call that closes the watch was noted too)


class _Record:
    """What course_lib and the comparison helpers looked like before the student's code ran."""

    def __init__(self, early: bool) -> None:
        import torch  # here, not at the top: importing this module must stay cheap

        self.early = early
        self.torch = torch
        self.tensor_class = torch.Tensor
        self.compare = torch.testing.assert_close
        for name in REFERENCE_MODULES:
            importlib.import_module(name)
        self.modules: dict[str, types.ModuleType] = {}
        for choices in HELPER_MODULES:
            for name in choices.split("|"):
                try:
                    self.modules[name] = importlib.import_module(name)
                    break
                except ImportError:
                    continue
        self.modules.update({name: module for name, module in list(sys.modules.items())
                             if _is_library_module_name(name) and isinstance(module, types.ModuleType)})
        # (namespace, keys, the values they held, label prefix) for module and class namespaces
        self.namespaces: list[tuple[Any, tuple, tuple, str]] = []
        # (function, code, defaults, kwdefaults items, closure (cell, contents) pairs, label)
        self.functions: list[tuple[Any, ...]] = []
        self.attributes: dict[tuple[str, str], Any] = {}  # (module, name) -> the object, for reference()
        self._seen: set[int] = set()
        for name in list(self.modules):
            self.add_module(name)
        self.mode_stacks = self._mode_stacks()
        self.trace = sys.gettrace()
        self.same_tensor = functools.partial(_same_tensor, torch.equal, torch.allclose)
        self.watch = _Watch(torch.Tensor)

    def add_module(self, name: str) -> None:
        module = self.modules[name] = sys.modules[name]
        library = _is_library_module_name(name)
        items = {}
        for key, value in list(module.__dict__.items()):
            if name == "builtins" and (key in _KERNEL_BUILTINS or not isinstance(value, (types.BuiltinFunctionType, type))):
                continue  # IPython and ipykernel add and swap their own entries there
            if name == __name__ and key == "_RECORD":
                continue  # this record itself
            items[key] = value
            self.attributes[(name, key)] = value
            if isinstance(value, types.FunctionType):
                self._add_function(value, f"{name}.{key}")
            elif isinstance(value, type) and id(value) not in self._seen and _defines_functions(value):
                # Classes written in Python: torch.Tensor, torch.testing's comparison pairs, course_lib's own, ...
                # (torch's legacy FloatTensor & co. are left out: no tensor the tests see is of those types).
                owner = value.__dict__.get("__module__")
                if value is self.tensor_class or (owner == name != "torch") or (library and _is_library_module_name(owner)):
                    self._add_class(value, f"{name}.{key}")
        self.namespaces.append((module.__dict__, tuple(items), tuple(items.values()), name))

    def _add_class(self, cls: type, label: str) -> None:
        self._seen.add(id(cls))
        namespace = cls.__dict__  # a live mappingproxy
        items = dict(namespace)
        self.namespaces.append((namespace, tuple(items), tuple(items.values()), label))
        for key, member in items.items():
            inner = getattr(member, "__func__", member)  # the function of a staticmethod or classmethod
            if isinstance(inner, types.FunctionType):
                self._add_function(inner, f"{label}.{key}")

    def _add_function(self, function: types.FunctionType, label: str) -> None:
        if id(function) in self._seen:
            return
        self._seen.add(id(function))
        # Closures and keyword defaults can change in place; only the library's and torch's functions (what the
        # references and the comparisons run) are worth the time their check takes on every comparison.
        deep = _is_library_module_name(function.__module__) or str(function.__module__).startswith("torch")
        closure = tuple((cell, _cell_contents(cell)) for cell in function.__closure__ or ()) if deep else ()
        kwdefaults = tuple((function.__kwdefaults__ or {}).items()) if deep else ()
        self.functions.append((function, function.__code__, function.__defaults__, kwdefaults, closure, label))
        self._functions = None  # the columns below are rebuilt on the next check

    def _mode_stacks(self) -> tuple[int, int]:
        c = self.torch._C
        return (c._len_torch_function_stack() if hasattr(c, "_len_torch_function_stack") else 0,
                c._len_torch_dispatch_stack() if hasattr(c, "_len_torch_dispatch_stack") else 0)

    def _columns(self) -> tuple:
        if getattr(self, "_functions", None) is None:
            functions = tuple(entry[0] for entry in self.functions)
            self._functions = (functions, tuple(entry[1] for entry in self.functions),
                               tuple(entry[2] for entry in self.functions),
                               [entry for entry in self.functions if entry[3] or entry[4]])
        return self._functions

    def changes(self) -> list[str]:
        """Labels of what differs from the record (empty when nothing does).

        The checks run on every comparison a hidden test makes, so the common case (nothing changed) is a
        few passes of C-level map() over the recorded values; names are worked out only when something differs.
        """
        changed = []
        for namespace, keys, values, label in self.namespaces:
            if any(map(operator.is_not, map(namespace.get, keys, repeat(_MISSING)), values)):
                changed += [f"{label}.{key}" for key, value in zip(keys, values) if namespace.get(key, _MISSING) is not value]
            if len(namespace) != len(keys) and not isinstance(namespace, dict):
                # A class gained an attribute: it hides the one its bases had (torch.Tensor.__eq__ comes from C).
                # Modules gain attributes lawfully (lazy imports), and a new one hides nothing.
                changed += [f"{label}.{key}" for key in namespace if key not in keys]
        functions, codes, defaults, special = self._columns()
        if (any(map(operator.is_not, map(_get_code, functions), codes))
                or any(map(operator.is_not, map(_get_defaults, functions), defaults))):
            changed += [label for function, code, default, _, _, label in self.functions
                        if function.__code__ is not code or function.__defaults__ is not default]
        for function, _, _, kwdefaults, closure, label in special:
            if (not _same_pairs(tuple((function.__kwdefaults__ or {}).items()), kwdefaults)
                    or any(_cell_contents(cell) is not contents for cell, contents in closure)):
                changed.append(label)
        changed += [f"sys.modules[{name!r}]" for name, module in self.modules.items() if sys.modules.get(name) is not module]
        changed.sort(key=lambda label: not label.startswith(_PACKAGE))  # course_lib's own first: the telling ones
        if self._mode_stacks() != self.mode_stacks:
            changed.append("torch's mode stack (a TorchFunctionMode or TorchDispatchMode left on)")
        if sys.gettrace() is not self.trace:
            changed.append("sys.settrace")
        if self.watch.active and (sys.getprofile() is not self.watch or threading.getprofile() is not self.watch):
            changed.append("sys.setprofile (the grader's watch)")
        return list(dict.fromkeys(changed))

    def problem(self, quick: bool = False) -> str | None:
        """One line on a call into course_lib seen by the watch or on any change since the record, else None.

        quick: skip the full comparison with the record when the watch saw no code of the student's run since
        the last one (reference() and assert_close() check before every call, and most follow another check
        with nothing but the library or the test running in between).
        """
        watch = self.watch
        if watch.calls:
            return _called_library(watch.calls)
        if quick and watch.active and not watch.dirty and sys.getprofile() is watch and threading.getprofile() is watch:
            return None
        changed = self.changes()
        if changed:
            return (f"the notebook changed {_listed(changed)}: course_lib and the tests' helpers (torch, numpy, "
                    f"math, the builtins) must stay as they are, so this test scores 0.")
        watch.dirty = False
        return None


def _defines_functions(cls: type) -> bool:
    return any(isinstance(getattr(member, "__func__", member), types.FunctionType) for member in cls.__dict__.values())


_get_code = operator.attrgetter("__code__")
_get_defaults = operator.attrgetter("__defaults__")


def _same_tensor(equal: Callable, allclose: Callable, a: Any, b: Any) -> bool:
    """Same shape, dtype and values, NaN where NaN was (the torch functions as recorded)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(allclose(a.detach(), b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(equal(a.detach(), b))


def _same_pairs(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b))


def _cell_contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a variable not bound yet)
        return _MISSING


_RECORD: _Record | None = None


def _record() -> _Record:
    """The record taken at kernel start; taken now instead when the kernel did not load this module early.

    Under ``nbgrader autograde`` the record must be early (else the student's code ran before it and could have
    changed what it records), so a missing one fails the test instead.
    """
    __tracebackhide__ = True
    global _RECORD
    if _RECORD is None:
        if os.environ.get("NBGRADER_EXECUTION") == "autograde":
            raise AssertionError(
                "course_lib.grading was not loaded when the kernel started, so no test can trust its yardstick: "
                "run nbgrader from assignments/ so that nbgrader_config.py loads it (see book/instructors.md).")
        _RECORD = _Record(early=False)
        _register_cell_end()
    return _RECORD


def _close_watch(*_: Any) -> None:
    if _RECORD is not None:
        _RECORD.watch.close()


def _register_cell_end(ipython: Any = None) -> None:
    """Closes the watch at the end of every cell (a failed test leaves it open otherwise)."""
    if ipython is None:
        get_ipython = getattr(builtins, "get_ipython", None)
        ipython = get_ipython() if get_ipython is not None else None
    if ipython is not None and _close_watch not in ipython.events.callbacks.get("post_run_cell", []):
        ipython.events.register("post_run_cell", _close_watch)


def load_ipython_extension(ipython: Any) -> None:
    """Takes the record before any cell runs (``--IPKernelApp.extensions=course_lib.grading``)."""
    global _RECORD
    if _RECORD is None or not _RECORD.early:
        _RECORD = _Record(early=True)
    _register_cell_end(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    _close_watch()
    if _close_watch in ipython.events.callbacks.get("post_run_cell", []):
        ipython.events.unregister("post_run_cell", _close_watch)


# --------------------------------------------------------------------------- does a function reach course_lib?


def _library_object(obj: Any) -> str | None:
    """The name under which obj belongs to course_lib, or None."""
    try:
        if isinstance(obj, types.ModuleType):
            name = getattr(obj, "__name__", None)
            if _is_library_module_name(name):
                return name
            file = getattr(obj, "__file__", None)
            return f"course_lib's module {file}" if isinstance(file, str) and _in_library(file) else None
        if isinstance(obj, types.CodeType):
            return f"course_lib's code ({obj.co_filename})" if _in_library(obj.co_filename) else None
        if isinstance(obj, types.FunctionType):
            if _in_library(obj.__code__.co_filename):
                return f"{obj.__module__}.{obj.__qualname__}"
            return None
        if isinstance(obj, type):
            owner = obj.__dict__.get("__module__")
            return f"{owner}.{obj.__qualname__}" if _is_library_module_name(owner) else None
        owner = type(obj).__dict__.get("__module__") or getattr(type(obj), "__module__", None)
        if _is_library_module_name(owner):
            return f"a {owner}.{type(obj).__qualname__} object"
    except Exception:  # an object whose attributes raise: nothing to learn from it
        return None
    return None


def _code_mentions(code: types.CodeType) -> str | None:
    """A course_lib import or module name written inside the code (nested functions included), or None."""
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME" and _is_library_module_name(instruction.argval):
            return f"imports {instruction.argval}"
    for const in code.co_consts:
        if isinstance(const, str) and _LIBRARY_NAME.fullmatch(const):
            return f"names {const!r}"
        if isinstance(const, types.CodeType):
            found = _code_mentions(const)
            if found:
                return found
    return None


def _global_names(code: types.CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(instruction.argval, str):
            yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _items(container: Any) -> list:
    try:
        if isinstance(container, dict):
            return [x for pair in list(container.items())[:_CONTAINER_ITEMS] for x in pair]
        return list(container)[:_CONTAINER_ITEMS]
    except Exception:
        return []


def _referents(obj: Any) -> Iterator[tuple[Any, str]]:
    """What obj refers to that could lead to course_lib, each with a few words saying how."""
    if isinstance(obj, types.ModuleType):
        return  # torch, math, numpy, ...: their contents are no solution's own (course_lib is caught before)
    if isinstance(obj, types.FunctionType):
        namespace = obj.__globals__
        builtin_names = namespace.get("__builtins__", builtins)
        builtin_names = builtin_names if isinstance(builtin_names, dict) else vars(builtin_names)
        for name in dict.fromkeys(_global_names(obj.__code__)):
            if name in namespace:
                yield namespace[name], f"the global name {name!r}"
            elif name in builtin_names:
                yield builtin_names[name], f"the builtin {name!r}"
        for cell in obj.__closure__ or ():
            contents = _cell_contents(cell)
            if contents is not _MISSING:
                yield contents, "a variable of its closure"
        for value in obj.__defaults__ or ():
            yield value, "a default argument"
        for value in (obj.__kwdefaults__ or {}).values():
            yield value, "a default argument"
        for key, value in list(getattr(obj, "__dict__", {}).items()):
            yield value, f"its attribute {key!r}"
        return
    if isinstance(obj, types.MethodType):
        yield obj.__func__, "the function of a method"
        yield obj.__self__, "the object of a method"
        return
    if isinstance(obj, functools.partial):
        yield obj.func, "the function of a functools.partial"
        for value in (*obj.args, *obj.keywords.values()):
            yield value, "an argument of a functools.partial"
        return
    if isinstance(obj, (staticmethod, classmethod)):
        yield obj.__func__, "a static or class method"
        return
    if isinstance(obj, property):
        for accessor in (obj.fget, obj.fset, obj.fdel):
            if accessor is not None:
                yield accessor, "a property"
        return
    if isinstance(obj, (dict, list, tuple, set, frozenset, deque)):
        for value in _items(obj):
            yield value, "an item of a container"
        return
    if isinstance(obj, type):
        for key, value in list(obj.__dict__.items()):
            yield value, f"the class attribute {key!r}"
        return
    try:
        is_tensor = _RECORD is not None and isinstance(obj, _RECORD.tensor_class)
    except Exception:
        is_tensor = False
    if is_tensor:
        return
    yield type(obj), "its class"
    wrapped = getattr(obj, "__wrapped__", None) if not isinstance(obj, type) else None
    if wrapped is not None:
        yield wrapped, "the function it wraps"
    attributes = getattr(obj, "__dict__", None)
    if isinstance(attributes, dict):
        for key, value in list(attributes.items()):
            yield value, f"its attribute {key!r}"


def _library_use(function: Any, name: str) -> str | None:
    """One line saying how `function` is or reaches course_lib, or None for a function of the student's own."""
    found = _library_object(function)
    if found:
        return f"{name} is the course library's {found}, not your own code, so this test scores 0."
    seen: set[int] = set()
    queue: deque[tuple[Any, tuple[str, ...]]] = deque([(function, ())])
    while queue and len(seen) < _WALK_BUDGET:
        obj, route = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        where = " \N{RIGHTWARDS ARROW} ".join(route) if route else name
        found = _library_object(obj)
        if found:
            return (f"{name} uses the course library ({where} is {found}): the solution must be your own code, "
                    f"not course_lib's, so this test scores 0.")
        if isinstance(obj, types.FunctionType) and not _in_library(obj.__code__.co_filename):
            mention = _code_mentions(obj.__code__)
            if mention:
                return (f"{name} uses the course library ({where} {mention}): the solution must be your own code, "
                        f"not course_lib's, so this test scores 0.")
        for child, how in _referents(obj):
            if id(child) not in seen:
                queue.append((child, (*route, how)))
    return None


# --------------------------------------------------------------------------- what the hidden tests call


def own_work(*functions: Callable) -> None:
    """Fails the test unless each function is the student's own and the notebook left the yardstick alone.

    Raises ``AssertionError`` (one line) when a function is course_lib's, reaches course_lib (see the module
    docstring), or when the notebook changed course_lib or the helpers the comparisons use. Then watches every
    call until the end of the cell: a call into course_lib from anywhere but the test cell and the library
    fails the next check (the next :func:`own_work`, :func:`reference` or :func:`assert_close`).
    """
    __tracebackhide__ = True
    record = _record()
    problem = record.problem()
    if problem:
        raise AssertionError(problem)
    for function in functions:
        name = getattr(function, "__name__", None) or type(function).__name__
        problem = _library_use(function, str(name))
        if problem:
            raise AssertionError(problem)
    record.watch.open(sys._getframe(1).f_code.co_filename)


def reference(name: str) -> Callable:
    """The course library's function `name` (``"course_lib.returns.gae_advantages"``), as it was at kernel start.

    Every call first checks that the notebook changed nothing and called no course_lib code (see
    :func:`own_work`), so the values it computes are the library's own.
    """
    __tracebackhide__ = True
    record = _record()
    module, _, attribute = name.rpartition(".")
    if not _is_library_module_name(module):
        raise ValueError(f"reference() takes a course_lib name such as 'course_lib.returns.gae_advantages', got {name!r}")
    if module not in record.modules:
        if record.early:
            raise ValueError(f"{module} was not loaded before the student's code ran: add it to "
                             f"course_lib.grading.REFERENCE_MODULES (now {', '.join(REFERENCE_MODULES)})")
        importlib.import_module(module)
        record.add_module(module)
    target = record.attributes.get((module, attribute), _MISSING)
    if target is _MISSING or not callable(target):
        raise ValueError(f"{module} has no function {attribute!r}")

    def checked(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        problem = record.problem(quick=True)
        if problem:
            raise AssertionError(problem)
        if record.watch.changed_inputs((*args, *kwargs.values()), record.same_tensor):
            raise AssertionError(
                "the code under test changed tensors it was given, in place, and the reference was to compute "
                "its answer from them: a solution must leave its inputs as they were, so this test scores 0.")
        return target(*args, **kwargs)

    checked.__name__ = checked.__qualname__ = f"reference({name!r})"
    checked.__doc__ = getattr(target, "__doc__", None)
    return checked


def assert_close(actual: Any, expected: Any, **kwargs: Any) -> None:
    """``torch.testing.assert_close`` as it was at kernel start, for plain tensors only, after the checks of own_work."""
    __tracebackhide__ = True
    record = _record()
    problem = record.problem(quick=True)
    if problem:
        raise AssertionError(problem)
    tensor = record.tensor_class
    for what, value in (("the result", actual), ("the expected value", expected)):
        if isinstance(value, tensor) and type(value) is not tensor:
            raise AssertionError(f"{what} is a {type(value).__name__}, a subclass of torch.Tensor: return a plain "
                                 f"torch.Tensor, so this test scores 0.")
    record.compare(actual, expected, **kwargs)
