"""Device selection, CPU threads, seeding and deterministic mode.

Every entry point (the command line, a notebook's ``setup()``) calls :func:`resolve_device`,
:func:`configure_threads` and :func:`seed_everything` once; library code never names a device
itself, it follows the tensors it is given, and never changes the thread count behind a
user's back.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device spec into a ``torch.device``.

    ``"auto"`` picks CUDA when a GPU is visible, then Apple's MPS, else the CPU.
    ``"cuda"``, ``"cuda:1"``, ``"mps"`` and ``"cpu"`` are taken literally, with a clear
    error when the hardware is not there.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = spec.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {spec!r}; accepted: auto, cpu, cuda, cuda:N, mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for but no CUDA GPU is visible; use --device auto or cpu")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {spec!r} asked for but MPS is not available; use --device auto or cpu")
    return torch.device(spec)


# Thread counts a user sets through the environment; torch reads them when it starts.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# What configure_threads picks. The course's networks are small (a few layers 64-256 wide,
# batches of a few hundred), so a second thread has little to share, and on a busy CPU every
# parallel region waits for a thread that another process pushed off its core. Measured on a
# shared 2-core Xeon (other jobs running): PPO's defaults ran 2,296 env steps/s with 1 thread
# and 64 with 2; SAC's 65 and 3; with one more busy loop, 836 vs 30 and 14 vs (under) 3.
SMALL_MODEL_THREADS = 1
_THREADS_AT_IMPORT = torch.get_num_threads()
_threads_set_here: int | None = None      # what configure_threads chose itself, if it did
_threads_given = False                    # whether configure_threads was passed a count


def user_chose_threads() -> bool:
    """Whether someone other than :func:`configure_threads` chose torch's CPU thread count:
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` in the environment, or ``torch.set_num_threads``
    called after ``course_lib`` was imported (a call before that import cannot be told apart
    from torch's default), or a count passed to :func:`configure_threads` earlier."""
    if _threads_given or any(os.environ.get(name, "").strip() for name in THREAD_ENV_VARS):
        return True
    expected = _THREADS_AT_IMPORT if _threads_set_here is None else _threads_set_here
    return torch.get_num_threads() != expected


def configure_threads(device: str | torch.device = "cpu", threads: int | None = None) -> int:
    """Set torch's CPU thread count for a run on ``device``; returns the count in force.

    ``threads`` (e.g. ``--threads``) is taken as given. Otherwise a choice the user already made
    (see :func:`user_chose_threads`) is left alone, and else :data:`SMALL_MODEL_THREADS` is set,
    whatever the device: on a CPU device the networks run there, and beside a GPU the CPU only
    steps environments and moves small tensors, where threads do not help either. ``device`` is
    checked like :func:`resolve_device` does. For a big model on an idle many-core CPU, pass
    ``threads`` (or set ``OMP_NUM_THREADS``) yourself.
    """
    global _threads_set_here, _threads_given
    resolve_device(device)          # the same one-line error as everywhere for a device that is not there
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads = {threads!r} is not accepted; accepted: an integer >= 1")
        torch.set_num_threads(threads)
        _threads_given = True              # the caller's choice: later calls without threads keep it
        return threads
    if user_chose_threads():
        return torch.get_num_threads()
    torch.set_num_threads(SMALL_MODEL_THREADS)
    _threads_set_here = SMALL_MODEL_THREADS
    return SMALL_MODEL_THREADS


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; elsewhere a no-op), so a
    clock read afterwards times the work, not its launch."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally make torch deterministic.

    Deterministic mode asks torch for deterministic kernels (erroring on ops that have
    none) and fixes cuBLAS' workspace, so that on one machine the same seed gives the
    same numbers run after run, and a resumed run continues bit for bit.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif torch.are_deterministic_algorithms_enabled():
        # Only switch back when needed: the call imports torch's compiler stack (~1 s).
        torch.use_deterministic_algorithms(False)


def rng_state() -> dict:
    """Every global random generator's state, for a checkpoint."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
