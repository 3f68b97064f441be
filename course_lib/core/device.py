"""Device selection, seeding and deterministic mode.

Every entry point calls :func:`resolve_device` and :func:`seed_everything` once;
library code never names a device itself, it follows the tensors it is given.
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
