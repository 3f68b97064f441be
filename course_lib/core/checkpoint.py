"""Checkpoints that a killed run can always resume from.

A checkpoint is one ``torch.save`` file holding everything a run needs to continue
exactly where it stopped: model and optimiser state, every random generator, the
environments, counters and the metrics log's position. It is written to a temporary
file in the same directory, flushed to disk, then renamed over the old one. A rename
within one file system is atomic, so a SIGKILL at any instant leaves either the old
complete checkpoint or the new complete one, never a torn file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_VERSION = 2  # 2: named states from Run.restore, typed counters


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"checkpoint_version": CHECKPOINT_VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # some file systems (and Windows) cannot fsync a directory
        pass
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Checkpoints hold RNG states, NumPy arrays and pickled environments besides
    tensors, so they are loaded with ``weights_only=False``: only load files you made.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location=map_location, weights_only=False)
    version = state.get("checkpoint_version")
    if version != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {version}; this course_lib reads version {CHECKPOINT_VERSION}")
    return state
