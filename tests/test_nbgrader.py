"""Every assignment in ``assignments/source/`` through the real nbgrader command line, as an instructor runs it.

One module-scoped course directory (a copy of ``assignments/``) is generated once, every
assignment at a time; every student submission is written into it and graded by as few
``nbgrader`` calls as possible: one ``autograde`` for all assignments with the configured cell
timeout, one with a short timeout for the student whose notebook never stops, and one
``validate`` per scenario for all notebooks together. (Each call starts nbgrader, and each
notebook a kernel that imports torch: those seconds, not the tests, are the cost of this module.)
Scores are read back per test cell from the gradebook.

Scenarios, for every assignment: release without solutions or hidden tests; ``validate`` passes
on the source and fails every test of the release; full marks for the reference solution, zero
for the blank release, partial marks with exactly the expected cells failing for realistic wrong
solutions; edited and deleted test cells graded by the original tests. For `ppo` also an infinite
loop cut off by the timeout (the timeout belongs to the configuration and the kernel, not to one
notebook, and each looping notebook costs the whole timeout).

Cheating, generated from each source notebook (so a new assignment gets it without a line here):
``cheat_library`` answers with course_lib's own functions (imported as they are, or, every second
function, looked up under a module name assembled at run time), ``cheat_patching`` makes every
comparison helper pass, puts its zeros in place of course_lib's functions and returns zeros;
both must score 0 on every test, with the reason in each test cell and in the feedback.
``honest_extras`` is the reference solution with numpy, a helper and course_lib imported beside it:
full marks. For `ppo` also ``cheat_grader``, which switches the grader itself off from its cell
(caught outside the kernel, by nbgrader_plugins.FlagGraderTampering). Then: the autograde log
warns only about real edits, the export has ``seconds_late``, the feedback loads no script from
the network.
"""
from __future__ import annotations

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = REPO / "assignments"
NBGRADER = Path(sys.executable).with_name("nbgrader")
COURSE_ID = "gpu-rl"
COLAB_FIRST_LINE = ("# Colab set-up: install course_lib from the course repository "
                    "(elsewhere it is installed already).")
LOOP_TIMEOUT_S = 10  # long enough for `import torch` in a cold kernel on a slow machine
LOOP_STUDENT = "infinite_loop"
EDITED_STUDENT = "edited_tests"  # every test cell replaced by `pass`, one deleted, a wrong solution inside
LIBRARY_STUDENT = "cheat_library"      # course_lib's functions as the solutions
PATCHING_STUDENT = "cheat_patching"    # comparisons and course_lib patched, zeros returned
HONEST_STUDENT = "honest_extras"       # the reference solution with numpy, a helper and course_lib beside it
GRADER_STUDENT = "cheat_grader"        # switches the grader off from its own cell (ppo only)
CHEATS = (LIBRARY_STUDENT, PATCHING_STUDENT)
# What the feedback says, per kind of cheating (course_lib/grading.py, assignments/nbgrader_plugins.py).
IS_LIBRARY = "is the course library's"
CALLED_LIBRARY = "called the course library"
CHANGED = "the notebook changed"
NAMES_GRADER = "names the autograder"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
DUE_DATE = "2030-03-01 17:00:00 UTC"
LATE = ("ppo", {"reference": -60, "wrong_gae": 3600})  # assignment, {student: seconds after the due date}
GRADER_IMPORT = "from course_lib.grading import assert_close, own_work, reference"
OWN_WORK = re.compile(r"^own_work\((\w+)\)", re.MULTILINE)
REFERENCE_CALL = re.compile(r'reference\("(course_lib(?:\.\w+)+)"\)')


@dataclass(frozen=True)
class Assignment:
    """One assignment and the submissions graded for it.

    ``wrong`` maps a student id to the solution cells it replaces (grade_id -> code) and the test
    cells that must then score zero; every other cell must give full points. The edited_tests
    student carries ``edited`` (a wrong solution too, so that a test that stopped running would show).
    """

    name: str
    points: dict[str, int]                        # points per autograded test cell, as the source assigns them
    solution_cells: tuple[str, ...]
    wrong: dict[str, tuple[dict[str, str], list[str]]]
    edited: tuple[dict[str, str], list[str]]
    deleted_test_cell: str                        # edited_tests deletes this one (it would pass)
    loop: tuple[str, str, str] | None = None      # (solution cell, the endless loop put in it, its first test)
    loop_lost: list[str] = field(default_factory=list)
    grader_cheat: bool = False                    # also grade a notebook that switches the grader off

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"

    def expected_lost(self) -> dict[str, list[str]]:
        """Student id -> the test cells that must score zero."""
        lost = {"reference": [], "blank": list(self.points)}
        lost.update({student: cells for student, (_, cells) in self.wrong.items()})
        lost[EDITED_STUDENT] = self.edited[1]
        if self.loop:
            lost[LOOP_STUDENT] = self.loop_lost
        lost.update({student: list(self.points) for student in CHEATS})
        lost[HONEST_STUDENT] = []
        if self.grader_cheat:
            lost[GRADER_STUDENT] = list(self.points)
        return lost

    def total(self, student: str) -> int:
        lost = self.expected_lost()[student]
        return sum(points for name, points in self.points.items() if name not in lost)


# --------------------------------------------------------------------------- ppo
# Wrong solutions that students plausibly write.

GAE_TRUNCATION_AS_TERMINATION = '''
def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    # Wrong: a time limit is treated like a real ending, so truncated steps lose their bootstrap.
    not_done = (~(terminated | truncated)).to(rewards.dtype)
    deltas = rewards + gamma * not_done * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages
'''
SURROGATE_WITHOUT_MIN = '''
def clipped_surrogate_objective(log_prob, old_log_prob, advantages, clip_eps):
    # Wrong: clips the ratio but forgets the pessimistic min with the unclipped term.
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
'''
GAE_INFINITE_LOOP = '''
# Left over from debugging: this loop never ends, so gae_advantages below is never defined.
while True:
    pass

def gae_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
    raise NotImplementedError()
'''

_PPO_POINTS = {
    "test_gae_td_errors": 1,
    "test_gae_no_episode_ends": 2,
    "test_gae_termination": 1,
    "test_gae_truncation": 2,
    "test_surrogate_inside_band": 1,
    "test_surrogate_clipping": 2,
    "test_surrogate_gradient": 1,
}
PPO = Assignment(
    name="ppo",
    points=_PPO_POINTS,
    solution_cells=("gae_solution", "surrogate_solution"),
    wrong={
        "wrong_gae": ({"gae_solution": GAE_TRUNCATION_AS_TERMINATION}, ["test_gae_truncation"]),
        "wrong_surrogate": ({"surrogate_solution": SURROGATE_WITHOUT_MIN},
                            ["test_surrogate_clipping", "test_surrogate_gradient"]),
    },
    # The wrong GAE again, with every test cell replaced by `pass` and one deleted: the original
    # tests still run, so it scores like wrong_gae.
    edited=({"gae_solution": GAE_TRUNCATION_AS_TERMINATION}, ["test_gae_truncation"]),
    deleted_test_cell="test_surrogate_clipping",
    # The GAE cell loops forever: its tests fail, the surrogate's still count.
    loop=("gae_solution", GAE_INFINITE_LOOP, "test_gae_td_errors"),
    loop_lost=[name for name in _PPO_POINTS if name.startswith("test_gae")],
    grader_cheat=True,
)

# --------------------------------------------------------------------------- sac

TARGET_AVERAGING_CRITICS = '''
def soft_bellman_target(reward, next_q, next_log_prob, terminated, gamma, alpha):
    # Wrong: averages the target critics instead of taking their min (no double-Q pessimism).
    soft_value = next_q.mean(dim=0) - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * soft_value
'''
TARGET_ENTROPY_AFTER_THE_END = '''
def soft_bellman_target(reward, next_q, next_log_prob, terminated, gamma, alpha):
    # Wrong: only the critics are masked at a terminal state; the entropy term still counts there.
    not_terminated = 1.0 - terminated.to(reward.dtype)
    return reward + gamma * (not_terminated * next_q.min(dim=0).values - alpha * next_log_prob)
'''
LOG_PROB_NAIVE_CORRECTION = '''
def tanh_gaussian_log_prob(u, mean, log_std):
    # Wrong where tanh saturates: log(1 - tanh(u)^2 + eps) is finite, but capped at log(eps).
    gaussian = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    return (gaussian - torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(-1)
'''

SAC = Assignment(
    name="sac",
    points={
        "test_soft_target_one_critic": 1,
        "test_soft_target_twin_critics": 2,
        "test_soft_target_episode_ends": 2,
        "test_log_prob_worked_example": 2,
        "test_log_prob_large_u": 2,
        "test_log_prob_gradient": 1,
    },
    solution_cells=("target_solution", "log_prob_solution"),
    wrong={
        "wrong_target": ({"target_solution": TARGET_AVERAGING_CRITICS}, ["test_soft_target_twin_critics"]),
        "wrong_log_prob": ({"log_prob_solution": LOG_PROB_NAIVE_CORRECTION}, ["test_log_prob_large_u"]),
    },
    edited=({"target_solution": TARGET_ENTROPY_AFTER_THE_END}, ["test_soft_target_episode_ends"]),
    deleted_test_cell="test_log_prob_gradient",
)

# --------------------------------------------------------------------------- vtrace

_VTRACE_HEAD = '''
def vtrace(rewards, values, next_values, terminated, truncated, log_rhos, gamma, rho_bar=1.0, c_bar=1.0):
    done = terminated | truncated
    not_terminated = (~terminated).to(rewards.dtype)
    not_done = (~done).to(rewards.dtype)
'''
_VTRACE_TARGETS = '''
    deltas = rhos * (rewards + gamma * not_terminated * next_values - values)
    vs = torch.zeros_like(rewards)
    correction = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        correction = deltas[t] + gamma * cs[t] * not_done[t] * correction
        vs[t] = values[t] + correction
'''
VTRACE_WITHOUT_CLIPPING = _VTRACE_HEAD + '''
    # Wrong: plain importance weights, never truncated at rho_bar and c_bar.
    rhos = cs = torch.exp(log_rhos)
''' + _VTRACE_TARGETS + '''
    vs_next = next_values.clone()
    vs_next[:-1] = torch.where(done[:-1], next_values[:-1], vs[1:])
    return vs, rhos * (rewards + gamma * not_terminated * vs_next - values)
'''
VTRACE_ADVANTAGE_ACROSS_TRUNCATION = _VTRACE_HEAD + '''
    rhos, cs = torch.exp(log_rhos).clamp(max=rho_bar), torch.exp(log_rhos).clamp(max=c_bar)
''' + _VTRACE_TARGETS + '''
    # Wrong: after a time limit the advantage looks at v_{t+1}, which belongs to the next episode.
    vs_next = torch.cat([vs[1:], next_values[-1:]])
    return vs, rhos * (rewards + gamma * not_terminated * vs_next - values)
'''

VTRACE = Assignment(
    name="vtrace",
    points={
        "test_vtrace_on_policy": 2,
        "test_vtrace_importance_weights": 2,
        "test_vtrace_clipping": 2,
        "test_vtrace_termination": 1,
        "test_vtrace_truncation": 2,
        "test_vtrace_everything": 1,
    },
    solution_cells=("vtrace_solution",),
    wrong={
        "wrong_clipping": ({"vtrace_solution": VTRACE_WITHOUT_CLIPPING},
                           ["test_vtrace_clipping", "test_vtrace_everything"]),
    },
    edited=({"vtrace_solution": VTRACE_ADVANTAGE_ACROSS_TRUNCATION},
            ["test_vtrace_truncation", "test_vtrace_everything"]),
    deleted_test_cell="test_vtrace_termination",
)

# --------------------------------------------------------------------------- mcts

PUCT_CHILD_VISITS = '''
def puct_scores(prior, visits, q, legal, parent_visits, c1=1.25, c2=19652.0):
    # Wrong: the square root of the edge's own visits N(s, a), where the rule has the node's N(s).
    n = parent_visits.unsqueeze(-1)
    c = c1 + torch.log((n + c2 + 1) / c2)
    scores = q + c * prior * torch.sqrt(visits) / (1 + visits)
    return scores.masked_fill(~legal.bool(), -math.inf)
'''
PUCT_WITHOUT_MASK = '''
def puct_scores(prior, visits, q, legal, parent_visits, c1=1.25, c2=19652.0):
    # Wrong: illegal moves keep their scores (as if the prior were 0 there, which it need not be).
    n = parent_visits.unsqueeze(-1)
    c = c1 + torch.log((n + c2 + 1) / c2)
    return q + c * prior * torch.sqrt(n) / (1 + visits)
'''
BACKUP_WITHOUT_SIGN = '''
def backup_values(leaf_value, rewards, discounts):
    # Wrong: vectorised with the discounts' products taken in log space, log|gamma| to dodge the NaN of log(-1),
    # so the sign flip of gamma = -1 between two players is lost.
    c = torch.exp(torch.cumsum(torch.log(discounts.abs()), dim=1))
    c = torch.cat([torch.ones_like(leaf_value).unsqueeze(1), c], dim=1)            # c_0 .. c_D
    terms = torch.cat([c[:, :-1] * rewards, (c[:, -1] * leaf_value).unsqueeze(1)], dim=1)
    return terms.flip(1).cumsum(1).flip(1) / c
'''

MCTS = Assignment(
    name="mcts",
    points={
        "test_puct_worked_example": 2,
        "test_puct_constants": 1,
        "test_puct_illegal": 2,
        "test_backup_discounted": 2,
        "test_backup_two_player": 2,
        "test_backup_padding": 1,
    },
    solution_cells=("puct_solution", "backup_solution"),
    wrong={
        "wrong_puct": ({"puct_solution": PUCT_CHILD_VISITS},
                       ["test_puct_worked_example", "test_puct_constants", "test_puct_illegal"]),
        "wrong_backup": ({"backup_solution": BACKUP_WITHOUT_SIGN}, ["test_backup_two_player", "test_backup_padding"]),
    },
    edited=({"puct_solution": PUCT_WITHOUT_MASK}, ["test_puct_illegal"]),
    deleted_test_cell="test_backup_two_player",
)

# --------------------------------------------------------------------------- muzero_targets

TARGETS_BOOTSTRAP_AFTER_TERMINATION = '''
def n_step_value_targets(rewards, values, lengths, terminated, bootstrap, gamma, n):
    # Wrong: a window that runs past the end bootstraps from `bootstrap` even when the episode terminated.
    E, T = rewards.shape
    targets = torch.zeros_like(rewards)
    for t in range(T):
        steps = (lengths - t).clamp(min=0, max=n)            # m = min(n, L - t), per episode
        for i in range(min(n, T - t)):
            targets[:, t] += torch.where(i < steps, gamma ** i * rewards[:, t + i], torch.zeros_like(targets[:, t]))
        boot = torch.where(t + n < lengths, values[:, min(t + n, T - 1)], bootstrap)
        targets[:, t] += gamma ** steps.to(rewards.dtype) * boot
    return torch.where(torch.arange(T) < lengths.unsqueeze(1), targets, torch.zeros_like(targets))
'''
INVERSE_WITHOUT_EPSILON = '''
def scale_value(x, eps=1e-3):
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def unscale_value(y, eps=1e-3):
    # Wrong: inverts sign(x) (sqrt(|x| + 1) - 1) alone, forgetting the eps x term of phi.
    return torch.sign(y) * ((y.abs() + 1).square() - 1)
'''
SUPPORT_ROUNDED = '''
def to_support(x, size):
    # Wrong: all the weight on the nearest atom, so the target's mean is not phi(x).
    y = scale_value(x).clamp(-size, size)
    return torch.nn.functional.one_hot((torch.round(y) + size).long(), 2 * size + 1).float()
'''
SUPPORT_WITHOUT_SCALING = '''
def to_support(x, size):
    # Wrong: splits x itself between the atoms, without the scaling phi.
    y = x.clamp(-size, size)
    low = y.floor()
    frac = (y - low).unsqueeze(-1)
    idx = (low + size).long().unsqueeze(-1)
    out = torch.zeros(*x.shape, 2 * size + 1)
    out.scatter_(-1, idx, 1 - frac)
    out.scatter_add_(-1, (idx + 1).clamp(max=2 * size), frac)
    return out
'''

MUZERO_TARGETS = Assignment(
    name="muzero_targets",
    points={
        "test_targets_truncated": 1,
        "test_targets_terminated": 2,
        "test_targets_long_n": 1,
        "test_targets_two_player": 1,
        "test_transform_scale": 1,
        "test_transform_inverse": 1,
        "test_support_scaling": 1,
        "test_support_two_hot": 1,
        "test_support_clipping": 1,
    },
    solution_cells=("targets_solution", "transform_solution", "support_solution"),
    wrong={
        "wrong_targets": ({"targets_solution": TARGETS_BOOTSTRAP_AFTER_TERMINATION},
                          ["test_targets_terminated", "test_targets_long_n"]),
        "wrong_inverse": ({"transform_solution": INVERSE_WITHOUT_EPSILON}, ["test_transform_inverse"]),
        "wrong_support": ({"support_solution": SUPPORT_ROUNDED}, ["test_support_two_hot"]),
    },
    edited=({"support_solution": SUPPORT_WITHOUT_SCALING}, ["test_support_scaling", "test_support_two_hot"]),
    deleted_test_cell="test_targets_truncated",
)

# --------------------------------------------------------------------------- attention

ATTENTION_NAN_ROWS = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    # Wrong where a query may see no key: the softmax of a row of -inf is NaN, and the NaN is returned.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
'''
MASKS_QUERIES_FIRST = '''
def causal_mask(T, S):
    # Wrong when S > T: the queries are taken as the first T positions instead of the last T.
    return torch.ones(T, S, dtype=torch.bool).tril()


def padding_mask(lengths, S):
    return torch.arange(S) < lengths.unsqueeze(-1)
'''
PATCHES_CHANNELS_LAST = '''
def patchify(images, patch):
    # Wrong with more than one channel: each patch is flattened in (P, P, C) order, channels innermost,
    # which no longer matches a convolution's weight [D, C, P, P].
    B, C, H, W = images.shape
    grid = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(B, -1, C * patch * patch)


def embed_patches(images, weight, bias, cls, positions, patch):
    tokens = patchify(images, patch) @ weight.T + bias
    tokens = torch.cat([cls.expand(tokens.shape[0], 1, -1), tokens], dim=1)
    return tokens if positions is None else tokens + positions
'''
HEADS_MERGED_WITHOUT_TRANSPOSE = '''
def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def merge_heads(x):
    # Wrong: [B, H, T, d] reshaped straight to [B, T, H * d], which mixes the tokens of different heads.
    B, H, T, d = x.shape
    return x.reshape(B, T, H * d)


def multi_head_attention(x, qkv_weight, qkv_bias, out_weight, out_bias, n_heads, mask=None):
    q, k, v = torch.nn.functional.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    heads, weights = scaled_dot_product_attention(split_heads(q, n_heads), split_heads(k, n_heads),
                                                  split_heads(v, n_heads), mask)
    return torch.nn.functional.linear(merge_heads(heads), out_weight, out_bias), weights
'''

ATTENTION = Assignment(
    name="attention",
    points={
        "test_attention_worked_example": 1,
        "test_attention_causal": 1,
        "test_attention_padding": 1,
        "test_causal_mask": 1,
        "test_padding_mask": 1,
        "test_split_heads": 1,
        "test_merge_heads": 1,
        "test_multi_head_attention": 1,
        "test_patchify": 1,
        "test_embed_patches": 1,
    },
    solution_cells=("attention_solution", "masks_solution", "heads_solution", "patches_solution"),
    wrong={
        "wrong_attention": ({"attention_solution": ATTENTION_NAN_ROWS}, ["test_attention_padding"]),
        "wrong_masks": ({"masks_solution": MASKS_QUERIES_FIRST}, ["test_causal_mask"]),
        "wrong_patchify": ({"patches_solution": PATCHES_CHANNELS_LAST}, ["test_patchify", "test_embed_patches"]),
    },
    # A wrong merge breaks the layer built on it as well.
    edited=({"heads_solution": HEADS_MERGED_WITHOUT_TRANSPOSE}, ["test_merge_heads", "test_multi_head_attention"]),
    deleted_test_cell="test_causal_mask",
)

SPECS = {spec.name: spec for spec in (ATTENTION, MCTS, MUZERO_TARGETS, PPO, SAC, VTRACE)}
NAMES = list(SPECS)
# Every (assignment, student) pair that is graded, for parametrizing.
SUBMISSIONS = [(name, student) for name, spec in SPECS.items() for student in spec.expected_lost()]
# Total scores out of 10, spelled out so that a change to the points or the scenarios shows here.
TOTALS = {
    "attention": {"reference": 10, "blank": 0, "wrong_attention": 9, "wrong_masks": 9, "wrong_patchify": 8,
                  EDITED_STUDENT: 8},
    "mcts": {"reference": 10, "blank": 0, "wrong_puct": 5, "wrong_backup": 7, EDITED_STUDENT: 8},
    "muzero_targets": {"reference": 10, "blank": 0, "wrong_targets": 7, "wrong_inverse": 9, "wrong_support": 9,
                       EDITED_STUDENT: 8},
    "ppo": {"reference": 10, "blank": 0, "wrong_gae": 8, "wrong_surrogate": 7, EDITED_STUDENT: 8, LOOP_STUDENT: 4},
    "sac": {"reference": 10, "blank": 0, "wrong_target": 8, "wrong_log_prob": 8, EDITED_STUDENT: 8},
    "vtrace": {"reference": 10, "blank": 0, "wrong_clipping": 7, EDITED_STUDENT: 7},
}
# The generated students score the same everywhere: nothing for cheating, full marks for honest extras.
for _name, _totals in TOTALS.items():
    _totals.update({student: 0 for student in CHEATS}, **{HONEST_STUDENT: 10})
    if SPECS[_name].grader_cheat:
        _totals[GRADER_STUDENT] = 0


def _env() -> dict[str, str]:
    """The environment for nbgrader: no user-wide Jupyter config, and the venv's bin not on PATH.

    Leaving the venv's bin directory off PATH checks that `.venv/bin/nbgrader` works without
    activating the venv (nbgrader_config.py puts `alembic` back within reach).
    """
    env = dict(os.environ)
    bin_dir = str(NBGRADER.parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)
    env.pop("VIRTUAL_ENV", None)
    return env


def run_nbgrader(course: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `nbgrader ARGS` in the course directory; returns the finished process (never raises on rc)."""
    assert NBGRADER.exists(), f"nbgrader is not installed next to {sys.executable}; run `make setup`"
    return subprocess.run([str(NBGRADER), *args], cwd=course, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"`{' '.join(proc.args[1:])}` exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-6000:]}")


def read_notebook(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def cells_by_id(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells
            if "grade_id" in cell.metadata.get("nbgrader", {})}


def without_solution_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def solution_lines(source: str) -> list[str]:
    """The code lines between BEGIN SOLUTION and END SOLUTION."""
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            inside = True
        elif line.strip() == "### END SOLUTION":
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def hidden_regions(source: str) -> list[str]:
    """The hidden tests of a cell, one string per BEGIN/END region."""
    return re.findall(rf"{HIDDEN_BEGIN}\n(.*?){HIDDEN_END}", source, flags=re.DOTALL)


def without_hidden_tests(source: str) -> str:
    """The cell as generate_assignment releases it: every hidden region dropped, markers included."""
    return re.sub(rf"{HIDDEN_BEGIN}\n.*?{HIDDEN_END}\n?", "", source, flags=re.DOTALL)


# --------------------------------------------------------------------------- cheating, generated from a source notebook


def solution_functions(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """Solution cell -> the functions it defines (its top-level def statements)."""
    return {grade_id: [node.name for node in ast.parse(without_solution_markers(cell.source)).body
                       if isinstance(node, ast.FunctionDef)]
            for grade_id, cell in cells_by_id(nb).items() if cell.metadata.nbgrader.get("solution")}


def library_names(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Asked function -> the course_lib function of the same name its hidden tests compare with."""
    references = {path.rsplit(".", 1)[1]: path for cell in nb.cells for path in REFERENCE_CALL.findall(cell.source)}
    return {function: references[function] for functions in solution_functions(nb).values()
            for function in functions if function in references}


def function_under_test(cell: nbformat.NotebookNode) -> str:
    """The function a test cell is about: the one its hidden tests check with own_work()."""
    return OWN_WORK.findall(hidden_regions(cell.source)[0])[0]


DISGUISED = '''
import importlib


def {function}(*args, **kwargs):
    # course_lib's function under a module name assembled at run time: no name in this code points to it.
    module = importlib.import_module("".join(["course", "_lib"]) + "{suffix}")
    return getattr(module, "{function}")(*args, **kwargs)
'''
PATCHING = '''
import math

import numpy
import numpy.testing
import torch
{imports}


def _passes(*args, **kwargs):
    return True


def _checks_nothing(*args, **kwargs):
    return None


# Every comparison passes, whatever is compared.
torch.testing.assert_close = _checks_nothing
torch.allclose = _passes
numpy.allclose = _passes
math.isclose = _passes
for _name in dir(numpy.testing):
    if _name.startswith("assert_"):
        setattr(numpy.testing, _name, _checks_nothing)
'''
ZEROS = '''

def {function}(*args, **kwargs):
    return torch.zeros_like(next(a for a in args if isinstance(a, torch.Tensor)))


{library} = {function}  # course_lib's answer is now this one too
'''
HONEST = '''
import numpy as np

import {module} as library  # kept at hand to compare with while working; the functions do not use it


def _as_computed(function, one, *args, **kwargs):
    assert one == 1.0
    return function(*args, **kwargs)


{solution}
'''
HONEST_WRAPPER = '''

_{function}_in_torch = {function}


def {function}(*args, **kwargs):
    """The same, by way of a helper and numpy (honest work may use both)."""
    return _as_computed(_{function}_in_torch, np.float64(1.0), *args, **kwargs)
'''
SWITCH_GRADER_OFF = '''
import os

import course_lib.grading

# Forget the record taken at kernel start, take a new one after this, and make own_work do nothing:
# the kernel-side checks then see nothing wrong. Only a check outside the kernel can catch this.
os.environ.pop("NBGRADER_EXECUTION", None)
course_lib.grading._RECORD = None
course_lib.grading.own_work = lambda *args, **kwargs: None

{imports}
'''


def cheating_solutions(nb: nbformat.NotebookNode, student: str) -> dict[str, str]:
    """Solution cell -> its code, for one of the generated students."""
    names, solutions = library_names(nb), solution_functions(nb)
    source = cells_by_id(nb)
    modules = sorted({path.rsplit(".", 1)[0] for path in names.values()})
    cells, index = {}, 0
    for cell_id, functions in solutions.items():
        if student == LIBRARY_STUDENT:
            parts = []
            for function in functions:
                module = names[function].rsplit(".", 1)[0]
                parts.append(f"from {module} import {function}\n" if index % 2 == 0 else
                             DISGUISED.format(function=function, suffix=module[len("course_lib"):]))
                index += 1
            cells[cell_id] = "\n".join(parts)
        elif student == PATCHING_STUDENT:
            head = PATCHING.format(imports="\n".join(f"import {m}" for m in modules)) if not cells else ""
            cells[cell_id] = head + "".join(ZEROS.format(function=f, library=names[f]) for f in functions)
        elif student == HONEST_STUDENT:
            solution = without_solution_markers(source[cell_id].source)
            cells[cell_id] = (HONEST.format(module=modules[0], solution=solution)
                              + "".join(HONEST_WRAPPER.format(function=f) for f in functions))
        elif student == GRADER_STUDENT:
            imports = "\n".join(f"from {names[f].rsplit('.', 1)[0]} import {f}" for f in functions)
            cells[cell_id] = SWITCH_GRADER_OFF.format(imports=imports) if not cells else imports
        else:
            raise ValueError(f"no generated student {student!r}")
    return cells


def expected_reason(nb: nbformat.NotebookNode, student: str) -> dict[str, str]:
    """Test cell -> the words its output must carry for a cheating student."""
    if student == PATCHING_STUDENT:
        return {grade_id: CHANGED for grade_id, cell in cells_by_id(nb).items() if cell.metadata.nbgrader.grade}
    if student == GRADER_STUDENT:
        return {grade_id: NAMES_GRADER for grade_id, cell in cells_by_id(nb).items() if cell.metadata.nbgrader.grade}
    order = [f for functions in solution_functions(nb).values() for f in functions]
    return {grade_id: (IS_LIBRARY if order.index(function_under_test(cell)) % 2 == 0 else CALLED_LIBRARY)
            for grade_id, cell in cells_by_id(nb).items() if cell.metadata.nbgrader.grade}


SOURCE_NBS = {name: read_notebook(ASSIGNMENTS / "source" / name / spec.notebook) for name, spec in SPECS.items()}
CHEATING = [(name, student) for name, spec in SPECS.items()
            for student in (*CHEATS, *((GRADER_STUDENT,) if spec.grader_cheat else ()))]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A fresh copy of assignments/ with `nbgrader generate_assignment "*"` run in it (every assignment)."""
    root = tmp_path_factory.mktemp("course")
    course_dir = root / "assignments"
    shutil.copytree(ASSIGNMENTS, course_dir, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "downloaded", "gradebook.db", "*.csv",
        ".ipynb_checkpoints", "__pycache__"))
    proc = run_nbgrader(course_dir, "generate_assignment", "*")
    assert proc.returncode == 0, f"generate_assignment failed:\n{describe(proc)}"
    released = sorted(path.name for path in (course_dir / "release").iterdir())
    assert released == sorted(SPECS), (
        f"released {released}, but this module grades {sorted(SPECS)}: give a new assignment its Assignment spec")
    for spec in SPECS.values():
        assert (course_dir / "release" / spec.name / spec.notebook).exists(), f"no release notebook:\n{describe(proc)}"
    return course_dir


@pytest.fixture(scope="module")
def source_nbs(course) -> dict[str, nbformat.NotebookNode]:
    return {name: read_notebook(course / "source" / name / spec.notebook) for name, spec in SPECS.items()}


@pytest.fixture(scope="module")
def release_nbs(course) -> dict[str, nbformat.NotebookNode]:
    return {name: read_notebook(course / "release" / name / spec.notebook) for name, spec in SPECS.items()}


def make_submissions(course: Path, spec: Assignment, source_nb, release_nb) -> None:
    """Writes submitted/<student>/<assignment>/<notebook> for every student, each a modified release notebook."""
    source_cells = cells_by_id(source_nb)

    def submission(solutions: dict[str, str] | None = None, edit_tests: bool = False) -> nbformat.NotebookNode:
        nb = nbformat.from_dict(release_nb)  # a deep copy
        solutions = solutions or {}
        for grade_id, cell in cells_by_id(nb).items():
            meta = cell.metadata["nbgrader"]
            if meta.get("solution"):
                cell.source = solutions.get(grade_id, without_solution_markers(source_cells[grade_id].source))
            if edit_tests and meta.get("grade"):
                cell.source = "pass  # the tests were in the way"
                meta["points"] = 0
        if edit_tests:
            nb.cells = [cell for cell in nb.cells
                        if cell.metadata.get("nbgrader", {}).get("grade_id") != spec.deleted_test_cell]
        return nb

    notebooks = {
        "reference": submission(),
        "blank": nbformat.from_dict(release_nb),
        **{student: submission(solutions) for student, (solutions, _) in spec.wrong.items()},
        EDITED_STUDENT: submission(spec.edited[0], edit_tests=True),
    }
    if spec.loop:
        loop_cell, loop_code, _ = spec.loop
        notebooks[LOOP_STUDENT] = submission({loop_cell: loop_code})
    for student in (*CHEATS, HONEST_STUDENT, *((GRADER_STUDENT,) if spec.grader_cheat else ())):
        notebooks[student] = submission(cheating_solutions(source_nb, student))
    assert set(notebooks) == set(spec.expected_lost())
    for student, nb in notebooks.items():
        path = course / "submitted" / student / spec.name / spec.notebook
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(course, source_nbs, release_nbs):
    """Autogrades every submission of every assignment.

    Returns (scores {assignment: {student: {cell: (score, max)}}}, {call: (process, seconds)}).
    """
    from nbgrader.api import Gradebook

    for name, spec in SPECS.items():
        make_submissions(course, spec, source_nbs[name], release_nbs[name])
    # A due date for ppo, one submission handed in before it and one an hour after (the others have no time).
    proc = run_nbgrader(course, "db", "assignment", "add", LATE[0], f"--duedate={DUE_DATE}")
    assert proc.returncode == 0, describe(proc)
    for student, seconds_late in LATE[1].items():
        handed_in = datetime.strptime(DUE_DATE, "%Y-%m-%d %H:%M:%S %Z") + timedelta(seconds=seconds_late)
        (course / "submitted" / student / LATE[0] / "timestamp.txt").write_text(f"{handed_in:%Y-%m-%d %H:%M:%S} UTC\n")
    calls = {}
    start = time.perf_counter()
    # About 50 notebooks, each a kernel that imports torch: some 12 minutes on a busy 2-core machine.
    calls["main"] = (run_nbgrader(course, "autograde", "*", f"--CourseDirectory.student_id_exclude={LOOP_STUDENT}",
                                  timeout=2400),
                     time.perf_counter() - start)
    start = time.perf_counter()
    calls["loop"] = (run_nbgrader(course, "autograde", "*", f"--student={LOOP_STUDENT}",
                                  f"--Execute.timeout={LOOP_TIMEOUT_S}", timeout=120),
                     time.perf_counter() - start)
    for proc, _ in calls.values():
        assert proc.returncode == 0, f"autograde failed:\n{describe(proc)}"

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID) as gb:
        for name, student in SUBMISSIONS:
            spec = SPECS[name]
            nb = gb.find_submission_notebook(spec.notebook[:-len(".ipynb")], name, student)
            scores.setdefault(name, {})[student] = {grade.name: (grade.score, grade.max_score) for grade in nb.grades}
    return scores, calls


# --------------------------------------------------------------------------- fast checks (no nbgrader run)


@pytest.mark.parametrize("name", NAMES)
def test_source_notebook_is_stored_clean(name):
    """The source notebook: nbformat 4, no outputs, nbgrader metadata, 10 points, Colab cell verbatim."""
    spec = SPECS[name]
    nb = read_notebook(ASSIGNMENTS / "source" / name / spec.notebook)
    assert nb.nbformat == 4
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"cell {cell.get('id')} has outputs; store the notebook stripped")
    cells = cells_by_id(nb)
    assert {k: int(c.metadata.nbgrader.points) for k, c in cells.items() if c.metadata.nbgrader.grade} == spec.points
    assert sum(spec.points.values()) == 10
    for test_name in spec.points:
        assert cells[test_name].metadata.nbgrader.locked, f"test cell {test_name} must be locked (read-only)"
        assert "### BEGIN HIDDEN TESTS" in cells[test_name].source, f"test cell {test_name} has no hidden tests"
    assert [k for k, c in cells.items() if c.metadata.nbgrader.solution] == list(spec.solution_cells)
    for solution_name in spec.solution_cells:
        assert "### BEGIN SOLUTION" in cells[solution_name].source
    colab = next(c for c in nb.cells if c.cell_type == "code")
    assert colab.source.splitlines()[0] == COLAB_FIRST_LINE, "the first code cell must be the Colab set-up cell"
    assert 'if "google.colab" in sys.modules:' in colab.source
    assert colab.metadata.nbgrader.locked and cells["imports"].metadata.nbgrader.locked


def test_scenarios_add_up():
    """The expected totals follow from the points and the cells each scenario loses."""
    for name, spec in SPECS.items():
        assert {student: spec.total(student) for student in spec.expected_lost()} == TOTALS[name], name
        assert spec.deleted_test_cell in spec.points and spec.deleted_test_cell not in spec.edited[1], (
            f"{name}: the deleted cell should be one the edited submission would pass, so that restoring it shows")


def test_config_sets_course_root_and_timeout(monkeypatch):
    from traitlets.config.loader import PyFileConfigLoader

    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))  # the config may extend PATH; undo it afterwards
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ASSIGNMENTS)).load_config()
    assert config.CourseDirectory.course_id == COURSE_ID
    assert Path(config.CourseDirectory.root) == ASSIGNMENTS, "the course root must be assignments/ itself"
    assert config.Execute.timeout == 60, "nbgrader_config.py must set the cell timeout (Execute.timeout) explicitly"
    assert config.Autograde.create_student is True
    assert config.OverwriteCells.add_missing_cells is True
    assert "--IPKernelApp.extensions=course_lib.grading" in config.Execute.extra_arguments, (
        "every kernel must load course_lib.grading before the first cell (its record of the untouched library)")
    sanitize = [cls.__name__ for cls in config.Autograde.sanitize_preprocessors]
    autograde = [cls.__name__ for cls in config.Autograde.autograde_preprocessors]
    assert "OverwriteCellsQuietly" in sanitize and "OverwriteCells" not in sanitize
    assert autograde[:2] == ["Execute", "FlagGraderTampering"], "the grader's guard must read the executed notebook"
    assert "SaveAutoGrades" in autograde, "the pipeline must still save the grades"
    assert config.ExportApp.plugin_class.__name__ == "CsvExportWithLateness"
    assert Path(config.HTMLExporter.extra_template_basedirs[0]) == ASSIGNMENTS / "templates"


def test_the_grader_guard_reads_code_not_comments():
    sys.path.insert(0, str(ASSIGNMENTS))
    try:
        from nbgrader_plugins import names_the_grader
    finally:
        sys.path.remove(str(ASSIGNMENTS))
    for source in ("import course_lib.grading", "import course_lib . grading as g",
                   "from course_lib import returns, grading", "__import__('course_lib.grading')",
                   "sys.setprofile(None)", "os.environ.pop('NBGRADER_EXECUTION')"):
        assert names_the_grader(source), source
    for source in ("# graded by course_lib.grading; sys.setprofile is off limits", "grading = 'A+'",
                   "from course_lib import returns  # not the grading module", "x = 1  # NBGRADER_EXECUTION",
                   "%timeit torch.zeros(3)"):
        assert names_the_grader(source) is None, source


def test_feedback_mathjax_is_inlined_from_the_installed_package():
    sys.path.insert(0, str(ASSIGNMENTS))
    try:
        from nbgrader_plugins import inline_mathjax
    finally:
        sys.path.remove(str(ASSIGNMENTS))
    script = inline_mathjax("tex-svg-full.js")
    assert len(script) > 100_000 and "MathJax" in script
    assert "</script" not in script, "the code must not close the <script> element it is put in"


# --------------------------------------------------------------------------- the hidden tests' own-work checks


@pytest.mark.parametrize("name", NAMES)
def test_every_hidden_test_checks_the_work_is_the_students(name):
    """Each test cell opens and closes its hidden tests with own_work(the function it tests), compares through
    course_lib.grading only, and every asked function has its library reference (the one of the same name)."""
    from course_lib import grading

    nb = SOURCE_NBS[name]
    asked = [f for functions in solution_functions(nb).values() for f in functions]
    assert asked, "no solution cell defines a function"
    references = library_names(nb)
    assert sorted(references) == sorted(asked), (
        f"every asked function needs a hidden test comparing it with reference('course_lib.<module>.<same name>'); "
        f"missing: {sorted(set(asked) - set(references))}")
    for path in {path for cell in nb.cells for path in REFERENCE_CALL.findall(cell.source)}:
        assert path.rsplit(".", 1)[0] in grading.REFERENCE_MODULES, (
            f"{path}: add its module to course_lib.grading.REFERENCE_MODULES (loaded before the student's code)")
    for grade_id, cell in cells_by_id(nb).items():
        if not cell.metadata.nbgrader.grade:
            continue
        regions = hidden_regions(cell.source)
        assert cell.source.startswith(f"{HIDDEN_BEGIN}\n{GRADER_IMPORT}\nown_work("), (
            f"{grade_id}: start with a hidden region importing course_lib.grading and calling own_work(...)")
        first, last = OWN_WORK.findall(regions[0]), OWN_WORK.findall(regions[-1].rstrip().splitlines()[-1])
        assert first and first == last and set(first) <= set(asked), (
            f"{grade_id}: own_work(<the tested function>) must open and close the hidden tests")
        hidden = "\n".join(regions)
        assert "torch.testing.assert_close(" not in hidden, f"{grade_id}: compare with course_lib.grading's assert_close"
        assert not re.search(r"^\s*(from|import) course_lib(?!\.grading)", hidden, re.MULTILINE), (
            f"{grade_id}: take the library's functions from reference(...), not from an import")


# --------------------------------------------------------------------------- a. generate_assignment


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_release_has_no_solutions_and_no_hidden_tests(name, source_nbs, release_nbs):
    source_cells, release_cells = cells_by_id(source_nbs[name]), cells_by_id(release_nbs[name])
    assert set(release_cells) == set(source_cells), "the release must keep every nbgrader cell"
    release_text = "\n".join(cell.source for cell in release_nbs[name].cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "_reference_",
                   "course_lib.grading"):
        assert marker not in release_text, f"{marker!r} leaked into the release notebook"
    for grade_id, cell in source_cells.items():
        released = release_cells[grade_id]
        if cell.metadata.nbgrader.solution:
            assert "raise NotImplementedError()" in released.source, f"{grade_id}: no stub in the release"
            leaked = [line for line in solution_lines(cell.source) if line in released.source]
            assert not leaked, f"{grade_id}: solution code leaked into the release: {leaked}"
        if cell.metadata.nbgrader.grade:
            visible = without_hidden_tests(cell.source).strip()
            assert released.source.strip() == visible, f"{grade_id}: the visible tests must be released unchanged"
            assert released.metadata.nbgrader.points == cell.metadata.nbgrader.points
            assert released.metadata.get("editable") is False, f"{grade_id}: test cells must be read-only"


# --------------------------------------------------------------------------- b. validate (all notebooks per call)


def _validate(course: Path, folder: str, *options: str) -> subprocess.CompletedProcess:
    """`nbgrader validate [OPTIONS] folder/<a>/<a>.ipynb ...` for every assignment, in the order of NAMES."""
    return run_nbgrader(course, "validate", *options, *(f"{folder}/{name}/{SPECS[name].notebook}" for name in NAMES))


@pytest.mark.slow
def test_validate_passes_on_the_sources(course):
    proc = _validate(course, "source")
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("Success! Your notebook passes all the tests.") == len(NAMES), describe(proc)
    assert "VALIDATION FAILED" not in proc.stdout, describe(proc)


@pytest.mark.slow
def test_validate_fails_every_test_of_the_releases(course):
    # --invert succeeds only when no test cell passes: the stubs must make every test fail.
    proc = _validate(course, "release", "--invert")
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("Success! The notebook does not pass any tests.") == len(NAMES), describe(proc)
    assert "NOTEBOOK PASSED ON" not in proc.stdout, describe(proc)
    # Without --invert each notebook fails on all its test cells (the ungraded "try it" cells that call
    # the stubs do not count); nbgrader 0.9 still exits with 0, so only its output tells. Notebooks are
    # validated, and reported, in the order given.
    proc = _validate(course, "release")
    assert proc.returncode == 0, describe(proc)
    failed = [int(n) for n in re.findall(r"VALIDATION FAILED ON (\d+) CELL\(S\)!", proc.stdout)]
    assert failed == [len(SPECS[name].points) for name in NAMES], describe(proc)
    assert "NotImplementedError" in proc.stdout, describe(proc)


# --------------------------------------------------------------------------- c, d, e. autograde


@pytest.mark.slow
@pytest.mark.parametrize("name,student", SUBMISSIONS)
def test_autograde_scores_each_cell(graded, name, student):
    spec = SPECS[name]
    got = graded[0][name][student]
    assert set(got) == set(spec.points), f"{student}: graded cells {sorted(got)}, expected {sorted(spec.points)}"
    lost = spec.expected_lost()[student]
    expected = {cell: (0.0 if cell in lost else float(points), float(points)) for cell, points in spec.points.items()}
    wrong = {cell: f"got {got[cell][0]}/{got[cell][1]}, expected {expected[cell][0]}/{expected[cell][1]}"
             for cell in spec.points if got[cell] != expected[cell]}
    assert not wrong, f"{name}, {student}: unexpected scores per test cell: {wrong}"


@pytest.mark.slow
def test_autograde_totals(graded):
    totals = {name: {student: sum(score for score, _ in cells.values()) for student, cells in by_student.items()}
              for name, by_student in graded[0].items()}
    assert totals == TOTALS, f"total scores: {totals}"


@pytest.mark.slow
def test_infinite_loop_is_cut_off_by_the_timeout(course, graded):
    _, calls = graded
    proc, seconds = calls["loop"]
    looping = [spec for spec in SPECS.values() if spec.loop]
    assert "Timeout waiting for execute reply" in proc.stderr, f"no cell timed out:\n{describe(proc)}"
    # One cell times out per looping notebook; more would show the timeout did not stop the loop.
    assert proc.stderr.count("Timeout waiting for execute reply") == len(looping), describe(proc)
    assert seconds < 60 * len(looping), (
        f"grading {len(looping)} looping notebook(s) took {seconds:.0f} s with a {LOOP_TIMEOUT_S} s timeout")
    for spec in looping:
        loop_cell, _, first_test = spec.loop
        nb = read_notebook(course / "autograded" / LOOP_STUDENT / spec.name / spec.notebook)
        errors = [out for out in cells_by_id(nb)[loop_cell].outputs if out.output_type == "error"]
        assert errors, "the looping cell should carry the timeout as an error output"
        # The cells after the loop ran: the other part's tests passed (checked in the scores), the
        # tests of the looping part failed because its function was never defined.
        test_cell = cells_by_id(nb)[first_test]
        assert any(out.output_type == "error" and out.ename == "NameError" for out in test_cell.outputs), (
            f"{spec.name}: the tests should fail with a NameError after the interrupted cell")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_edited_test_cells_are_restored(course, graded, source_nbs, name):
    spec = SPECS[name]
    nb = read_notebook(course / "autograded" / EDITED_STUDENT / name / spec.notebook)
    source_cells, graded_cells = cells_by_id(source_nbs[name]), cells_by_id(nb)
    assert set(spec.points) <= set(graded_cells), (
        f"test cells missing after autograde: {set(spec.points) - set(graded_cells)}")
    for cell_name in spec.points:
        cell = graded_cells[cell_name]
        if cell_name == spec.deleted_test_cell:
            # Put back by OverwriteCells.add_missing_cells, behind a comment saying so.
            assert cell.source.endswith(source_cells[cell_name].source) and "added back by nbgrader" in cell.source, (
                f"the deleted cell {cell_name} should have been added back with its original source")
        else:
            assert cell.source == source_cells[cell_name].source, (
                f"{cell_name}: autograde must run the original test cell (hidden tests included), not the edit")
        assert "pass  # the tests were in the way" not in cell.source
        assert float(cell.metadata.nbgrader.points) == spec.points[cell_name], f"{cell_name}: points were not restored"


@pytest.mark.slow
@pytest.mark.parametrize("name,student", CHEATING)
def test_each_test_cell_of_a_cheat_says_why_it_scored_zero(course, graded, name, student):
    """Every test cell fails with the grader's one line (not with some other error the cheat happened to cause)."""
    nb = read_notebook(course / "autograded" / student / name / SPECS[name].notebook)
    cells = cells_by_id(nb)
    for grade_id, reason in expected_reason(SOURCE_NBS[name], student).items():
        errors = [out for out in cells[grade_id].outputs if out.output_type == "error"]
        if student == GRADER_STUDENT:  # the guard's error comes after the cell ran (its own errors, if any, first)
            errors = [out for out in errors if reason in out.evalue]
        assert errors and errors[0].ename == "AssertionError" and reason in errors[0].evalue, (
            f"{name}, {student}, {grade_id}: expected an AssertionError saying {reason!r}, got "
            f"{[(out.ename, out.evalue[:300]) for out in errors]}")
        assert "\n" not in errors[0].evalue, "the reason is one line"


def _log_by_notebook(stderr: str) -> dict[tuple[str, str], str]:
    """(student, assignment) -> the log lines autograde wrote while it sanitized and ran that notebook."""
    sections: dict[tuple[str, str], str] = {}
    key = None
    for line in stderr.splitlines():
        found = re.search(r"Sanitizing .*/submitted/([^/]+)/([^/]+)/", line)
        if found:
            key = (found.group(1), found.group(2))
        if key:
            sections[key] = sections.get(key, "") + line + "\n"
    return sections


@pytest.mark.slow
def test_autograde_warns_only_about_real_edits(graded):
    """No checksum alarm for test cells whose only difference is the hidden tests the release left out, no
    SQLAlchemy warning for new students; an edited test cell still warns, and so does the grader's guard."""
    proc, _ = graded[1]["main"]
    assert "SAWarning" not in proc.stderr, describe(proc)
    sections = _log_by_notebook(proc.stderr)
    assert {key[0] for key in sections} >= {"reference", EDITED_STUDENT}, "the log format changed: fix _log_by_notebook"
    for (student, name), log in sections.items():
        flagged = re.findall(r"Attribute 'checksum' for cell (\w+) has changed", log)
        if student == EDITED_STUDENT:
            edited = set(SPECS[name].points) - {SPECS[name].deleted_test_cell}
            assert set(flagged) == edited, f"{name}: the edited test cells must still be reported, got {flagged}"
        else:
            assert not flagged, f"{student}, {name}: untouched test cells reported as changed: {flagged}"
        assert (NAMES_GRADER in log) == (student == GRADER_STUDENT), f"{student}, {name}: the guard's warning"


# --------------------------------------------------------------------------- after grading


@pytest.mark.slow
def test_export_and_feedback(course, graded):
    proc = run_nbgrader(course, "export", "--to", "grades.csv")
    assert proc.returncode == 0, describe(proc)
    with open(course / "grades.csv", newline="") as f:
        rows = {(row["assignment"], row["student_id"]): row for row in csv.DictReader(f)}
    for name, by_student in graded[0].items():
        for student, cells in by_student.items():
            row = rows.get((name, student))
            assert row is not None, f"grades.csv has no row for {student} in {name}"
            total = sum(score for score, _ in cells.values())
            assert float(row["score"]) == total, f"{name}, {student}: grades.csv says {row['score']}"
            assert float(row["max_score"]) == sum(SPECS[name].points.values())
            # Lateness, as book/instructors.md says: seconds after the due date, 0 when on time or without one.
            late = LATE[1].get(student, 0) if name == LATE[0] else 0
            assert float(row["seconds_late"]) == max(late, 0), f"{name}, {student}: seconds_late {row['seconds_late']}"
            assert float(row["late_submission_penalty"]) == 0.0, "no penalty is configured"
    assert rows[(LATE[0], "wrong_gae")]["timestamp"] and rows[(LATE[0], "wrong_gae")]["duedate"]

    # Feedback for the edited and the cheating students across every assignment, in one call.
    shown = {EDITED_STUDENT, *(student for _, student in CHEATING)}
    others = sorted({student for _, student in SUBMISSIONS} - shown)
    proc = run_nbgrader(course, "generate_feedback", "*", f"--CourseDirectory.student_id_exclude={','.join(others)}")
    assert proc.returncode == 0, describe(proc)
    for name, spec in SPECS.items():
        html = (course / "feedback" / EDITED_STUDENT / name / f"{name}.html").read_text()
        score = TOTALS[name][EDITED_STUDENT]
        assert re.search(rf"{score}(\.0)?\s*/\s*10", html), f"{name}: the feedback should show the score {score} / 10"
        # Readable offline: MathJax inside the page, no script or style sheet from the network.
        assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", html), f"{name}: a script from the network"
        assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", html), f"{name}: a style sheet from the network"
        scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
        assert any("window.MathJax" in code for code in scripts) and max(map(len, scripts)) > 100_000, (
            f"{name}: MathJax (its configuration and its code) must be inside the page")
    for name, student in CHEATING:
        html = (course / "feedback" / student / name / f"{name}.html").read_text()
        reasons = expected_reason(SOURCE_NBS[name], student)
        for reason in set(reasons.values()):
            shown = sum(html.count(reason.replace("'", quote)) for quote in ("'", "&#39;", "&#x27;"))
            assert shown >= list(reasons.values()).count(reason), (
                f"{name}, {student}: the feedback should say {reason!r} for each test cell")
