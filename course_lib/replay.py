r"""Replay: a ring buffer of transitions, and a buffer of episodes sampled as ``[B, T]`` windows.

* :class:`ReplayBuffer` keeps the latest ``capacity`` rows of named fields (SAC's
  transitions ``(s, a, r, s', terminated)``, AlphaZero's window of positions with their
  search policy and outcome) and draws uniform minibatches.
* :class:`SequenceReplay` keeps whole episodes back to back and draws windows of ``T``
  consecutive steps, with a mask that says which steps still belong to the episode the
  window started in (MuZero's unrolls; Dreamer's, TWM's and STORM's training sequences;
  the Decision Transformer's contexts).

Both live on one device (a minibatch never leaves it), draw their indices with
``torch.randint`` there, and have ``state_dict``/``load_state_dict`` holding only the
filled rows, so they are saved with a run's checkpoint.

Fields are declared once as ``{name: (shape, dtype)}``; fields of one dtype are columns of
one ``[capacity, width]`` tensor (each field a view of it), so drawing a minibatch costs
one gather per dtype rather than one per field.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

__all__ = ["ReplayBuffer", "SequenceReplay", "FieldSpec"]

FieldSpec = Mapping[str, tuple[tuple[int, ...], torch.dtype]]


class _Columns:
    """Named fields stored as column ranges of one tensor per dtype."""

    def __init__(self, capacity: int, fields: FieldSpec, device: torch.device):
        if not fields:
            raise ValueError("a replay buffer needs at least one field")
        self.fields = {name: (tuple(shape), dtype) for name, (shape, dtype) in fields.items()}
        self.layout: dict[str, tuple[torch.dtype, int, int]] = {}
        widths: dict[torch.dtype, int] = {}
        for name, (shape, dtype) in self.fields.items():
            start = widths.get(dtype, 0)
            widths[dtype] = start + math.prod(shape)
            self.layout[name] = (dtype, start, widths[dtype])
        self.data = {dtype: torch.zeros((capacity, width), dtype=dtype, device=device)
                     for dtype, width in widths.items()}
        self.views = self.split(self.data)

    def split(self, data: Mapping[torch.dtype, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Views of each field in ``data`` (rows ``[N, width]`` per dtype): ``[N, *shape]``."""
        out = {}
        for name, (dtype, start, stop) in self.layout.items():
            shape = self.fields[name][0]
            rows = data[dtype]
            out[name] = rows[:, start] if shape == () else rows[:, start:stop].unflatten(1, shape)
        return out

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``idx`` (any shape) of every field: ``[*idx.shape, *shape]``."""
        flat = idx.reshape(-1)
        fields = self.split({dtype: data[flat] for dtype, data in self.data.items()})
        return {name: value.reshape(*idx.shape, *value.shape[1:]) for name, value in fields.items()}

    def write(self, rows, batch: Mapping[str, torch.Tensor]) -> None:
        missing = set(self.fields) - set(batch)
        extra = set(batch) - set(self.fields)
        if missing or extra:
            raise ValueError(f"replay fields are {sorted(self.fields)}; got {sorted(batch)}")
        for name, value in batch.items():
            view = self.views[name]
            view[rows] = value.to(view.dtype) if value.dtype != view.dtype else value

    def state(self, n: int) -> dict[str, torch.Tensor]:
        return {name: view[:n].cpu() for name, view in self.views.items()}

    def load(self, state: Mapping[str, Any], n: int) -> None:
        for name, view in self.views.items():
            view[:n] = state[name].to(view.device)


class _Rows:
    """What both buffers share: ``capacity`` rows of named fields on ``device``, each field also
    an attribute (``buffer.obs`` is the ``[capacity, *shape]`` view of field ``obs``)."""

    def __init__(self, capacity: int, fields: FieldSpec, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1; got {capacity}")
        self.capacity, self.device = int(capacity), torch.device(device)
        self._columns = _Columns(self.capacity, fields, self.device)
        self.size = 0  # rows filled

    def __getattr__(self, name: str) -> torch.Tensor:
        columns = self.__dict__.get("_columns")
        if columns is not None and name in columns.views:
            return columns.views[name]
        raise AttributeError(name)

    @property
    def fields(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return dict(self._columns.fields)

    def __len__(self) -> int:
        return self.size


class ReplayBuffer(_Rows):
    """A ring buffer of the latest ``capacity`` rows of named fields, on ``device``.

    ``add(**batch)`` writes ``B`` rows (each field ``[B, *shape]``) at the write position,
    wrapping around and overwriting the oldest once ``capacity`` is reached; ``sample(n)``
    draws ``n`` rows uniformly with replacement. The fields are attributes too
    (``buffer.obs`` is the ``[capacity, *shape]`` view of field ``obs``).

    Args:
      capacity: rows kept.
      fields: ``{name: (shape, dtype)}``.
      device: where the rows live.
    """

    def __init__(self, capacity: int, fields: FieldSpec, device: torch.device | str = "cpu"):
        super().__init__(capacity, fields, device)
        self.pos = 0   # next row to write

    def add(self, **batch: torch.Tensor) -> None:
        """Store ``B`` rows: every field ``[B, *shape]``."""
        b = next(iter(batch.values())).shape[0]
        if b > self.capacity:
            raise ValueError(f"cannot add {b} rows to a buffer of capacity {self.capacity}")
        if self.pos + b <= self.capacity:
            rows = slice(self.pos, self.pos + b)
        else:  # wraps around the end
            rows = torch.arange(self.pos, self.pos + b, device=self.device) % self.capacity
        self._columns.write(rows, batch)
        self.pos = (self.pos + b) % self.capacity
        self.size = min(self.size + b, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` rows drawn uniformly with replacement, as ``{field: [batch_size, *shape]}``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self._columns.gather(idx)

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size, **self._columns.state(self.size)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay buffer capacity {state['capacity']} in the state, {self.capacity} here")
        self.pos, self.size = state["pos"], state["size"]
        self._columns.load(state, self.size)


class SequenceReplay(_Rows):
    """Whole episodes, step after step, sampled as windows of ``T`` consecutive steps.

    Steps of one episode are contiguous; ``end[i]`` is one past the last step of step
    ``i``'s episode and ``terminal[i]`` says whether that episode terminated (rather than
    being cut by a time limit or the end of training). The buffer keeps everything it is
    given, up to ``capacity`` steps (size it for the run); :meth:`sample` draws the windows'
    starts uniformly from the latest ``window`` steps.

    Args:
      capacity: steps kept.
      fields: ``{name: (shape, dtype)}`` of one step.
      device: where the steps live.
    """

    def __init__(self, capacity: int, fields: FieldSpec, device: torch.device | str = "cpu"):
        super().__init__(capacity, fields, device)
        self.end = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        self.terminal = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self.episodes = 0

    def add_episode(self, terminal: bool, **steps: torch.Tensor) -> None:
        """Append one episode of ``n`` steps (every field ``[n, *shape]``); ``terminal``: it
        ended in a terminal state."""
        n = next(iter(steps.values())).shape[0]
        if self.size + n > self.capacity:
            raise RuntimeError(f"sequence replay full: {self.size} + {n} steps > capacity {self.capacity}; "
                               "size it for the whole run")
        rows = slice(self.size, self.size + n)
        self._columns.write(rows, steps)
        self.end[rows] = self.size + n
        self.terminal[rows] = terminal
        self.size += n
        self.episodes += 1

    def sample_starts(self, batch_size: int, window: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``[batch_size]`` start steps, uniform over the latest ``window`` steps (all if None)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty sequence replay")
        low = max(0, self.size - window) if window is not None else 0
        return torch.randint(low, self.size, (batch_size,), device=self.device, generator=generator)

    def windows(self, starts: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
        """The ``length`` steps from each start: every field ``[B, T, *shape]``, plus
        ``mask`` ``[B, T]`` (the step belongs to the start's episode), ``terminal`` ``[B]``
        (that episode terminated) and ``index`` ``[B, T]`` (the rows read). Rows past the
        episode's end hold whatever follows it in the buffer (the next episode, or the last
        row again): use them only where ``mask`` is True."""
        offsets = torch.arange(length, device=self.device)
        idx = starts.unsqueeze(1) + offsets                                   # [B, T]
        mask = idx < self.end[starts].unsqueeze(1)
        index = idx.clamp(max=self.size - 1)
        out = self._columns.gather(index)
        out.update(mask=mask, terminal=self.terminal[starts], index=index)
        return out

    def sample(self, batch_size: int, length: int, window: int | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``length`` steps (see :meth:`windows`)."""
        return self.windows(self.sample_starts(batch_size, window, generator), length)

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"capacity": self.capacity, "size": n, "episodes": self.episodes, "end": self.end[:n].cpu(),
                "terminal": self.terminal[:n].cpu(), **self._columns.state(n)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        n = self.size = state["size"]
        self.episodes = state["episodes"]
        self.end[:n] = state["end"].to(self.device)
        self.terminal[:n] = state["terminal"].to(self.device)
        self._columns.load(state, n)
